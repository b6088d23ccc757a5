#!/usr/bin/env python3
"""Generate the WAL test vectors in this directory (run from anywhere).

Every *.jsonl / *.json file here is produced by this script, together with
cases.json, which says what replaying each one must give.  The CRC-32C below
is an independent implementation (bitwise), so the vectors cross-check the C
one.  Re-run after editing; the output is deterministic.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
FP = "a" * 64
FP2 = "0123456789abcdef" * 4


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def compact(obj, ascii_only=False):
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False)


def ours(obj):
    """One labelsync line: compact UTF-8 JSON, crc member last."""
    body = compact(obj).encode()
    return body[:-1] + b',"crc":"%08x"}\n' % crc32c(body)


def upstream(obj):
    """One upstream Lenslet line: compact ASCII-escaped JSON, no crc."""
    return compact(obj, ascii_only=True).encode() + b"\n"


def item(i, path, version, **kw):
    rec = {"id": i, "type": "item-updated", "path": path, "version": version}
    for k in ("tags", "notes", "star", "updated_at", "updated_by", "metrics"):
        if k in kw:
            rec[k] = kw[k]
    rec["mutation_id"] = kw.get("mutation_id")
    rec["changed_fields"] = kw.get("changed_fields", [])
    if "idem" in kw:
        rec["idem"] = kw["idem"]
    return rec


def idem(key, status, body, scope="tab-1", etag=None):
    return {"type": "idempotency", "scope": scope, "key": key, "fp": FP2, "status": status,
            "etag": etag, "body": body, "stored_at": "2026-11-23T00:10:35.000000Z"}


T = "2026-11-23T00:10:34.915145Z"
CAT = item(1, "/animals/cat.jpg", 2, tags=["cat", "cute"], notes="first", star=4, updated_at=T,
           updated_by="tab-1", metrics={}, mutation_id="k1",
           changed_fields=["tags", "notes", "star"],
           idem={"scope": "tab-1", "key": "k1", "fp": FP})
CONFLICT = idem("k2", 409, '{"error":{"code":"version_conflict"}}')
CAFE = item(2, "/unicode/caf\u00e9.png", 2, tags=["\u00e9t\u00e9", "\u65e5\u672c"],
            notes="na\u00efve \u2014 \u65e5\u672c\u8a9e \U0001F600 \"q\" \\ \t\n", star=None,
            updated_at=T, updated_by="tab-2",
            metrics={"a": 0.1, "b": 0.30000000000000004, "c": 1e-300, "d": -2.5e-05,
                     "e": 123456789012.5, "f": 1.7976931348623157e308},
            mutation_id=None, changed_fields=["tags", "notes", "metrics"])
CAT3 = item(3000000000, "/animals/cat.jpg", 3, tags=["cat"], notes="first", star=5,
            updated_at="2026-11-23T00:11:00.000001Z", updated_by="tab-1", metrics={},
            mutation_id="k3", changed_fields=["tags", "star"])
BIG = item(9007199254740991, "/b.png", 9007199254740991, tags=[], notes="", star=0,
           updated_at=T, updated_by="anonymous", metrics={}, mutation_id=None,
           changed_fields=["star"])

VALID = [CAT, CONFLICT, CAFE, CAT3, BIG]


def state_of(records):
    """Apply item records with the replay rule: newer version wins, missing fields keep."""
    st = {}
    for r in records:
        if r.get("type") not in (None, "item-updated"):
            continue
        cur = st.get(r["path"], {"version": 1, "tags": [], "notes": "", "star": None,
                                 "metrics": {}, "updated_at": None, "updated_by": None})
        if r["version"] <= cur["version"]:
            continue
        nxt = dict(cur)
        for k in ("tags", "notes", "star", "metrics", "updated_at", "updated_by"):
            if k in r:
                nxt[k] = r[k]
        nxt["version"] = r["version"]
        st[r["path"]] = nxt
    return st


cases = []


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def case(name, file, kind="log", **expect):
    c = {"name": name, "file": file, "kind": kind}
    for k in ("after_id", "recover"):
        if k in expect:
            c[k] = expect.pop(k)
    c["expect"] = expect
    cases.append(c)


# --- valid log, every field --------------------------------------------------
valid = b"".join(ours(r) for r in VALID)
write("valid.jsonl", valid)
case("valid log: every field, UTF-8, exact metrics, ids above 2^31", "valid.jsonl",
     rc="ok", items=4, idems=1, skipped=0, torn=False, corrupt_line=0,
     max_id=9007199254740991, good_len=len(valid), state=state_of(VALID))
case("after_id skips item records at or below it", "valid.jsonl", after_id=2,
     rc="ok", items=2, idems=1, skipped=2, torn=False, corrupt_line=0,
     max_id=9007199254740991, state=state_of([CAT3, BIG]))

# --- torn tails ---------------------------------------------------------------
good3 = b"".join(ours(r) for r in VALID[:3])
last = ours(CAT3)
write("torn-no-newline.jsonl", good3 + last[:-1])
case("torn tail: a complete record without its newline", "torn-no-newline.jsonl",
     rc="ok", items=2, idems=1, torn=True, torn_bytes=len(last) - 1, corrupt_line=0,
     good_len=len(good3), state=state_of(VALID[:3]))
write("torn-half-line.jsonl", good3 + last[: len(last) // 2])
case("torn tail: half a line", "torn-half-line.jsonl",
     rc="ok", items=2, idems=1, torn=True, torn_bytes=len(last) // 2, corrupt_line=0,
     good_len=len(good3), state=state_of(VALID[:3]))
bad_last = last.replace(b'"star":5', b'"star":4')
write("torn-bad-crc-last.jsonl", good3 + bad_last)
case("torn tail: the last line fails its crc", "torn-bad-crc-last.jsonl",
     rc="ok", items=2, idems=1, torn=True, torn_bytes=len(bad_last), corrupt_line=0,
     good_len=len(good3), state=state_of(VALID[:3]))
write("torn-zeros.jsonl", good3 + b"\0" * 700)
case("torn tail: zero-filled blocks after the last record", "torn-zeros.jsonl",
     rc="ok", items=2, idems=1, torn=True, torn_bytes=700, corrupt_line=0,
     good_len=len(good3), state=state_of(VALID[:3]))
write("torn-two-bad-lines.jsonl", good3 + b'{"id":7,"ty\n' + last[:20])
case("torn tail: a broken line and a partial one, nothing good after", "torn-two-bad-lines.jsonl",
     rc="ok", items=2, idems=1, torn=True, torn_bytes=12 + 20, corrupt_line=0,
     good_len=len(good3), state=state_of(VALID[:3]))

# --- corruption in the middle -------------------------------------------------
l1, l2 = ours(CAT), ours(CONFLICT)
write("corrupt-middle-json.jsonl", l1 + l2 + b'{"id":3,"type":"item-upd\n' + ours(CAT3))
case("corrupt: bad JSON followed by a good line", "corrupt-middle-json.jsonl",
     rc="corrupt", corrupt_line=3, corrupt_offset=len(l1 + l2), good_len=len(l1 + l2),
     items=1, idems=1, state=state_of([CAT]))
case("recover: cut at the last good line before the corruption", "corrupt-middle-json.jsonl",
     recover=True, rc="ok", corrupt_line=3, corrupt_offset=len(l1 + l2), good_len=len(l1 + l2),
     dropped_lines=2, items=1, idems=1, torn=False, state=state_of([CAT]))
flipped = ours(CAFE).replace(b'"tab-2"', b'"tab-3"')
write("corrupt-middle-crc.jsonl", l1 + flipped + ours(CAT3) + ours(BIG))
case("corrupt: crc mismatch in the middle", "corrupt-middle-crc.jsonl",
     rc="corrupt", corrupt_line=2, corrupt_offset=len(l1), good_len=len(l1), items=1,
     state=state_of([CAT]))
bad_path = dict(CAT3, path="/animals/../cat.jpg")
write("corrupt-invalid-field-last.jsonl", l1 + ours(bad_path))
case("corrupt: a well-formed record with a non-canonical path, even as the last line",
     "corrupt-invalid-field-last.jsonl", rc="corrupt", corrupt_line=2, corrupt_offset=len(l1),
     good_len=len(l1), items=1, state=state_of([CAT]))
bad_star = dict(CAT3, star=7)
write("corrupt-star-out-of-range.jsonl", ours(bad_star) + l1)
case("corrupt: star 7", "corrupt-star-out-of-range.jsonl", rc="corrupt", corrupt_line=1,
     corrupt_offset=0, good_len=0, items=0, state={})
bad_ver = dict(CAT3, version=9007199254740992)
write("corrupt-version-too-big.jsonl", ours(bad_ver) + l1)
case("corrupt: version 2^53", "corrupt-version-too-big.jsonl", rc="corrupt", corrupt_line=1,
     corrupt_offset=0, good_len=0, items=0, state={})

# --- duplicates and out-of-order ----------------------------------------------
v2 = item(10, "/a.png", 2, tags=["two"], notes="", star=None, updated_at=T, updated_by="x",
          metrics={})
v3 = item(11, "/a.png", 3, tags=["three"], notes="", star=1, updated_at=T, updated_by="x",
          metrics={})
v4 = item(12, "/a.png", 4, tags=["four"], notes="n", star=2, updated_at=T, updated_by="y",
          metrics={"m": 1})
dup = [v2, v3, v3, v2, v4, v3, v4, v2]
write("duplicates-out-of-order.jsonl", b"".join(ours(r) for r in dup))
case("duplicated and re-ordered records: the newest version wins", "duplicates-out-of-order.jsonl",
     rc="ok", items=8, idems=0, torn=False, corrupt_line=0, max_id=12, state=state_of(dup))

# --- missing fields -----------------------------------------------------------
m1 = {"id": 20, "type": "item-updated", "path": "/m.png", "version": 2, "tags": ["t"],
      "notes": "keep me", "star": 3, "updated_at": T, "updated_by": "a", "metrics": {"x": 2.5}}
m2 = {"id": 21, "type": "item-updated", "path": "/m.png", "version": 3, "star": 4}
m3 = {"id": 22, "path": "/m.png", "version": 4, "notes": "no type member"}
m4 = {"id": 23, "type": "item-updated", "path": "/m.png", "notes": "no version: skipped"}
m5 = {"id": 24, "type": "item-updated", "version": 9, "notes": "no path: skipped"}
m6 = {"type": "item-updated", "path": "/m.png", "version": 9, "notes": "no id: skipped"}
m7 = {"id": "25", "type": "item-updated", "path": "/m.png", "version": 9, "notes": "string id"}
m8 = {"id": 26, "type": "metrics-updated", "path": "/m.png", "version": 9}
miss = [m1, m2, m3, m4, m5, m6, m7, m8]
write("missing-fields.jsonl", b"".join(ours(r) for r in miss) + b"\n  \n")
case("missing fields keep previous values; records without id/path/version are skipped",
     "missing-fields.jsonl", rc="ok", items=3, idems=0, skipped=7, torn=False, corrupt_line=0,
     max_id=26, state=state_of([m1, m2, m3]))

# --- ASCII escapes vs UTF-8 ----------------------------------------------------
u = item(30, "/unicode/\u00e9\u00e8.png", 2, tags=["\u00e9t\u00e9", "\U0001F600"],
         notes="\u65e5\u672c\u8a9e \u00e9 \U0001F600", star=2, updated_at=T, updated_by="u",
         metrics={"\u00e9": 0.5})
write("utf8.jsonl", ours(u))
write("ascii-escaped.jsonl", upstream(u))
case("UTF-8 line", "utf8.jsonl", rc="ok", items=1, state=state_of([u]))
case("the same record ASCII-escaped (upstream), no crc", "ascii-escaped.jsonl", rc="ok",
     items=1, state=state_of([u]))

# --- upstream workspace: snapshot (pretty, sorted, version 2) + log -------------
up_items = {
    "/animals/cat.jpg": {"notes": "caf\u00e9", "star": 3, "tags": ["a", " a ", "", "b", "a"],
                         "updated_at": "2026-01-02T03:04:05.123456+00:00",
                         "updated_by": "session:abcd1234", "version": 4},
    "/animals/dog.jpg": {"notes": "", "star": None, "tags": [], "updated_at": "",
                         "updated_by": "server", "version": 2, "metrics": {"score": 0.25}},
    "/b.png": {"notes": "x", "star": 1, "tags": ["t"], "updated_at": "2026-01-02T03:04:05+00:00",
               "updated_by": "session:ffff0000"},
}
up_snapshot = {"items": up_items, "last_event_id": 3,
               "mutations": {"k9": {"payload": {"sidecar": {"v": 1}, "mutation_id": "k9",
                                                "persistence": "saved"}, "status": 200}},
               "version": 2}
write("upstream-snapshot.json",
      json.dumps(up_snapshot, indent=2, sort_keys=True, ensure_ascii=True).encode())


def up_line(i, path, version, **kw):
    side = {"path": path, "version": version, "tags": kw.get("tags", []),
            "notes": kw.get("notes", ""), "star": kw.get("star"),
            "updated_at": "2026-01-02T03:04:06.000001+00:00", "updated_by": "session:abcd1234"}
    ev = {"boot_epoch": "0" * 32, "event_id": i}
    rec = {"id": i, "type": "item-updated"}
    rec.update(side)
    rec.update({"mutation_id": kw.get("mutation_id", "put:6f1c"), "changed_fields": ["star"],
                "accepted_event": ev, "persistence": "pending",
                "durable_watermark": {"boot_epoch": "0" * 32, "event_id": i - 1},
                "mutation_result": {"status": 200, "payload": {"sidecar": dict(side, v=1),
                                                               "mutation_id": "k",
                                                               "accepted_event": ev,
                                                               "persistence": "pending"}}})
    return rec


u1 = up_line(2, "/animals/cat.jpg", 4, star=3, notes="old")          # id <= 3: below
u2 = up_line(4, "/animals/cat.jpg", 5, star=5, notes="caf\u00e9 \u2615", tags=["x"])
u3 = up_line(5, "/animals/dog.jpg", 2, star=1)                      # version not newer
u4 = up_line(6, "/gone.png", 2, star=2)                             # unknown path: kept
write("upstream-log.jsonl", b"".join(upstream(r) for r in [u1, u2, u3, u4]))
snap_state = {
    "/animals/cat.jpg": {"version": 4, "tags": ["a", "b"], "notes": "caf\u00e9", "star": 3,
                         "metrics": {}, "updated_at": "2026-01-02T03:04:05.123456+00:00",
                         "updated_by": "session:abcd1234"},
    "/animals/dog.jpg": {"version": 2, "tags": [], "notes": "", "star": None,
                         "metrics": {"score": 0.25}, "updated_at": "",
                         "updated_by": "server"},
}
case("upstream snapshot: pretty-printed, sorted keys, version 2, tags normalized",
     "upstream-snapshot.json", kind="snapshot", rc="ok", items=2, last_id=3, state=snap_state)
after = dict(snap_state)
after["/animals/cat.jpg"] = {"version": 5, "tags": ["x"], "notes": "caf\u00e9 \u2615",
                             "star": 5, "metrics": {},
                             "updated_at": "2026-01-02T03:04:06.000001+00:00",
                             "updated_by": "session:abcd1234"}
after["/gone.png"] = {"version": 2, "tags": [], "notes": "", "star": 2, "metrics": {},
                      "updated_at": "2026-01-02T03:04:06.000001+00:00",
                      "updated_by": "session:abcd1234"}
case("upstream log after its snapshot (extra members, no crc, ASCII escapes)",
     "upstream-log.jsonl", after_id=3, base="upstream-snapshot.json", rc="ok", items=3,
     skipped=1, unchecked=4, torn=False, corrupt_line=0, max_id=6, state=after)

v1 = {"version": 1, "last_event_id": 0,
      "items": {"/a.png": {"tags": ["old"], "notes": "", "star": None, "version": 2,
                           "updated_at": "", "updated_by": "server"}}}
write("upstream-snapshot-v1.json",
      json.dumps(v1, indent=2, sort_keys=True, ensure_ascii=True).encode())
case("upstream snapshot version 1", "upstream-snapshot-v1.json", kind="snapshot", rc="ok",
     items=1, last_id=0,
     state={"/a.png": {"version": 2, "tags": ["old"], "notes": "", "star": None, "metrics": {},
                       "updated_at": "", "updated_by": "server"}})

# --- our snapshot (compact, crc) and a damaged copy ----------------------------
ours_snap_items = {"/a.png": {"tags": ["t"], "notes": "\u00e9", "star": 2, "version": 3,
                              "updated_at": T, "updated_by": "tab-1", "metrics": {"m": 0.1}}}
idem_entries = [CONFLICT, dict(CAT, id=1)]
head = compact({"version": 2, "last_event_id": 7, "items": ours_snap_items, "mutations": {},
                "labelsync": {"idempotency": idem_entries}}).encode()
assert head.endswith(b"]}}")
pre = head[:-2]  # drop "}}" of labelsync and root
crc = crc32c(pre + b"}}")
snap = pre + b',"crc":"%08x"}}' % crc
write("snapshot-ours.json", snap)
case("our snapshot: compact, labelsync idempotency entries, crc", "snapshot-ours.json",
     kind="snapshot", rc="ok", items=2, idems=1, last_id=7,
     state=state_of([{"type": "item-updated", "path": "/a.png", **ours_snap_items["/a.png"]},
                     CAT]))
write("snapshot-bad-crc.json", snap.replace(b'"star":2', b'"star":3'))
case("our snapshot with a flipped byte: refused", "snapshot-bad-crc.json", kind="snapshot",
     rc="corrupt")
write("snapshot-not-json.json", b'{"version":2,"items":{')
case("a truncated snapshot: refused", "snapshot-not-json.json", kind="snapshot", rc="corrupt")
write("snapshot-bad-path.json", b'{"version":2,"items":{"a.png":{"version":2}}}')
case("a snapshot with a non-canonical path: refused", "snapshot-bad-path.json", kind="snapshot",
     rc="corrupt")

with open(os.path.join(HERE, "cases.json"), "w") as f:
    json.dump({"comment": "Generated by gen.py: what replaying each file must give. "
                          "state = the final record of every path (newest version wins, "
                          "missing fields keep their value).",
               "cases": cases}, f, indent=1, ensure_ascii=False, sort_keys=False)
    f.write("\n")
