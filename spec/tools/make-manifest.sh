#!/usr/bin/env bash
#
# make-manifest.sh - write (or check) spec/workspace/MANIFEST.json.
#
# Usage: spec/tools/make-manifest.sh [--check] [WORKSPACE_DIR]
#   WORKSPACE_DIR defaults to spec/workspace next to this script.
#   Without --check: rewrites WORKSPACE_DIR/MANIFEST.json.
#   With --check:    exits 1 (and prints a diff) when MANIFEST.json differs
#                    from what this script would write; CI runs this mode.
#   Exit codes: 0 ok, 1 manifest out of date, 2 usage or unreadable item.
#
# MANIFEST.json lists every item of the workspace as contract §1.3 defines
# items: regular files (not symlinks) whose name ends in .png .jpg .jpeg .webp
# (case-insensitive), skipping every file or directory whose name starts
# with '.'.  One object per item, sorted bytewise by path (LC_ALL=C):
#   {"path": "/animals/cat.jpg",  canonical item path (leading '/')
#    "type": "image/jpeg",        from the file's magic bytes, not its name:
#                                 image/png, image/jpeg or image/webp
#    "width": 16, "height": 16,   pixels, read from the image header
#    "bytes": 300,                file size
#    "sha256": "<64 hex>"}        of the file contents
#
# Only bash, coreutils (sha256sum, stat, od, sort) and find are needed: the
# dimensions come from the PNG IHDR, the JPEG SOFn marker or the WebP
# VP8/VP8L/VP8X header, so no image library has to be installed to run
# --check.  An item of any other format, or a header this parser does not
# understand, is an error (exit 2): the workspace must hold real images.
set -euo pipefail
export LC_ALL=C

usage() {
    echo "usage: $0 [--check] [WORKSPACE_DIR]" >&2
    exit 2
}

check=0
ws=""
for arg in "$@"; do
    case "$arg" in
    --check) check=1 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) [[ -z "$ws" ]] || usage; ws="$arg" ;;
    esac
done
if [[ -z "$ws" ]]; then
    ws="$(cd "$(dirname "${BASH_SOURCE[0]}")/../workspace" && pwd)"
fi
[[ -d "$ws" ]] || { echo "make-manifest: no such directory: $ws" >&2; exit 2; }

die() {
    echo "make-manifest: $*" >&2
    exit 2
}

# The first 64 KiB as decimal byte values; the headers we need are near the
# start (JPEG SOF comes after the quantization tables, well inside 64 KiB for
# the tiny demo images).
declare -a B
load_bytes() {
    # shellcheck disable=SC2207
    B=($(od -An -v -tu1 -N 65536 -- "$1"))
}

be16() { echo $(( B[$1] << 8 | B[$1 + 1] )); }
be32() { echo $(( B[$1] << 24 | B[$1 + 1] << 16 | B[$1 + 2] << 8 | B[$1 + 3] )); }
le16() { echo $(( B[$1] | B[$1 + 1] << 8 )); }
le24() { echo $(( B[$1] | B[$1 + 1] << 8 | B[$1 + 2] << 16 )); }
le32() { echo $(( B[$1] | B[$1 + 1] << 8 | B[$1 + 2] << 16 | B[$1 + 3] << 24 )); }
bytes_are() { # bytes_are OFFSET v1 v2 ... : true when B matches at OFFSET
    local off=$1 v
    shift
    for v in "$@"; do
        [[ "${B[$off]:-x}" == "$v" ]] || return 1
        off=$((off + 1))
    done
}

# Sets TYPE W H for the image in B, or returns 1.
probe() {
    local n=${#B[@]} i m len
    if ((n >= 24)) && bytes_are 0 137 80 78 71 13 10 26 10 && bytes_are 12 73 72 68 82; then
        TYPE=image/png W=$(be32 16) H=$(be32 20)
        return 0
    fi
    if ((n >= 4)) && bytes_are 0 255 216; then
        # Walk the marker segments up to the first SOFn (C0-CF minus C4 DHT,
        # C8 JPG, CC DAC), which holds precision, height, width.
        i=2
        while ((i + 3 < n)); do
            ((B[i] == 255)) || return 1
            m=${B[i + 1]}
            if ((m == 255)); then i=$((i + 1)); continue; fi
            if ((m == 1 || (m >= 208 && m <= 217))); then i=$((i + 2)); continue; fi
            len=$(be16 $((i + 2)))
            if ((m >= 192 && m <= 207 && m != 196 && m != 200 && m != 204)); then
                ((i + 8 < n)) || return 1
                TYPE=image/jpeg H=$(be16 $((i + 5))) W=$(be16 $((i + 7)))
                return 0
            fi
            i=$((i + 2 + len))
        done
        return 1
    fi
    if ((n >= 30)) && bytes_are 0 82 73 70 70 && bytes_are 8 87 69 66 80; then
        TYPE=image/webp
        if bytes_are 12 86 80 56 32 && bytes_are 23 157 1 42; then          # "VP8 " lossy
            W=$(( $(le16 26) & 16383 )) H=$(( $(le16 28) & 16383 ))
        elif bytes_are 12 86 80 56 76 && bytes_are 20 47; then              # "VP8L" lossless
            local bits
            bits=$(le32 21)
            W=$(( (bits & 16383) + 1 )) H=$(( ((bits >> 14) & 16383) + 1 ))
        elif bytes_are 12 86 80 56 88; then                                 # "VP8X" extended
            W=$(( $(le24 24) + 1 )) H=$(( $(le24 27) + 1 ))
        else
            return 1
        fi
        return 0
    fi
    return 1
}

json_string() { # quote $1 for JSON; generate() has already refused control characters
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

generate() {
    local first=1 rel path size sum
    echo '{"items": ['
    while IFS= read -r -d '' rel; do
        rel=${rel#./}
        path="/$rel"
        # Such a name cannot be a canonical path (contract §1.2 rule 4), so no server lists it.
        [[ "$path" != *[[:cntrl:]]* ]] || die "control character in item name: $path"
        load_bytes "$ws/$rel" || die "cannot read $path"
        probe || die "not a PNG, JPEG or WebP file this script can parse: $path"
        size=$(stat -c %s -- "$ws/$rel")
        sum=$(sha256sum <"$ws/$rel") # via stdin: a '\' in a name would prefix the sum with '\'
        sum=${sum%% *}
        ((first)) || echo ','
        first=0
        printf '  {"path": %s, "type": "%s", "width": %d, "height": %d, "bytes": %d, "sha256": "%s"}' \
            "$(json_string "$path")" "$TYPE" "$W" "$H" "$size" "$sum"
    done < <(cd "$ws" && find . -mindepth 1 -name '.*' -prune -o -type f \
        \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.webp' \) -print0 |
        sort -z)
    ((first)) && die "no items found under $ws"
    printf '\n]}\n'
}

out="$(generate)"
if ((check)); then
    if [[ "$out" == "$(cat "$ws/MANIFEST.json" 2>/dev/null)" ]]; then
        echo "make-manifest: $ws/MANIFEST.json is up to date"
        exit 0
    fi
    echo "make-manifest: $ws/MANIFEST.json is out of date; rerun without --check" >&2
    diff <(printf '%s\n' "$out") "$ws/MANIFEST.json" >&2 || true
    exit 1
fi
printf '%s\n' "$out" >"$ws/MANIFEST.json"
echo "make-manifest: wrote $ws/MANIFEST.json"
