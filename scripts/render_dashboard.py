#!/usr/bin/env python3
"""Draws a Grafana dashboard's panels from a live Prometheus, in the dashboard's own layout.

scripts/dashboard runs it to make docs/images/dashboard.png: each panel of the dashboard JSON
(docs/grafana/skywasm-node.json) is drawn from Prometheus's answers to that panel's own
queries (`query_range` for graphs, an instant query for tables), placed where its `gridPos`
puts it. Grafana itself does not install on the machines this project is built on, so this
draws what the dashboard shows rather than Grafana's screen.
"""

import argparse
import json
import re
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BACKGROUND = "#111217"
PANEL = "#181b1f"
TEXT = "#ccccdc"
GRID = "#2c3235"
COLOURS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a", "#447ebc", "#c15c17"]


def substitute(expr, rate_interval):
    """The query as Grafana would send it with every variable set to `All`."""
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?(instance|tenant)\}?", ".*", expr)


def query(prometheus, path, params):
    url = f"{prometheus}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        answer = json.load(response)
    if answer.get("status") != "success":
        raise RuntimeError(f"{url}: {answer}")
    return answer["data"]["result"]


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or \
        ",".join(f"{k}={v}" for k, v in labels.items() if k not in ("__name__", "job", "instance"))


def formatter(unit):
    def seconds(v):
        if v == 0:
            return "0"
        if abs(v) < 1e-3:
            return f"{v * 1e6:.0f} µs"
        if abs(v) < 1:
            return f"{v * 1e3:.1f} ms"
        return f"{v:.2f} s"

    def size(v, suffix=""):
        for unit_name in ["B", "KiB", "MiB", "GiB"]:
            if abs(v) < 1024:
                return f"{v:.0f} {unit_name}{suffix}" if unit_name == "B" else f"{v:.1f} {unit_name}{suffix}"
            v /= 1024
        return f"{v:.1f} TiB{suffix}"

    return {
        "s": seconds,
        "bytes": size,
        "Bps": lambda v: size(v, "/s"),
        "percentunit": lambda v: f"{v * 100:.0f}%",
        "ops": lambda v: f"{v:,.0f}/s",
    }.get(unit, lambda v: f"{v:,.4g}")


def draw_graph(ax, panel, prometheus, start, end, step, rate_interval):
    fmt = formatter(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"))
    lines = 0
    for target in panel.get("targets", []):
        series = query(prometheus, "query_range", {
            "query": substitute(target["expr"], rate_interval),
            "start": start, "end": end, "step": step,
        })
        for s in series[:12]:
            xs = [float(t) - end for t, _ in s["values"]]
            ys = [float(v) for _, v in s["values"]]
            ax.plot([x / 60 for x in xs], ys, linewidth=1.2, color=COLOURS[lines % len(COLOURS)],
                    label=legend(target.get("legendFormat", ""), s["metric"])[:40])
            lines += 1
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt(v)))
    ax.set_xlabel("minutes", color=TEXT, fontsize=7)
    if lines:
        ax.legend(loc="upper left", fontsize=6, facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT,
                  ncol=2 if lines > 4 else 1)
    else:
        ax.text(0.5, 0.5, "no data", color=TEXT, ha="center", va="center", transform=ax.transAxes)


def draw_table(ax, panel, prometheus, end):
    fmt = formatter(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"))
    rows = []
    for target in panel.get("targets", []):
        for s in query(prometheus, "query", {"query": substitute(target["expr"], "30s"), "time": end}):
            rows.append((legend(target.get("legendFormat", ""), s["metric"])[:60], fmt(float(s["value"][1]))))
    ax.axis("off")
    if not rows:
        ax.text(0.5, 0.5, "no data", color=TEXT, ha="center", va="center", transform=ax.transAxes)
        return
    for i, (name, value) in enumerate(rows[:10]):
        y = 0.92 - i * 0.095
        ax.text(0.01, y, name, color=TEXT, fontsize=7, transform=ax.transAxes, family="monospace")
        ax.text(0.99, y, value, color=COLOURS[0], fontsize=7, ha="right", transform=ax.transAxes,
                family="monospace")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=2)
    args = parser.parse_args()
    dashboard = json.load(open(args.dashboard))
    panels = dashboard["panels"]
    header = 2  # grid units above the panels for the title
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + header
    unit = 0.36  # inches per grid unit of height; a column is 24 units over 20 inches
    figure = plt.figure(figsize=(20, rows * unit), facecolor=BACKGROUND)
    end = time.time()
    start = end - args.minutes * 60
    step = max(2, int(args.minutes * 60 / 120))
    figure.text(0.01, 1 - 1.2 / rows, f"{dashboard['title']} — last {args.minutes:g} minutes",
                color=TEXT, fontsize=13, weight="bold")
    for panel in panels:
        g = panel["gridPos"]
        left, width = g["x"] / 24, g["w"] / 24
        bottom, height = 1 - (g["y"] + header + g["h"]) / rows, g["h"] / rows
        if panel["type"] == "row":
            figure.text(left + 0.005, bottom + height * 0.2, panel["title"], color=TEXT, fontsize=11,
                        weight="bold")
            continue
        ax = figure.add_axes([left + 0.03 * width, bottom + 0.14 * height, width * 0.94, height * 0.72],
                             facecolor=PANEL)
        ax.set_title(panel["title"], color=TEXT, fontsize=9, loc="left")
        ax.tick_params(colors=TEXT, labelsize=7)
        ax.grid(color=GRID, linewidth=0.5)
        for spine in ax.spines.values():
            spine.set_color(GRID)
        if panel["type"] == "table":
            draw_table(ax, panel, args.prometheus, end)
        else:
            draw_graph(ax, panel, args.prometheus, start, end, step, "30s")
    figure.savefig(args.out, dpi=80, facecolor=BACKGROUND)


if __name__ == "__main__":
    main()
