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
.PHONY: fuzz fuzz-toolchain fuzz-build fuzz-run fuzz-merge fuzz-replay fuzz-short fuzz-seeds

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
	@echo "make fuzz        libFuzzer targets with ASan+UBSan (clang) in build/fuzz/; see fuzz/README.md"
	@echo "make fuzz-run T=canon SECS=60   fuzz one target into fuzz/scratch/ (corpus read-only)"
	@echo "make fuzz-merge T=canon         add fuzz/scratch/T inputs with new coverage to fuzz/corpus/T"
	@echo "make fuzz-replay [FLAVOR=asan]  replay every fuzz/corpus file (no clang needed)"
	@echo "make fuzz-short  every libFuzzer target for FUZZ_SECS (10) seconds on its corpus"
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

# ---------------------------------------------------------------------------
# Fuzz targets (fuzz/README.md, docs/fuzzing.md)
#
# Each fuzz/fuzz_<t>.c is built twice: linked with fuzz/standalone.c by the
# flavor's compiler into $(B)/fuzz/replay_<t> (part of `build`, so make check,
# asan and valgrind replay the corpora without clang), and with libFuzzer into
# build/fuzz/fuzz_<t> (make fuzz).  sse.c and wal.c get their own copies with
# small caps for their targets, so short inputs reach the over-the-cap paths;
# the target files see the same caps.

FUZZ_TARGETS := canon patch wal_replay sse headers request
FUZZ_SSE_CAPS := -DSSE_MAX_LINE=256 -DSSE_MAX_DATA=1024
FUZZ_WAL_CAPS := -DWAL_MAX_LINE=2048 -DWAL_MAX_SNAPSHOT=16384
FUZZ_LIB_SRC := $(filter-out impl/src/main.c,$(SERVER_SRC))
FUZZ_REPLAY_BIN := $(patsubst %,$(B)/fuzz/replay_%,$(FUZZ_TARGETS))

# $(call fuzz_deps,OBJDIR,TARGET): what a target links besides itself and its main.
fuzz_lib = $(patsubst %.c,$(1)/obj/%.o,$(FUZZ_LIB_SRC))
fuzz_deps = $(if $(filter sse,$(2)),$(1)/obj/fuzz/sse_capped.o $(1)/obj/impl/src/buf.o \
              $(1)/obj/impl/src/err.o,$(if $(filter wal_replay,$(2)),$(filter-out \
              %/impl/src/wal.o,$(call fuzz_lib,$(1))) $(1)/obj/fuzz/wal_capped.o,$(call \
              fuzz_lib,$(1))))

build: $(FUZZ_REPLAY_BIN)

$(B)/obj/fuzz/sse_capped.o: conformance/src/sse.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz caps)"
	$(Q)$(CC) $(CFLAGS_ALL) -Wconversion -Iconformance/src $(FUZZ_SSE_CAPS) -c $< -o $@

$(B)/obj/fuzz/fuzz_sse.o: fuzz/fuzz_sse.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Iconformance/src $(FUZZ_SSE_CAPS) -c $< -o $@

$(B)/obj/fuzz/wal_capped.o: impl/src/wal.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (fuzz caps)"
	$(Q)$(CC) $(CFLAGS_ALL) $(FUZZ_WAL_CAPS) -c $< -o $@

$(B)/obj/fuzz/fuzz_wal_replay.o: fuzz/fuzz_wal_replay.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(FUZZ_WAL_CAPS) -c $< -o $@

define FUZZ_REPLAY_RULE
$(B)/fuzz/replay_$(1): $(B)/obj/fuzz/fuzz_$(1).o $(B)/obj/fuzz/standalone.o $(call fuzz_deps,$(B),$(1))
	@mkdir -p $$(dir $$@)
	@echo "  LD      $$@"
	$$(Q)$$(CC) $$(LDFLAGS_ALL) $$^ $$(LDLIBS_ALL) -o $$@
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_REPLAY_RULE,$(t))))

# libFuzzer.  OSS-Fuzz style: CC (when it is a clang), CFLAGS and
# LIB_FUZZING_ENGINE from the environment are honoured; when
# LIB_FUZZING_ENGINE comes from outside, so do the sanitizers (in CFLAGS).
FZ := build/fuzz
FUZZ_CC ?= $(if $(findstring clang,$(CC)),$(CC),clang)
ifeq ($(origin LIB_FUZZING_ENGINE),undefined)
  LIB_FUZZING_ENGINE := -fsanitize=fuzzer
  FUZZ_SAN ?= -fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize=fuzzer-no-link
else
  FUZZ_SAN ?=
endif
FUZZ_OPT ?= -O1 -g -fno-omit-frame-pointer
FUZZ_CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION $(FUZZ_OPT) \
                  $(FUZZ_SAN) $(WARN) -Iimpl/include $(PKG_CFLAGS) \
                  -DLS_SPEC_DIR_DEFAULT='"$(CURDIR)/spec"' -MMD -MP $(CFLAGS)
FUZZ_BIN := $(patsubst %,$(FZ)/fuzz_%,$(FUZZ_TARGETS))
T ?= canon
SECS ?= 60
FUZZ_SECS ?= 10
FUZZ_SCRATCH := fuzz/scratch

$(FZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS_ALL) $(if $(findstring conformance,$<),-Iconformance/src) \
		-c $< -o $@

$(FZ)/obj/fuzz/sse_capped.o: conformance/src/sse.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $< (fuzz caps)"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS_ALL) -Iconformance/src $(FUZZ_SSE_CAPS) -c $< -o $@

$(FZ)/obj/fuzz/fuzz_sse.o: fuzz/fuzz_sse.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS_ALL) -Iconformance/src $(FUZZ_SSE_CAPS) -c $< -o $@

$(FZ)/obj/fuzz/wal_capped.o: impl/src/wal.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $< (fuzz caps)"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS_ALL) $(FUZZ_WAL_CAPS) -c $< -o $@

$(FZ)/obj/fuzz/fuzz_wal_replay.o: fuzz/fuzz_wal_replay.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS_ALL) $(FUZZ_WAL_CAPS) -c $< -o $@

define FUZZ_BIN_RULE
$(FZ)/fuzz_$(1): $(FZ)/obj/fuzz/fuzz_$(1).o $(call fuzz_deps,$(FZ),$(1))
	@echo "  FUZZLD  $$@"
	$$(Q)$$(FUZZ_CC) $$(FUZZ_OPT) $$(FUZZ_SAN) $$(CFLAGS) $$^ $$(LIB_FUZZING_ENGINE) $$(LDFLAGS) \
		$$(LDLIBS_ALL) -o $$@
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_BIN_RULE,$(t))))

fuzz: fuzz-toolchain
	$(Q)$(MAKE) --no-print-directory fuzz-build

fuzz-build: $(FUZZ_BIN)

# Fail early and clearly without clang or its libFuzzer runtime.
fuzz-toolchain:
	$(Q)command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz: '$(FUZZ_CC)' not found;" \
		"install clang-14 and libclang-rt-14-dev (make deps), or set FUZZ_CC" >&2; exit 1; }
	$(Q)mkdir -p $(FZ)
	$(Q)printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
		>$(FZ)/probe.c
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) $(CFLAGS) $(FZ)/probe.c $(LIB_FUZZING_ENGINE) -o $(FZ)/probe \
		>/dev/null 2>&1 || { echo "make fuzz: $(FUZZ_CC) cannot link libFuzzer with" \
		"'$(LIB_FUZZING_ENGINE)'; install libclang-rt-14-dev" >&2; exit 1; }

# Fuzz T for SECS seconds.  New inputs and crashes go to fuzz/scratch/T/; the
# committed corpus is only read (libFuzzer writes into the first directory).
fuzz-run: fuzz
	$(Q)mkdir -p $(FUZZ_SCRATCH)/$(T)/corpus $(FUZZ_SCRATCH)/$(T)/artifacts
	nice $(FZ)/fuzz_$(T) $$(fuzz/flags.sh $(T)) -max_total_time=$(SECS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_SCRATCH)/$(T)/artifacts/ $(FUZZ_ARGS) \
		$(FUZZ_SCRATCH)/$(T)/corpus fuzz/corpus/$(T)

# Add to fuzz/corpus/T only the scratch inputs that reach code (edges) the
# corpus does not; -use_counters=0 keeps hit counts out of the decision, which
# keeps the committed corpus small (the scratch corpus keeps everything).
FUZZ_MERGE_FLAGS ?= -use_counters=0
fuzz-merge: fuzz
	$(Q)mkdir -p $(FUZZ_SCRATCH)/$(T)/corpus
	$(FZ)/fuzz_$(T) $$(fuzz/flags.sh $(T)) -merge=1 $(FUZZ_MERGE_FLAGS) fuzz/corpus/$(T) \
		$(FUZZ_SCRATCH)/$(T)/corpus

# Replay every corpus file through the standalone driver of FLAVOR.
fuzz-replay: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=$(FLAVOR) $(FUZZ_REPLAY_BIN)
	$(Q)tools/runtests.sh --flavor $(FLAVOR) --fuzz-replay

# The CI form: every libFuzzer target FUZZ_SECS seconds on top of its corpus.
fuzz-short:
	$(Q)tools/runtests.sh --fuzz-short --fuzz-secs $(FUZZ_SECS)

# Regenerate the seed-* files of fuzz/corpus/ from spec/.
fuzz-seeds:
	$(Q)python3 fuzz/make-seeds.py

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
	$(Q)tools/runtests.sh --flavor asan --server-flavor asan --unit --selftest --conformance \
		--lifecycle \
		--fuzz-replay

valgrind: deps
	$(Q)$(MAKE) --no-print-directory FLAVOR=valgrind build
	$(Q)tools/runtests.sh --flavor valgrind --server-flavor valgrind --valgrind --unit \
		--selftest --conformance --lifecycle --fuzz-replay

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
