#!/usr/bin/env bash
# deps.sh - make sure the Debian packages labelsync needs are installed.
#
#   tools/deps.sh               install what is missing when run as root,
#                               otherwise print the exact apt-get line and fail
#   tools/deps.sh --check-only  never install; print the line and fail if needed
#   tools/deps.sh --fuzz        also clang and its libFuzzer runtime (make fuzz)
#
# The list is the whole truth of what a fresh Debian 12 machine lacks:
# compiler and make, pkg-config, the four libraries, clang-format for
# `make check`, valgrind for `make valgrind`.
set -u

PKGS="gcc make pkg-config libmicrohttpd-dev libcjson-dev libcurl4-openssl-dev libcmocka-dev clang-format valgrind"
check_only=0
for a in "$@"; do
    case "$a" in
    --check-only) check_only=1 ;;
    --fuzz) PKGS="$PKGS clang libclang-rt-14-dev" ;;
    *) echo "deps.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

missing=""
for p in $PKGS; do
    if command -v dpkg-query >/dev/null 2>&1; then
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case "$st" in *"install ok installed"*) continue ;; esac
    fi
    missing="$missing $p"
done

[ -z "$missing" ] && exit 0

line="apt-get install -y$missing"
if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
    echo "labelsync: missing Debian packages:$missing" >&2
    echo "labelsync: install them with:  sudo apt-get update && sudo $line" >&2
    exit 1
fi
echo "labelsync: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq$missing >/dev/null || {
    echo "labelsync: '$line' failed" >&2
    exit 1
}
