# labelsync - top-level build.  `make help` lists the targets.
#
# Flavors build into build/<flavor>/ so objects with different flags never
# mix: release (make all), debug (make test), asan, valgrind.  Libraries come
# from pkg-config.  -Werror is on under `make check` (WERROR=1), off in a
# plain build so a newer compiler does not break users.

FLAVOR ?= release
B := build/$(FLAVOR)
PREFIX ?= /usr/local
DESTDIR ?=
PORT ?= 7070
V ?= 0

PKGS := libmicrohttpd libcjson libcurl
WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wcast-qual -Wwrite-strings -Wundef -Wvla

ifeq ($(FLAVOR),release)
  OPT := -O2 -g
else ifeq ($(FLAVOR),debug)
  OPT := -O0 -g -DLS_DEBUG
else ifeq ($(FLAVOR),asan)
  OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(FLAVOR),valgrind)
  OPT := -O0 -g
else
  $(error unknown FLAVOR '$(FLAVOR)': use release, debug, asan or valgrind)
endif
ifeq ($(WERROR),1)
  OPT += -Werror
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Iimpl/include $(PKG_CFLAGS) \
             -DLS_SPEC_DIR_DEFAULT='"$(CURDIR)/spec"' -MMD -MP $(CFLAGS)
LDFLAGS_ALL = $(OPT) $(LDFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

# The pure modules are also held to -Wconversion.
PURE := canon patch buf sse

SERVER_SRC := $(wildcard impl/src/*.c)
SERVER_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(SERVER_SRC))
LIB_OBJ := $(filter-out $(B)/obj/impl/src/main.o,$(SERVER_OBJ))
TEST_SRC := $(wildcard impl/tests/test_*.c)
TEST_BIN := $(patsubst impl/tests/%.c,$(B)/tests/%,$(TEST_SRC))
SUPPORT_OBJ := $(B)/obj/impl/tests/support/testutil.o
RUNNER_SRC := $(wildcard conformance/src/*.c)
RUNNER_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(RUNNER_SRC)) $(B)/obj/impl/src/buf.o \
              $(B)/obj/impl/src/err.o
RUNNER_TEST_SRC := $(wildcard conformance/tests/test_*.c)
RUNNER_TEST_BIN := $(patsubst conformance/tests/test_%.c,$(B)/tests/test_runner_%,$(RUNNER_TEST_SRC))
TOOLS_SRC := $(wildcard impl/tools/*.c)
TOOLS_BIN := $(patsubst impl/tools/%.c,$(B)/%,$(TOOLS_SRC))
FAKE_SRC := $(wildcard conformance/selftest/*.c)
FAKE_BIN := $(patsubst conformance/selftest/%.c,$(B)/selftest/%,$(FAKE_SRC))

.SECONDARY:

.PHONY: all help run check test unit selftest conformance spec-lint asan valgrind deps bench \
        install uninstall format check-format lint clean distclean build

all: deps-quiet
	$(Q)$(MAKE) --no-print-directory FLAVOR=release build

help:
	@echo "make             build labelsyncd and labelsync-check (build/release/)"
	@echo "make run         serve spec/workspace on http://127.0.0.1:$(PORT)/ (PORT=...)"
	@echo "make check       everything CI runs: unit tests, runner self-tests, spec lint,"
	@echo "                 conformance against labelsyncd, format and lint (-Werror)"
	@echo "make test        unit tests and runner self-tests (build/debug/)"
	@echo "make conformance labelsync-check against a fresh labelsyncd"
	@echo "make spec-lint   validate spec/cases against spec/schema/fixture.schema.json"
	@echo "make asan        unit tests, self-tests and conformance under ASan+UBSan"
	@echo "make valgrind    unit tests and a conformance run of the server under valgrind"
	@echo "make bench       HTTP load benchmark (BENCH_ARGS='--seconds 5'); see docs/benchmarks.md"
	@echo "make deps        install the Debian packages the project needs (as root)"
	@echo "make install     install binaries to \$$DESTDIR\$$PREFIX/bin (PREFIX=$(PREFIX))"
	@echo "make format | check-format | lint | clean"

build: $(B)/labelsyncd $(B)/labelsync-check $(B)/bench_http $(B)/crash_test $(TEST_BIN) $(FAKE_BIN) \
       $(RUNNER_TEST_BIN) $(TOOLS_BIN)

# ---------------------------------------------------------------------------
# Compilation

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(filter 0,$(V)),echo "  CC      $<",true)
	$(Q)$(CC) $(CFLAGS_ALL) $(if $(filter $(PURE),$(basename $(notdir $<))),-Wconversion) \
		$(if $(findstring /tests/,$<),$(CMOCKA_CFLAGS) -Iimpl/tests/support) \
		$(if $(findstring conformance,$<),-Iconformance/src) -c $< -o $@

$(B)/labelsyncd: $(SERVER_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) -o $@

$(B)/labelsync-check: $(RUNNER_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) -o $@

$(B)/crash_test: $(B)/obj/impl/bench/crash_test.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) -o $@

$(B)/bench_http: $(B)/obj/impl/bench/bench_http.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) -o $@

# test_wal and test_durability link a copy of wal.c built with its fault hooks;
# the server never has them.
$(B)/obj/impl/src/wal_fault.o: impl/src/wal.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fault injection)"
	$(Q)$(CC) $(CFLAGS_ALL) -DLS_FAULT_INJECTION -c $< -o $@

FAULT_TESTS := $(B)/tests/test_wal $(B)/tests/test_durability

$(B)/obj/impl/tests/test_wal.o $(B)/obj/impl/tests/test_durability.o: CFLAGS += -DLS_FAULT_INJECTION

$(FAULT_TESTS): $(B)/tests/%: $(B)/obj/impl/tests/%.o $(SUPPORT_OBJ) \
                $(filter-out $(B)/obj/impl/src/wal.o,$(LIB_OBJ)) $(B)/obj/impl/src/wal_fault.o
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) $(CMOCKA_LIBS) -o $@

$(B)/tests/test_%: $(B)/obj/impl/tests/test_%.o $(SUPPORT_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) $(CMOCKA_LIBS) -o $@

# Unit tests of the runner's own modules (e.g. the SSE parser): each links the
# runner's objects except its main.
$(B)/tests/test_runner_%: $(B)/obj/conformance/tests/test_%.o \
                          $(filter-out $(B)/obj/conformance/src/main.o,$(RUNNER_OBJ)) $(SUPPORT_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) $(CMOCKA_LIBS) -o $@

# Tools (labelsync-wal): link the server's modules except main.
$(TOOLS_BIN): $(B)/%: $(B)/obj/impl/tools/%.o $(LIB_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) -o $@

$(B)/selftest/%: $(B)/obj/conformance/selftest/%.o $(B)/obj/impl/src/buf.o $(B)/obj/impl/src/err.o
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS_ALL) -o $@

-include $(shell find build -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------------------
# Running

run: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=release build
	build/release/labelsyncd --root spec/workspace --port $(PORT)

# The test command of the README: every suite, -Werror, one closing summary.
check: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=debug WERROR=1 build
	$(Q)$(MAKE) --no-print-directory FLAVOR=release WERROR=1 build
	$(Q)tools/runtests.sh --flavor debug --server-flavor release --all

test: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=debug build
	$(Q)tools/runtests.sh --flavor debug --unit --selftest

conformance: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=release build
	$(Q)tools/runtests.sh --server-flavor release --conformance

spec-lint: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=release build
	$(Q)tools/runtests.sh --server-flavor release --spec-lint

asan: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=asan build
	$(Q)tools/runtests.sh --flavor asan --server-flavor asan --unit --selftest --conformance

valgrind: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=valgrind build
	$(Q)tools/runtests.sh --flavor valgrind --server-flavor valgrind --valgrind --unit \
		--selftest --conformance

# HTTP load benchmark (GET and PATCH at 1, 16, 64 connections); see docs/benchmarks.md.
bench: deps
	$(Q)tools/bench.sh $(BENCH_ARGS)

deps:
	$(Q)tools/deps.sh

deps-quiet:
	$(Q)tools/deps.sh --check-only

# ---------------------------------------------------------------------------
# Install

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 build/release/labelsyncd build/release/labelsync-check $(TOOLS_BIN:$(B)/%=build/release/%) \
		$(DESTDIR)$(PREFIX)/bin/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/labelsyncd $(DESTDIR)$(PREFIX)/bin/labelsync-check \
		$(DESTDIR)$(PREFIX)/bin/labelsync-wal

# ---------------------------------------------------------------------------
# Style

FORMAT_SRC = $(shell find impl conformance fuzz -name '*.[ch]' 2>/dev/null)

format:
	clang-format -i $(FORMAT_SRC)

check-format:
	$(Q)tools/runtests.sh --check-format

lint:
	$(Q)tools/runtests.sh --lint --cppcheck

clean:
	rm -rf build

distclean: clean
	rm -rf fuzz/scratch
