"""Helpers for the metering tests (imported, not run): reading the ledger
back through the API, and a strict parser of the Prometheus text format
(version 0.0.4) that the metrics tests run on every line of a scrape."""
import math
import re

NAME_RE = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_RE = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def all_rows(ed, token, **query):
    """Every ledger row the token may see (all pages of /v1/invocations),
    with from= the epoch so that no default range hides any."""
    rows, after = [], 0
    q = dict(query)
    q.setdefault("from", "1970-01-01")
    while True:
        q["after"] = str(after)
        q["limit"] = "10000"
        path = "/v1/invocations?" + "&".join("%s=%s" % kv for kv in q.items())
        r = ed.request("GET", path, token)
        if r.status != 200:
            raise RuntimeError("GET %s: %r" % (path, r))
        page = r.json()
        rows += page["invocations"]
        if page["next"] is None:
            return rows
        after = page["next"]


def usage(ed, token, **query):
    q = dict(query)
    q.setdefault("from", "1970-01-01")
    path = "/v1/usage?" + "&".join("%s=%s" % kv for kv in q.items())
    r = ed.request("GET", path, token)
    if r.status != 200:
        raise RuntimeError("GET %s: %r" % (path, r))
    return r.json()


def sums(rows):
    """What the usage API must report for these rows."""
    s = {"requests": len(rows), "billed_ms": 0, "cold_starts": 0,
         "mib_ms": 0}
    for o in ("ok", "error", "timeout", "crash", "throttled", "rejected"):
        s[o] = 0
    for r in rows:
        s[r["outcome"]] += 1
        s["billed_ms"] += r["billed_ms"]
        s["mib_ms"] += r["billed_ms"] * r["memory_mib"]
        s["cold_starts"] += r.get("start_kind") == "cold"
    s["invocations"] = s["ok"] + s["error"] + s["timeout"] + s["crash"]
    s["errors"] = s["error"] + s["timeout"] + s["crash"]
    s["gb_seconds"] = s["mib_ms"] / 1024.0 / 1000.0
    return s


def same_totals(usage_row, rows):
    """The usage row's counts equal the sums over rows (GB-s to 1e-6)."""
    want = sums(rows)
    bad = []
    for k in ("requests", "invocations", "errors", "ok", "error", "timeout",
              "crash", "throttled", "rejected", "cold_starts", "billed_ms"):
        if usage_row.get(k) != want[k]:
            bad.append("%s %r != %r" % (k, usage_row.get(k), want[k]))
    if abs(usage_row.get("gb_seconds", -1) - want["gb_seconds"]) > 1e-6:
        bad.append("gb_seconds %r != %r" % (usage_row.get("gb_seconds"),
                                            want["gb_seconds"]))
    return bad


# --- Prometheus text format ---------------------------------------------

def _labels(s, lineno):
    """Parses '{a="x",b="y"}' (the braces included) strictly."""
    assert s[0] == "{" and s[-1] == "}", "line %d: labels %r" % (lineno, s)
    out, i, body = {}, 0, s[1:-1]
    while i < len(body):
        m = re.match(LABEL_RE, body[i:])
        assert m, "line %d: label name at %r" % (lineno, body[i:])
        name = m.group(0)
        i += len(name)
        assert body[i:i + 2] == '="', "line %d: =\" after %s" % (lineno, name)
        i += 2
        val = []
        while True:
            assert i < len(body), "line %d: unterminated value" % lineno
            c = body[i]
            if c == "\\":
                nxt = body[i + 1]
                assert nxt in '\\"n', "line %d: escape \\%s" % (lineno, nxt)
                val.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                assert c != "\n"
                val.append(c)
                i += 1
        assert name not in out, "line %d: label %s twice" % (lineno, name)
        out[name] = "".join(val)
        if i < len(body):
            assert body[i] == ",", "line %d: , between labels" % lineno
            i += 1
    return out


def _value(s, lineno):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s), \
        "line %d: value %r" % (lineno, s)
    return float(s)


def parse_metrics(text):
    """Parses every line; returns {family: {"type", "help", "samples":
    [(name, labels, value)]}}. Raises AssertionError at the first line that
    breaks the format or its rules (TYPE before samples, one family's
    samples together, no series twice, histograms cumulative with +Inf =
    _count, counters non-negative)."""
    fams, current, seen, done = {}, None, set(), set()
    assert text.endswith("\n"), "the text ends with a newline"
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        assert line == line.strip() and line, "line %d: blank or padded" % lineno
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (%s) (.+)" % NAME_RE, line)
            assert m, "line %d: comment %r" % (lineno, line)
            kind, name, rest = m.groups()
            f = fams.setdefault(name, {"type": None, "help": None,
                                       "samples": []})
            if kind == "TYPE":
                assert rest in TYPES, "line %d: type %r" % (lineno, rest)
                assert f["type"] is None and not f["samples"], \
                    "line %d: TYPE %s again or late" % (lineno, name)
                f["type"] = rest
            else:
                assert f["help"] is None, "line %d: HELP twice" % lineno
                f["help"] = rest
            if current != name:
                assert name not in done, "line %d: %s split" % (lineno, name)
                if current:
                    done.add(current)
                current = name
            continue
        m = re.fullmatch(r"(%s)(\{.*\})? (\S+)( -?\d+)?" % NAME_RE, line)
        assert m, "line %d: sample %r" % (lineno, line)
        name, labels, value = m.group(1), m.group(2), m.group(3)
        labels = _labels(labels, lineno) if labels else {}
        value = _value(value, lineno)
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and fams.get(base, {}).get("type") == \
                    "histogram":
                fam = base
        assert fam == current, "line %d: %s outside its family" % (lineno, name)
        f = fams[fam]
        assert f["type"], "line %d: %s before its TYPE" % (lineno, name)
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, "line %d: series twice: %r" % (lineno, key)
        seen.add(key)
        if f["type"] == "counter":
            assert name.endswith("_total") and value >= 0, \
                "line %d: counter %s %r" % (lineno, name, value)
        f["samples"].append((name, labels, value))
    for name, f in fams.items():
        if f["type"] != "histogram":
            continue
        series = {}
        for sname, labels, value in f["samples"]:
            rest = tuple(sorted((k, v) for k, v in labels.items()
                                if k != "le"))
            s = series.setdefault(rest, {"buckets": [], "count": None})
            if sname.endswith("_bucket"):
                s["buckets"].append((float(labels["le"].replace(
                    "Inf", "inf")), value))
            elif sname.endswith("_count"):
                s["count"] = value
        for rest, s in series.items():
            les = [le for le, _ in s["buckets"]]
            vals = [v for _, v in s["buckets"]]
            assert les == sorted(les) and math.isinf(les[-1]), \
                "%s %r: bucket bounds" % (name, rest)
            assert vals == sorted(vals), "%s %r: cumulative" % (name, rest)
            assert vals[-1] == s["count"], "%s %r: +Inf = count" % (name, rest)
    return fams


def sample(fams, name, **labels):
    """The value of the one sample of `name` with exactly these labels."""
    fam = fams.get(name) or fams.get(re.sub(r"_(bucket|sum|count)$", "", name))
    for sname, lab, value in (fam or {}).get("samples", []):
        if sname == name and lab == labels:
            return value
    return None
