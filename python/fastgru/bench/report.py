"""The report as people read it: a text table and a bar chart (``--plot``)."""
from __future__ import annotations

import math
from typing import Any, Dict, List

from .harness import UNIT_SCALE, format_duration, log


def format_table(report: Dict[str, Any]) -> str:
    header = ["workload", "implementation", "thr", "median", "IQR", "min-max", "ratio",
              "GFLOP/s", "max|diff|", "status"]
    rows = [header]
    for r in report["results"]:
        u = r["unit"]
        scale = UNIT_SCALE[u]
        timed = "median" in r
        rows.append([
            r["workload"], r["implementation"], str(r["threads"]),
            format_duration(r.get("median"), u),
            f"{(r['q3'] - r['q1']) * scale:.3g}" if timed else "-",
            f"{r['min'] * scale:.4g}-{r['max'] * scale:.4g}" if timed else "-",
            f"{r['ratio']:.2f}x" if r.get("ratio") else "-",
            f"{r['gflops']:.2f}" if "gflops" in r else "",
            f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-",
            r["status"] if r["status"] == "ok" else one_line(f"{r['status']}: {r['note']}"),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [plot_title(report).replace("\n", "; ")]  # the machine every figure belongs to
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(wd) for c, wd in zip(row, widths)) + "  " + row[-1])
        if k == 0:
            lines.append("-" * (sum(widths) + 2 * len(widths) + 6))
    for m in report.get("matmul", []):
        lines.append(f"float32 NumPy matmul {m['n']}x{m['n']} @ {m['threads']} thr: "
                     f"{m['gflops']:.1f} GFLOP/s {('(' + m['note'] + ')') if m['note'] else ''}")
    if any("gflops" in r for r in report["results"]):
        lines.append(report["flops_note"])
    for n in report.get("notes", []):
        lines.append(f"note: {n}")
    for f in report.get("failures", []):
        lines.append(f"error: {f}")
    return "\n".join(lines)


def one_line(text: str, limit: int = 200) -> str:
    """A note as one table cell: its lines joined, cut at ``limit`` characters (the JSON keeps
    it whole)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def plot_title(report: Dict[str, Any]) -> str:
    """CPU model, SIMD path, thread counts and date: what a reader needs to place the chart."""
    machine = report.get("machine", {})
    simd = machine.get("fastgru_config", {}).get("simd", "?")
    threads = ",".join(str(t) for t in report.get("config", {}).get("threads", []))
    return (f"fastgru bench: {machine.get('processor', '?')}, {machine.get('cores', '?')} cores\n"
            f"SIMD path {simd}, threads {threads}, {machine.get('date', '')}")


def bar_label(row: Dict[str, Any]) -> str:
    """The median with its unit, and its ratio to fastgru (the first fastgru row = 1x)."""
    text = format_duration(row["median"], row["unit"])
    ratio = row.get("ratio")
    if ratio is None:
        return text
    if row["library"] == "fastgru" and abs(ratio - 1) < 1e-12:
        return f"{text} (baseline)"
    return f"{text} ({ratio:.2f}x fastgru)" if ratio < 10 else f"{text} ({ratio:.0f}x fastgru)"


def decade_limits(values: List[float]):
    """Log-axis limits from a whole decade at least 0.3 decades below the shortest bar (so that
    it stays visible), with room on the right for the bar labels: the longest bar ends about
    60% across."""
    lo = 10.0 ** math.floor(math.log10(min(values)) - 0.3)
    hi = lo * (max(values) / lo) ** (1 / 0.6)
    return lo, max(hi, lo * 10 ** 0.6)


def write_plot(report: Dict[str, Any], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogLocator, NullFormatter
    except ImportError:
        log("note: matplotlib not installed, no plot written")
        return False
    ok = [r for r in report["results"] if "median" in r]
    keys = list(dict.fromkeys(r["workload"] for r in ok))
    if not keys:
        return False
    heights = [1.0 + 0.32 * sum(r["workload"] == k for r in ok) for k in keys]
    fig, axes = plt.subplots(len(keys), 1, figsize=(10, 0.6 + sum(heights)), squeeze=False,
                             gridspec_kw=dict(height_ratios=heights), layout="constrained")
    for ax, key in zip(axes[:, 0], keys):
        rows = [r for r in ok if r["workload"] == key]
        scale = UNIT_SCALE[rows[0]["unit"]]
        labels = [f"{r['implementation']} [{r['threads']} thr]" for r in rows]
        vals = [r["median"] * scale for r in rows]
        errs = [[(r["median"] - r["q1"]) * scale for r in rows],
                [(r["q3"] - r["median"]) * scale for r in rows]]
        colors = ["tab:green" if r["library"] == "fastgru" else "tab:gray" for r in rows]
        bars = ax.barh(range(len(rows)), vals, xerr=errs, color=colors, error_kw=dict(lw=0.8))
        ax.bar_label(bars, labels=[bar_label(r) for r in rows], padding=4, fontsize=7)
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(*decade_limits(vals))
        # Labels on whole decades only: unlabelled minor ticks can never print over each other
        # (matplotlib labels 2x10^n, 3x10^n, ... when a panel spans less than a decade).
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=range(2, 10), numticks=12))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"{key} ({rows[0]['unit']}; median, bars show the IQR; lower is better)",
                     fontsize=8, loc="left")
    fig.suptitle(plot_title(report), fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
