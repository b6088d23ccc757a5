#!/usr/bin/env bash
# make-workspaces.sh - regenerate the prepared workspace overlays under spec/workspaces/.
#
# Lifecycle fixtures (spec/cases/lifecycle.*.json) copy these files into their
# scratch workspace with a workspace_files step before they start the server.
# The committed files are the source of truth; this script documents how they
# were made and reproduces them byte for byte (it is deterministic).  Record
# formats: /work/contract-wal.md (our log: compact UTF-8 lines ending in a
# "crc" member, CRC-32C of the line without it) and upstream Lenslet's
# (shared/reference/lenslet-protocol.md §6.3-6.4: ASCII-escaped, no crc,
# pretty-printed sorted snapshot without a trailing newline).
#
# Usage: spec/workspaces/make-workspaces.sh      (prints the sizes fixtures rely on)
set -eu
cd "$(dirname "$0")"
exec python3 - "$@" <<'PY'
import json, os

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF

def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

def ours(obj):
    """One log line of ours: compact UTF-8, crc of the text without the crc member, '\n'."""
    body = compact(obj)
    crc = crc32c(body.encode())
    return (body[:-1] + ',"crc":"%08x"}' % crc + "\n").encode()

def item(id, path, version, notes, tags=(), star=None, by="tab-1", at="2026-11-21T08:00:00.000001Z",
         changed=("notes",), mutation_id=None):
    return {"id": id, "type": "item-updated", "path": path, "version": version, "tags": list(tags),
            "notes": notes, "star": star, "updated_at": at, "updated_by": by, "metrics": {},
            "mutation_id": mutation_id, "changed_fields": list(changed)}

def flip_crc(line):
    """The same line with its stored crc changed: a record that fails its check."""
    i = line.rindex(b'"crc":"') + 7
    bad = b"%08x" % (int(line[i:i + 8], 16) ^ 0x00000001)
    return line[:i] + bad + line[i + 8:]

def write(rel, data):
    os.makedirs(os.path.dirname(rel), exist_ok=True)
    with open(rel, "wb") as f:
        f.write(data)
    return len(data)

sizes = []

# torn-tail: two good records, then a third cut off in the middle (no newline).
g1 = ours(item(1, "/scratch/s01.png", 2, "torn-tail good one"))
g2 = ours(item(2, "/scratch/s02.png", 2, "torn-tail good two"))
t3 = ours(item(3, "/scratch/s03.png", 2, "torn-tail cut off"))
write("torn-tail/.lenslet/labels.log.jsonl", g1 + g2 + t3[:len(t3) // 2])
sizes.append(("torn-tail: good prefix", len(g1 + g2)))

# torn-crc: the last line is complete but fails its crc (a torn or half-synced write).
c3 = flip_crc(ours(item(3, "/scratch/s03.png", 2, "torn-crc bad last line")))
write("torn-crc/.lenslet/labels.log.jsonl", g1 + g2 + c3)
sizes.append(("torn-crc: good prefix", len(g1 + g2)))

# corrupt-middle: line 2 fails its crc and good records follow it.
m1 = ours(item(1, "/scratch/s01.png", 2, "corrupt-middle before"))
m2 = flip_crc(ours(item(2, "/scratch/s02.png", 2, "corrupt-middle damaged")))
m3 = ours(item(3, "/scratch/s03.png", 2, "corrupt-middle after one"))
m4 = ours(item(4, "/scratch/s01.png", 3, "corrupt-middle after two"))
write("corrupt-middle/.lenslet/labels.log.jsonl", m1 + m2 + m3 + m4)
sizes.append(("corrupt-middle: line 1", len(m1)))
sizes.append(("corrupt-middle: line 2 starts at byte offset", len(m1)))
sizes.append(("corrupt-middle: whole file", len(m1 + m2 + m3 + m4)))

# replay-duplicates: a duplicated record and an older one after a newer one.
d1 = ours(item(1, "/scratch/s04.png", 2, "dup first"))
d2 = ours(item(2, "/scratch/s04.png", 3, "dup second"))
d3 = ours(item(3, "/scratch/s05.png", 2, "dup other item", tags=["x"], star=1, changed=("tags", "notes", "star")))
write("replay-duplicates/.lenslet/labels.log.jsonl", d1 + d2 + d2 + d1 + d3 + d2)

# snapshot-and-log: our snapshot (last_event_id 5) and a log with one record at or below
# it (must be ignored even though its version is higher) and two after it.
snap_items = {
    "/scratch/s06.png": {"tags": ["snap"], "notes": "from our snapshot", "star": 3, "version": 3,
                         "updated_at": "2026-11-21T07:00:00.000001Z", "updated_by": "tab-1", "metrics": {}},
    "/scratch/s07.png": {"tags": [], "notes": "snapshot s07", "star": None, "version": 2,
                         "updated_at": "2026-11-21T07:00:00.000002Z", "updated_by": "tab-1", "metrics": {}},
}
body = compact({"version": 2, "last_event_id": 5, "items": snap_items, "mutations": {},
                "labelsync": {"idempotency": []}})
assert body.endswith("}}")
snap = body[:-2] + ',"crc":"%08x"}}' % crc32c(body.encode())
write("snapshot-and-log/.lenslet/labels.snapshot.json", snap.encode())
s1 = ours(item(4, "/scratch/s06.png", 9, "at or below the snapshot: ignored"))
s2 = ours(item(6, "/scratch/s07.png", 3, "log after the snapshot"))
s3 = ours(item(7, "/scratch/s08.png", 2, "log s08", tags=["new"], changed=("tags", "notes")))
write("snapshot-and-log/.lenslet/labels.log.jsonl", s1 + s2 + s3)

# upstream-v2: what upstream Lenslet writes (lenslet-protocol.md §6.3, §6.4).
EPOCH = "5f0c2a7e9b3d4c1a8e6f0b2d4a6c8e0f"
def sidecar(r):
    return {"v": 1, "tags": r["tags"], "notes": r["notes"], "exif": {"width": r["w"], "height": r["h"]},
            "hash": None, "original_position": None, "star": r["star"], "version": r["version"],
            "updated_at": r["updated_at"], "updated_by": r["updated_by"], "table_fields": None}

def upstream_line(id, path, r, mutation_id, changed, watermark):
    acc = {"boot_epoch": EPOCH, "event_id": id}
    dw = {"boot_epoch": EPOCH, "event_id": watermark}
    rec = {"id": id, "type": "item-updated", "path": path, "version": r["version"], "tags": r["tags"],
           "notes": r["notes"], "star": r["star"], "updated_at": r["updated_at"],
           "updated_by": r["updated_by"]}
    if "metrics" in r:
        rec["metrics"] = r["metrics"]
    payload = {"sidecar": sidecar(r), "mutation_id": mutation_id, "accepted_event": acc,
               "persistence": "pending", "durable_watermark": dw}
    rec.update({"mutation_id": mutation_id, "changed_fields": changed, "accepted_event": acc,
                "persistence": "pending", "durable_watermark": dw,
                "mutation_result": {"status": 200, "payload": payload}})
    return (json.dumps(rec, separators=(",", ":"), ensure_ascii=True) + "\n").encode()

cafe = {"tags": ["sunset", "\u00fcn\u00efcode"], "notes": "from the upstream snapshot \u2713", "star": 5,
        "version": 3, "updated_at": "2026-11-20T09:00:00.123456+00:00",
        "updated_by": "session:1a2b3c4d", "w": 24, "h": 16}
cat2 = {"tags": [], "notes": "", "star": 2, "version": 2, "updated_at": "2026-11-20T09:00:01+00:00",
        "updated_by": "session:1a2b3c4d", "w": 16, "h": 16}
gone = {"tags": ["deleted image"], "notes": "", "star": None, "version": 2,
        "updated_at": "2026-11-20T09:00:02.5+00:00", "updated_by": "session:9f8e7d6c", "w": 8, "h": 8}
def durable(r):
    d = {k: r[k] for k in ("tags", "notes", "star", "version", "updated_at", "updated_by")}
    if "metrics" in r:
        d["metrics"] = r["metrics"]
    return d
up_snap = {
    "items": {"/unicode/caf\u00e9.jpg": durable(cafe), "/animals/cat.jpg": durable(cat2),
              "/animals/gone.jpg": durable(gone)},
    "last_event_id": 4,
    "mutations": {"k-cafe-1": {"payload": {"sidecar": sidecar(cafe), "mutation_id": "k-cafe-1",
                                            "accepted_event": {"boot_epoch": EPOCH, "event_id": 2},
                                            "persistence": "saved",
                                            "durable_watermark": {"boot_epoch": EPOCH, "event_id": 2}},
                               "status": 200}},
    "version": 2,
}
write("upstream-v2/.lenslet/labels.snapshot.json",
      json.dumps(up_snap, indent=2, sort_keys=True, ensure_ascii=True).encode())
cat_old = dict(cat2, version=9, notes="at or below last_event_id: ignored",
               updated_at="2026-11-20T08:59:59+00:00")
cat3 = dict(cat2, version=3, notes="from the upstream log", star=4, tags=["cat"],
            updated_at="2026-11-20T10:00:00.000001+00:00", updated_by="session:5e6f7a8b")
group2 = {"tags": ["team"], "notes": "", "star": None, "version": 2,
          "updated_at": "2026-11-20T10:00:01.25+00:00", "updated_by": "session:5e6f7a8b",
          "metrics": {"score": 0.5}, "w": 32, "h": 16}
up_log = (upstream_line(3, "/animals/cat.jpg", cat_old, "k-cat-old", ["notes"], 2) +
          upstream_line(5, "/animals/cat.jpg", cat3, "k-cat-3", ["star", "notes", "tags"], 4) +
          upstream_line(6, "/people/group.webp", group2, "put:7d3f6a0e-2b1c-4e5d-9a8b-0c1d2e3f4a5b",
                        ["star", "notes", "tags"], 5))
write("upstream-v2/.lenslet/labels.log.jsonl", up_log)

for what, n in sizes:
    print("%-48s %d" % (what, n))
PY
