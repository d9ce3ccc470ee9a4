#!/usr/bin/env python3
"""The metering pictures, as hand-written SVG (docs/metering.md).

    python3 bench/plot_meter.py ROWS.json METRICS.txt OUT_DIR

ROWS.json: {"t0": unix seconds, "rows": [...]} (the ledger's rows from
GET /v1/invocations); METRICS.txt: a GET /metrics scrape. Draws
OUT_DIR/meter-usage.svg (invocation requests per function per second,
throttled ones apart, from the ledger) and OUT_DIR/meter-latency.svg (the
ember_invocation_latency_seconds and ember_cold_start_seconds histograms
of the scrape, one bar per bucket). Python 3 standard library only.
"""
import datetime
import json
import math
import os
import re
import sys
from xml.sax.saxutils import escape

COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]
W, H = 960, 480
ML, MR, MT, MB = 70, 200, 50, 60
PW, PH = W - ML - MR, H - MT - MB


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def svg(title, body):
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'font-family="sans-serif" font-size="12">\n<rect width="100%%" '
            'height="100%%" fill="white"/>\n<text x="%d" y="28" '
            'font-size="16">%s</text>\n%s</svg>\n' %
            (W, H, ML, escape(title), "\n".join(body)))


def axes(body, xmax, ymax, xlabel, ylabel, xticks, yticks):
    body.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' %
                (ML, MT + PH, ML + PW, MT + PH))
    body.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' %
                (ML, MT, ML, MT + PH))
    for x, label in xticks:
        px = ML + PW * x / xmax
        body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" '
                    'stroke="black"/>' % (px, MT + PH, px, MT + PH + 4))
        body.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' %
                    (px, MT + PH + 18, escape(label)))
    for y in yticks:
        py = MT + PH - PH * y / ymax
        body.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" '
                    'stroke="#ddd"/>' % (ML, py, ML + PW, py))
        body.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' %
                    (ML - 6, py + 4, y))
    body.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' %
                (ML + PW // 2, H - 18, escape(xlabel)))
    body.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" '
                'text-anchor="middle">%s</text>' %
                (MT + PH // 2, MT + PH // 2, escape(ylabel)))


def nice_ticks(vmax, n=5):
    if vmax <= 0:
        return [0], 1
    step = 10 ** math.floor(math.log10(vmax / n))
    for m in (1, 2, 5, 10):
        if vmax / (step * m) <= n:
            step *= m
            break
    top = step * math.ceil(vmax / step)
    return [step * i for i in range(int(top / step) + 1)], top


def usage_svg(rows, t0):
    series = {}
    for r in rows:
        t = int(parse_time(r["start"]) - t0)
        key = r["function"] + (" (throttled)" if r["outcome"] == "throttled"
                               else "")
        series.setdefault(key, {})
        series[key][t] = series[key].get(t, 0) + 1
    if not series:
        return svg("no rows", [])
    tmax = max(max(s) for s in series.values()) + 1
    ymax = max(max(s.values()) for s in series.values())
    yticks, ytop = nice_ticks(ymax)
    body = []
    step = max(1, tmax // 10)
    axes(body, tmax, ytop, "seconds into the load run",
         "requests per second (ledger rows)",
         [(x, str(x)) for x in range(0, tmax + 1, step)], yticks)
    for i, (name, s) in enumerate(sorted(series.items())):
        c = COLOURS[i % len(COLOURS)]
        pts = " ".join("%.1f,%.1f" % (ML + PW * t / tmax,
                                      MT + PH - PH * s.get(t, 0) / ytop)
                       for t in range(tmax))
        body.append('<polyline fill="none" stroke="%s" stroke-width="2" '
                    'points="%s"/>' % (c, pts))
        body.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                    % (ML + PW + 16, MT + 20 * i, c))
        body.append('<text x="%d" y="%d">%s (%d)</text>' %
                    (ML + PW + 34, MT + 20 * i + 11, escape(name),
                     sum(s.values())))
    return svg("Usage per function over time, from the ledger "
               "(GET /v1/invocations)", body)


def histograms(text):
    """{(name, labels-without-le): [(le, cumulative count)]}"""
    out = {}
    for line in text.splitlines():
        m = re.match(r'(\w+)_bucket\{(.*)\} (\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        le = labels.pop("le")
        key = (m.group(1), tuple(sorted(labels.items())))
        out.setdefault(key, []).append((le, float(m.group(3))))
    return out


def latency_svg(text):
    h = histograms(text)
    want = [("ember_invocation_latency_seconds", (("start", "warm"),),
             "warm invocations (latency in emberd)"),
            ("ember_invocation_latency_seconds", (("start", "cold"),),
             "cold invocations (latency in emberd)"),
            ("ember_cold_start_seconds", (), "restores (cold start)")]
    series = []
    for name, labels, title in want:
        b = h.get((name, labels))
        if not b:
            continue
        counts, prev = [], 0
        for le, cum in b:
            counts.append((le, cum - prev))
            prev = cum
        series.append((title, counts, prev))
    if not series:
        return svg("no histograms", [])
    nb = len(series[0][1])
    body = []
    xt = [(i + 0.5, le if le != "+Inf" else "inf")
          for i, (le, _) in enumerate(series[0][1])]
    axes(body, nb, 100, "bucket upper bound (seconds)",
         "share of the series (%)", xt[::2], [0, 25, 50, 75, 100])
    bw = PW / nb / (len(series) + 1)
    for k, (title, counts, total) in enumerate(series):
        c = COLOURS[k]
        for i, (le, n) in enumerate(counts):
            share = 100.0 * n / total if total else 0
            x = ML + PW * i / nb + bw * (k + 0.5)
            body.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
                        'fill="%s"/>' % (x, MT + PH - PH * share / 100, bw,
                                         PH * share / 100, c))
        body.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                    % (ML + PW + 16, MT + 20 * k, c))
        body.append('<text x="%d" y="%d">%s</text>' %
                    (ML + PW + 34, MT + 20 * k + 11,
                     escape("%s, n=%d" % (title.split(" (")[0], total))))
    return svg("Latency histograms from GET /metrics (buckets 50 us to 30 s)",
               body)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    doc = json.load(open(sys.argv[1]))
    text = open(sys.argv[2]).read()
    out = sys.argv[3]
    with open(os.path.join(out, "meter-usage.svg"), "w") as f:
        f.write(usage_svg(doc["rows"], doc["t0"]))
    with open(os.path.join(out, "meter-latency.svg"), "w") as f:
        f.write(latency_svg(text))
    print("wrote %s/meter-usage.svg and %s/meter-latency.svg" % (out, out))


if __name__ == "__main__":
    main()
