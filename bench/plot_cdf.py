#!/usr/bin/env python3
"""Latency CDF of the cold-start benchmark, as a hand-written SVG.

    python3 bench/plot_cdf.py [bench/results/coldstart.json] [OUT.svg]

Reads the samples that bench/coldstart wrote (scenarios a, b, c and the
QEMU peer d) and draws one empirical CDF per scenario on a logarithmic time
axis (the scenarios span three orders of magnitude). Python 3 standard
library only: no matplotlib on the build machines.
"""
import json
import math
import sys
from xml.sax.saxutils import escape

SERIES = [
    # (key in "scenarios", label, colour)
    ("b_shell_restore", "(b) restore into a pre-created shell", "#1b9e77"),
    ("a_process_restore", "(a) new ember-vmm process, --restore", "#d95f02"),
    ("c_boot_from_scratch", "(c) micro guest booted from scratch", "#7570b3"),
    ("d_qemu_restore", "(d) QEMU microvm -incoming (to running)", "#e7298a"),
]

W, H = 960, 540
ML, MR, MT, MB = 70, 30, 50, 150  # margins: left, right, top, bottom
PW, PH = W - ML - MR, H - MT - MB


def percentile(sorted_v, p):
    """Nearest-rank percentile, as bench/coldstart/util.c computes it."""
    k = max(1, math.ceil(len(sorted_v) * p / 100.0))
    return sorted_v[k - 1]


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "bench/results/coldstart.json"
    out = sys.argv[2] if len(sys.argv) > 2 else "bench/results/coldstart-cdf.svg"
    with open(src) as f:
        report = json.load(f)
    scen = report.get("scenarios", {})

    curves = []
    for key, label, colour in SERIES:
        s = scen.get(key, {}).get("total", {})
        v = sorted(x / 1000.0 for x in s.get("samples_us", []) if x > 0)  # ms
        if v:
            curves.append((label, colour, v))
    if not curves:
        sys.exit("plot_cdf: no samples in %s" % src)

    lo = min(c[2][0] for c in curves)
    hi = max(c[2][-1] for c in curves)
    # Decade-aligned log axis around the data.
    x0 = 10 ** math.floor(math.log10(lo))
    x1 = 10 ** math.ceil(math.log10(hi))
    if x1 <= x0:
        x1 = x0 * 10
    lx0, lx1 = math.log10(x0), math.log10(x1)

    def X(ms):
        return ML + (math.log10(ms) - lx0) / (lx1 - lx0) * PW

    def Y(frac):
        return MT + (1.0 - frac) * PH

    o = []
    o.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
             % (W, H, W, H))
    o.append('<rect width="100%" height="100%" fill="white"/>')
    host = report.get("host", {})
    title = "Ember cold start: latency CDF (%s, %s)" % (
        host.get("kvm", "kvm"), "quick run" if report.get("quick") else
        "full run")
    o.append('<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>'
             % (ML, escape(title)))
    o.append('<text x="%d" y="40" fill="#555">request to first RESULT '
             '(QEMU: to "running"); log time axis; %s</text>'
             % (ML, escape(report.get("date", ""))))

    # Grid and ticks: 1-2-5 per decade on x, tenths on y.
    d = lx0
    while d < lx1 + 1e-9:
        for m in (1, 2, 5):
            ms = m * 10 ** d
            if ms < x0 * 0.999 or ms > x1 * 1.001:
                continue
            x = X(ms)
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>'
                     % (x, MT, x, MT + PH, "#ccc" if m == 1 else "#eee"))
            lab = ("%g" % ms) if ms >= 1 else ("%.3g" % ms)
            o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                     % (x, MT + PH + 16, lab))
        d += 1
    for i in range(11):
        y = Y(i / 10.0)
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>'
                 % (ML, y, ML + PW, y, "#ccc" if i % 5 == 0 else "#eee"))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>'
                 % (ML - 6, y + 4, i / 10.0))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" '
             'stroke="#333"/>' % (ML, MT, PW, PH))
    o.append('<text x="%d" y="%d" text-anchor="middle">milliseconds</text>'
             % (ML + PW // 2, MT + PH + 34))
    o.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" '
             'text-anchor="middle">fraction of cold starts</text>'
             % (MT + PH // 2, MT + PH // 2))
    for p in (50, 99):
        o.append('<text x="%d" y="%.1f" fill="#999" font-size="10">p%d</text>'
                 % (ML + PW + 3, Y(p / 100.0) + 3, p))
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999" '
                 'stroke-dasharray="4 3"/>' % (ML, Y(p / 100.0), ML + PW,
                                              Y(p / 100.0)))

    # Curves: an empirical CDF is a staircase.
    for label, colour, v in curves:
        n = len(v)
        pts = ["%.1f,%.1f" % (X(v[0]), Y(0))]
        for i, ms in enumerate(v):
            pts.append("%.1f,%.1f" % (X(ms), Y(i / n)))
            pts.append("%.1f,%.1f" % (X(ms), Y((i + 1) / n)))
        o.append('<polyline fill="none" stroke="%s" stroke-width="2" '
                 'points="%s"/>' % (colour, " ".join(pts)))

    # Legend under the plot, with n / p50 / p99.
    ly = MT + PH + 56
    for i, (label, colour, v) in enumerate(curves):
        y = ly + i * 20
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" '
                 'stroke-width="3"/>' % (ML, y - 4, ML + 24, y - 4, colour))
        o.append('<text x="%d" y="%d">%s: n=%d, p50 %.2f ms, p99 %.2f ms'
                 '</text>' % (ML + 32, y, escape(label), len(v),
                              percentile(v, 50), percentile(v, 99)))
    o.append('</svg>')
    with open(out, "w") as f:
        f.write("\n".join(o) + "\n")
    print("wrote %s" % out)


if __name__ == "__main__":
    main()
