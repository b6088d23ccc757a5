#!/usr/bin/env python3
"""make-seeds.py - write the seed-* files of fuzz/corpus/<target>/ from spec/.

    python3 fuzz/make-seeds.py        (or: make fuzz-seeds)

Sources (CONTRIBUTING.md: the same vectors feed the tests, the fuzz seeds and
the runner):
  canon       spec/vectors/canon.json: every input (raw, hex, query text, repeated)
  patch       spec/vectors/patch.json: every body (JSON, raw text, raw hex)
  wal_replay  spec/vectors/wal/*.jsonl and *.json: logs and snapshots
  headers     spec/cases/*.json: every If-Match, If-None-Match, Idempotency-Key,
              Last-Event-ID and Origin value and every query string sent
  request     spec/cases/*.json: the request steps of each case (up to 8), in
              the input format of fuzz/fuzz_request.c
  sse         spec/PROTOCOL.md §15 shapes, written below (the runner's parser
              has no vector file)

Only seed-* files are replaced; regress-* files and the inputs that
`make fuzz-merge` added are left alone.  Output is deterministic.
"""
import json
import os
import re
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "spec")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

MAX_LEN = {"canon": 8192, "patch": 8192, "wal_replay": 16384, "sse": 4096,
           "headers": 16384, "request": 16384}
SEP = b"\x1e"
# Leases fuzz_request's counter random source hands out after its prelude took
# 0202... and 0303...: the first join of a seed gets 0404..., the next 0505...
LEASES = [bytes([k]).hex() * 16 for k in range(4, 40)]


def name_of(s):
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-")[:120] or "x"


class Target:
    def __init__(self, name):
        self.name = name
        self.files = {}  # file name -> bytes
        self.seen = set()

    def add(self, label, data):
        if not isinstance(data, bytes):
            data = data.encode("utf-8")
        if len(data) > MAX_LEN[self.name] or data in self.seen:
            return
        self.seen.add(data)
        fname = "seed-" + name_of(label)
        base, k = fname, 2
        while fname in self.files:
            fname = "%s-%d" % (base, k)
            k += 1
        self.files[fname] = data

    def write(self):
        d = os.path.join(CORPUS, self.name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))
        for f, data in sorted(self.files.items()):
            with open(os.path.join(d, f), "wb") as fh:
                fh.write(data)
        print("%-11s %4d seeds" % (self.name, len(self.files)))


def load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def canon_seeds(t):
    for v in load(os.path.join(SPEC, "vectors", "canon.json"))["vectors"]:
        if "input" in v:
            t.add(v["id"], v["input"])
        elif "input_hex" in v:
            t.add(v["id"], bytes.fromhex(v["input_hex"]))
        elif "query" in v:
            t.add(v["id"], v["query"])
        elif "input_repeat" in v:
            r = v["input_repeat"]
            t.add(v["id"], r["unit"] * r["count"])


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def patch_seeds(t):
    for v in load(os.path.join(SPEC, "vectors", "patch.json"))["vectors"]:
        if "body" in v:
            t.add(v["id"], compact(v["body"]))
        elif "raw" in v:
            t.add(v["id"], v["raw"])
        elif "raw_hex" in v:
            t.add(v["id"], bytes.fromhex(v["raw_hex"]))


def wal_seeds(t):
    d = os.path.join(SPEC, "vectors", "wal")
    for f in sorted(os.listdir(d)):
        if f == "cases.json" or not (f.endswith(".jsonl") or f.endswith(".json")):
            continue
        with open(os.path.join(d, f), "rb") as fh:
            t.add(f.rsplit(".", 1)[0], fh.read())


def sse_seeds(t):
    streams = {
        "retry-hint": b"retry: 2000\n\n",
        "item-updated": b'id: 1\nevent: item-updated\ndata: {"path":"/animals/cat.jpg",'
                        b'"version":2,"event_id":1}\n\n',
        "metrics-updated": b'id: 7\nevent: metrics-updated\ndata: {"path":"/a.png",'
                           b'"metrics":{"m":0.5}}\n\n',
        "presence": b'id: 3\nevent: presence\ndata: {"gallery_id":"/animals","viewing":1,'
                    b'"editing":0}\n\n',
        "resync": b'retry: 2000\n\nevent: resync\ndata: {"reason":"too_old"}\n\n',
        "keepalive": b": keepalive\n\n",
        "crlf": b"id: 2\r\nevent: e\r\ndata: a\r\ndata: b\r\n\r\n",
        "cr-only": b"data: x\rdata: y\r\r",
        "bom": b"\xef\xbb\xbfdata: after bom\n\n",
        "double-bom": b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n",
        "multi-data": b"data: 1\ndata:\ndata:  two spaces\n\n",
        "field-no-colon": b"data\n\nevent\ndata: x\n\n",
        "id-reset": b"id: 5\ndata: a\n\nid\ndata: b\n\n",
        "id-nul": b"id: 1\x002\ndata: a\n\n",
        "retry-bad": b"retry: 12a\nretry: 99999999999999999999\n\n",
        "unterminated": b"data: complete\n\ndata: incomplete\n",
        "utf8-invalid": b"data: \xc3\x28 \xed\xa0\x80 \xf0\x9f\x98\n\n",
        "unknown-field": b"foo: bar\ndata: x\n\n",
        "comment-only": b":a\n:b\n\n",
        "long-line": b"data: " + b"x" * 300 + b"\n\n",
        "long-data": (b"data: " + b"y" * 200 + b"\n") * 6 + b"\n",
    }
    for k, v in streams.items():
        t.add(k, v)


def subst(value, env):
    """Replace {{name}} in strings; a string that is exactly one template takes the value's type."""
    if isinstance(value, str):
        m = re.fullmatch(r"\{\{([A-Za-z0-9_]+)\}\}", value)
        if m and m.group(1) in env and not isinstance(env[m.group(1)], str):
            return env[m.group(1)]
        return re.sub(r"\{\{([A-Za-z0-9_]+)\}\}",
                      lambda mm: str(env.get(mm.group(1), "1")), value)
    if isinstance(value, list):
        return [subst(v, env) for v in value]
    if isinstance(value, dict):
        return {k: subst(v, env) for k, v in value.items()}
    return value


def request_bytes(req, env, client):
    """One request of a case in fuzz_request's input format."""
    req = subst(req, env)
    q = []
    for k, v in (req.get("query") or {}).items():
        for x in (v if isinstance(v, list) else [v]):
            if x is None:
                continue
            if not isinstance(x, str):
                x = compact(x)
            q.append(urllib.parse.quote(k, safe="-._~") + "=" +
                     urllib.parse.quote(x, safe="-._~"))
    if req.get("raw_query"):
        q.append(req["raw_query"])
    target = req["path"] + ("?" + "&".join(q) if q else "")
    headers = {"X-Client-Id": "r-" + client}
    body, too_large = b"", False
    if "json" in req:
        headers["Content-Type"] = "application/json"
        body = compact(req["json"]).encode("utf-8")
    elif "body" in req:
        body = req["body"].encode("utf-8")
    elif "body_hex" in req:
        body = bytes.fromhex(req["body_hex"])
    elif "body_fill" in req:
        f = req["body_fill"]
        n = len(f.get("prefix", "")) + len(f["fill"]) * f["count"] + len(f.get("suffix", ""))
        if n > 65536:
            too_large = True  # the transport stops at HTTP_MAX_BODY and says so
            body = (f.get("prefix", "") + f["fill"] * 64).encode("utf-8")
        else:
            body = (f.get("prefix", "") + f["fill"] * f["count"] + f.get("suffix", "")).encode()
    for k, v in (req.get("headers") or {}).items():
        for h in list(headers):
            if h.lower() == k.lower():
                del headers[h]
        if v is not None:
            headers[k] = v if isinstance(v, str) else str(v)
    out = (b"!" if too_large else b"") + req["method"].encode() + b" " + target.encode("utf-8")
    out += b"\n" + b"".join(("%s: %s\n" % (k, v)).encode("utf-8") for k, v in headers.items())
    return out + b"\n" + body


def case_requests(case):
    """(request, capture, client) of the case's request-like steps, in order."""
    for s in case.get("steps", []):
        if "request" in s:
            yield s["request"], s.get("capture", {}), s.get("client", "default")
        elif "parallel" in s:
            p = s["parallel"]
            for r in (p.get("requests") or [p.get("request")])[:2]:
                if r:
                    yield r, {}, s.get("client", "default")
        elif "repeat" in s and isinstance(s["repeat"], dict) and "request" in s["repeat"]:
            yield s["repeat"]["request"], s["repeat"].get("capture", {}), "default"


def case_seeds(treq, thead):
    d = os.path.join(SPEC, "cases")
    for f in sorted(os.listdir(d)):
        if not f.endswith(".json"):
            continue
        case = load(os.path.join(d, f))
        cid = case.get("id", f[:-5])
        env = {"run": "r", "case": cid, "i": "0"}
        for k, v in (case.get("vars") or {}).items():
            env[k] = subst(v, env)
        parts, writes, leases = [], {}, 0
        for req, capture, client in case_requests(case):
            if len(parts) == 8:
                break
            try:
                data = request_bytes(req, env, client)
            except (KeyError, TypeError, ValueError):
                continue
            parts.append(data)
            # header and query seeds for fuzz_headers
            for k, v in (subst(req.get("headers") or {}, env)).items():
                if isinstance(v, str) and k.lower() in ("if-match", "if-none-match",
                                                        "idempotency-key", "last-event-id",
                                                        "origin"):
                    thead.add("%s-%s" % (cid, k.lower()), v)
            line = data.split(b"\n", 1)[0]
            if b"?" in line:
                thead.add(cid + "-query", line.split(b"?", 1)[1])
            # what later steps captured: plausible values for a fresh server
            p = (req.get("query") or {}).get("path")
            if req.get("method") in ("PATCH", "PUT"):
                writes[p] = writes.get(p, 0) + 1
            for name, src in capture.items():
                if src.endswith("/version"):
                    env[name] = 1 + writes.get(p, 0)
                elif src.endswith("/lease_id"):
                    env[name] = LEASES[min(leases, len(LEASES) - 1)]
                    leases += 1
                elif src == "header:ETag":
                    env[name] = '"%d"' % (1 + writes.get(p, 0))
                else:
                    env[name] = 1
        if parts:
            data = SEP.join(parts)
            while len(data) > MAX_LEN["request"] and len(parts) > 1:
                parts.pop()
                data = SEP.join(parts)
            treq.add(cid, data)


def main():
    targets = {n: Target(n) for n in MAX_LEN}
    canon_seeds(targets["canon"])
    patch_seeds(targets["patch"])
    wal_seeds(targets["wal_replay"])
    sse_seeds(targets["sse"])
    case_seeds(targets["request"], targets["headers"])
    for t in targets.values():
        t.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
