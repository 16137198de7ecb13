"""The report's PNG charts, drawn with matplotlib (Agg: no display needed) from a results document.

A tool with no successful run gets no bar but a "failed" mark where its bar would be: a missing
bar must not read as zero, nor be left out as if the tool had not been tried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on a CI machine

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

__all__ = ("draw_charts",)

_FAP_COLOUR = "#d62728"
# One colour per tool, by its command's first word, in every chart alike.
_COLOURS = {"aws": "#1f77b4", "s5cmd": "#2ca02c", "rclone": "#9467bd", "zstd": "#8c564b"}


def _colour(tool: str) -> str:
    if tool.startswith("fap"):
        return "#ff9896" if "round trip" in tool else _FAP_COLOUR
    return _COLOURS.get(tool.split()[0], "#7f7f7f")


def _grouped_bars(
    axes: Axes,
    groups: list[str],
    tools: list[str],
    value: dict[tuple[str, str], float | None],
    unit: str,
    label: str = "{:.0f}",
) -> None:
    width = 0.8 / max(len(tools), 1)
    labelled: set[str] = set()
    for index, tool in enumerate(tools):
        for group_index, group in enumerate(groups):
            x = group_index + (index - (len(tools) - 1) / 2) * width
            figure = value.get((group, tool))
            if figure is None:
                axes.text(x, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=7)
                continue
            axes.bar(
                x,
                figure,
                width,
                color=_colour(tool),
                label=None if tool in labelled else tool,
            )
            labelled.add(tool)
            axes.text(x, figure, label.format(figure), ha="center", va="bottom", fontsize=7)
    axes.set_xticks(range(len(groups)), groups)
    axes.set_ylabel(unit)
    axes.grid(axis="y", alpha=0.3)


def _throughput(results: dict[str, Any], out: Path) -> Path | None:
    rows = [row for row in results.get("transfers", []) if row["mode"] == "upload"]
    if not rows:
        return None
    labels = {link["name"]: link["label"] for link in results["network"]["links"]}
    links = list(dict.fromkeys(row["link"] for row in rows))
    tools = list(dict.fromkeys(row["tool"] for row in rows))
    figure, axes_pair = plt.subplots(1, 2, figsize=(13, 4.8), sharey=False)
    for axes, kind in zip(axes_pair, ("text", "random"), strict=True):
        value = {
            (row["link"], row["tool"]): row["best_mb_s"] for row in rows if row["kind"] == kind
        }
        _grouped_bars(axes, links, tools, value, "MB/s (best run)")
        axes.set_xticks(range(len(links)), [labels.get(link, link) for link in links], fontsize=8)
        ratio = results.get("data", {}).get("text_zstd3_ratio")
        axes.set_title(f"{kind}" + (f" (zstd -3: {ratio}x)" if kind == "text" and ratio else ""))
    axes_pair[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(
        "One file, disk to durable in S3: effective throughput (input bytes / wall time)"
    )
    figure.tight_layout()
    path = out / "throughput.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _resources(results: dict[str, Any], out: Path) -> Path | None:
    rows = [
        row
        for row in results.get("transfers", [])
        if row["mode"] == "upload" and row["link"] == "loopback"
    ]
    if not rows:
        return None
    tools = list(dict.fromkeys(row["tool"] for row in rows))
    figure, (cpu_axes, rss_axes) = plt.subplots(1, 2, figsize=(13, 4.4))
    kinds = ["text", "random"]
    cpu = {(row["kind"], row["tool"]): row["median_cpu_s"] for row in rows}
    rss = {(row["kind"], row["tool"]): row["max_peak_rss_mib"] for row in rows}
    _grouped_bars(cpu_axes, kinds, tools, cpu, "CPU seconds (median run)", "{:.2f}")
    cpu_axes.set_title("CPU time of the tool and its children")
    _grouped_bars(rss_axes, kinds, tools, rss, "MiB")
    rss_axes.set_title("Peak RSS of the tool's largest process")
    cpu_axes.legend(fontsize=8, loc="upper left")
    figure.suptitle("Loopback: what one file costs the client machine")
    figure.tight_layout()
    path = out / "resources.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _small_files(results: dict[str, Any], out: Path) -> Path | None:
    rows = results.get("small_files", [])
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(8, 4.4))
    names = [row["tool"] + (" (to results)" if row["mode"] == "round-trip" else "") for row in rows]
    for index, (name, row) in enumerate(zip(names, rows, strict=True)):
        rate = row["best_files_s"]
        if rate is None:
            axes.text(index, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=8)
            continue
        axes.bar(index, rate, 0.6, color=_colour(name))
        axes.text(index, rate, f"{rate:.0f}", ha="center", va="bottom", fontsize=8)
    axes.set_xticks(range(len(names)), names, rotation=15, ha="right", fontsize=8)
    axes.set_ylabel("files/s (best run)")
    axes.grid(axis="y", alpha=0.3)
    counts = ", ".join(dict.fromkeys(f"{row['files']}" for row in rows))
    axes.set_title(f"Small files (1-64 KiB) on loopback, files per run: {counts}")
    figure.tight_layout()
    path = out / "small-files.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _processors(results: dict[str, Any], out: Path) -> Path | None:
    rows = [row for row in results.get("processors", []) if row.get("files_s") is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(6, 4))
    counts = [row["processors"] for row in rows]
    axes.plot(counts, [row["files_s"] for row in rows], marker="o", color=_FAP_COLOUR)
    for row in rows:
        axes.annotate(
            f"{row['files_s']:.1f}",
            (row["processors"], row["files_s"]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    axes.set_xticks(counts)
    axes.set_xlabel("fap work processes (each one slot per core)")
    axes.set_ylabel("jobs done per second (steady)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.set_title("Working off a queue of small files")
    figure.tight_layout()
    path = out / "processors.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw_charts(results: dict[str, Any], out: Path) -> list[Path]:
    """Every chart the results have data for, as PNGs in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = [chart(results, out) for chart in (_throughput, _resources, _small_files, _processors)]
    return [path for path in drawn if path is not None]
