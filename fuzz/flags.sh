#!/bin/sh
# flags.sh T - the libFuzzer flags of fuzz/fuzz_T.options ([libfuzzer] section,
# OSS-Fuzz format) as command-line flags: "max_len = 4096" -> -max_len=4096;
# a dict is named relative to fuzz/, as OSS-Fuzz copies it next to the binary.
# Used by make fuzz-run / fuzz-merge and tools/runtests.sh --fuzz-short.
set -eu
dir=$(dirname "$0")
opts="$dir/fuzz_$1.options"
[ -f "$opts" ] || { echo "flags.sh: $opts not found" >&2; exit 1; }
awk -v dir="$dir" '
    /^[ \t]*\[/ { in_lf = ($0 ~ /^[ \t]*\[libfuzzer\]/); next }
    in_lf && /^[ \t]*[a-z_]+[ \t]*=/ {
        k = $0; sub(/[ \t]*=.*/, "", k); sub(/^[ \t]*/, "", k)
        v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*$/, "", v)
        if (k == "dict") v = dir "/" v
        printf "-%s=%s ", k, v
    }' "$opts"
echo
