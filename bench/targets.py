"""Issue 9's targets, as ratios of figures measured in the same run.

Every ratio is of best runs (the fastest of each tool's runs: the least disturbed by whatever
else the machine was doing). A target whose figures are missing — a tool failed, a section was
skipped — is MISSING, never PASS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.peers import PEERS
from bench.transfers import FAP_UPLOAD

__all__ = ("Target", "evaluate")

_PLAIN = tuple(peer.name for peer in PEERS if not peer.compresses)
_ALL_PEERS = tuple(peer.name for peer in PEERS)
_PIPE = next(peer.name for peer in PEERS if peer.compresses)


@dataclass
class Target:
    name: str
    required: str  # e.g. ">= 3.5x", "<= 150 MiB"
    measured: float | None
    status: str  # PASS, FAIL or MISSING
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _transfer_rate(results: dict[str, Any], link: str, kind: str, tool: str) -> float | None:
    for row in results.get("transfers", []):
        if (row["link"], row["kind"], row["tool"]) == (link, kind, tool):
            rate: float | None = row["best_mb_s"]
            return rate
    return None


def _best_of(
    results: dict[str, Any], link: str, kind: str, tools: tuple[str, ...]
) -> tuple[str | None, float | None]:
    rates = {tool: _transfer_rate(results, link, kind, tool) for tool in tools}
    known = {tool: rate for tool, rate in rates.items() if rate is not None}
    if len(known) < len(tools):
        return None, None  # a peer that failed is no baseline: the target is missing
    best = max(known, key=lambda tool: known[tool])
    return best, known[best]


def _judge(
    name: str, measured: float | None, bound: float, at_least: bool, unit: str, detail: str
) -> Target:
    sign = ">=" if at_least else "<="
    required = f"{sign} {bound:g}{unit}"
    if measured is None:
        return Target(name, required, None, "MISSING", detail)
    passed = measured >= bound if at_least else measured <= bound
    return Target(name, required, round(measured, 2), "PASS" if passed else "FAIL", detail)


def _ratio_target(
    results: dict[str, Any],
    name: str,
    link: str,
    kind: str,
    peers: tuple[str, ...],
    bound: float,
) -> Target:
    fap = _transfer_rate(results, link, kind, FAP_UPLOAD)
    best, rate = _best_of(results, link, kind, peers)
    if fap is None or rate is None:
        return _judge(name, None, bound, True, "x", "fap or a peer has no successful run")
    detail = f"fap {fap:.1f} MB/s vs {best} {rate:.1f} MB/s"
    return _judge(name, fap / rate, bound, True, "x", detail)


def _links(results: dict[str, Any]) -> set[str]:
    return {row["link"] for row in results.get("transfers", [])}


def _transfer_targets(results: dict[str, Any]) -> list[Target]:
    targets = []
    links = _links(results)
    if "100mbit" in links:
        targets.append(
            _ratio_target(
                results, "text, 100 Mbit/s: fap / best plain peer", "100mbit", "text", _PLAIN, 3.5
            )
        )
        targets.append(
            _ratio_target(
                results, "text, 100 Mbit/s: fap / zstd pipe", "100mbit", "text", (_PIPE,), 1.2
            )
        )
    for link, label in (("1gbit", "1 Gbit/s"), ("loopback", "loopback")):
        if link in links:
            targets.append(
                _ratio_target(
                    results, f"text, {label}: fap / best peer", link, "text", _ALL_PEERS, 1.5
                )
            )
    for link, label in (("100mbit", "100 Mbit/s"), ("1gbit", "1 Gbit/s"), ("loopback", "loopback")):
        if link in links:
            targets.append(
                _ratio_target(
                    results, f"random, {label}: fap / best peer", link, "random", _ALL_PEERS, 0.95
                )
            )
    return targets


def _small_rate(results: dict[str, Any], tool: str) -> float | None:
    for row in results.get("small_files", []):
        if row["tool"] == tool:
            rate: float | None = row["best_files_s"]
            return rate
    return None


def _other_targets(results: dict[str, Any]) -> list[Target]:
    targets = []
    fap = _small_rate(results, FAP_UPLOAD)
    aws = _small_rate(results, "aws s3 cp --recursive")
    detail = (
        f"fap {fap:.0f} files/s vs aws {aws:.0f} files/s"
        if fap is not None and aws is not None
        else "fap or aws has no successful run"
    )
    ratio = fap / aws if fap is not None and aws else None
    targets.append(
        _judge("small files, loopback: fap / aws s3 cp --recursive", ratio, 5, True, "x", detail)
    )
    through = _small_rate(results, "fap upload (round trip)")
    targets.append(
        _judge(
            "small files through to results, loopback",
            through,
            300,
            True,
            " files/s",
            "upload, analysis and decrypted result of every file, one processor",
        )
    )
    latency = results.get("latency") or {}
    uploaded, total = latency.get("uploaded_at_s"), latency.get("wall_s")
    ratio = total / uploaded if uploaded and total else None
    detail = (
        f"result after {total:.1f} s, upload done after {uploaded:.1f} s"
        if uploaded and total
        else latency.get("error") or "not measured"
    )
    size = f"{latency['input_bytes'] / 2**20:.0f} MiB" if latency else "512 MiB"
    targets.append(
        _judge(f"{size} text, 100 Mbit/s: result / upload time", ratio, 1.15, False, "x", detail)
    )
    memory = results.get("memory") or []
    peaks = [row["max_peak_rss_mib"] for row in memory if row.get("max_peak_rss_mib") is not None]
    complete = bool(memory) and len(peaks) == len(memory)
    detail = (
        ", ".join(f"{row['kind']}: {row['max_peak_rss_mib']} MiB" for row in memory)
        or "not measured"
    )
    size = f"{memory[0]['input_bytes'] / 2**20:.0f} MiB" if memory else "1024 MiB"
    targets.append(
        _judge(
            f"client peak RSS, {size} file",
            max(peaks) if complete else None,
            150,
            False,
            " MiB",
            detail,
        )
    )
    limit = results.get("rate_limit") or {}
    measured_ratio = limit.get("ratio")
    deviation = abs(measured_ratio - 1) if measured_ratio is not None else None
    detail = (
        f"observed {limit['observed_bytes_s'] / 2**20:.2f} MiB/s for --bwlimit {limit['limit_bytes_s'] / 2**20:.0f}M"
        if measured_ratio is not None
        else limit.get("error") or "not measured"
    )
    targets.append(_judge("--bwlimit: |observed / limit - 1|", deviation, 0.10, False, "", detail))
    return targets


_SECTIONS: tuple[Callable[[dict[str, Any]], list[Target]], ...] = (
    _transfer_targets,
    _other_targets,
)


def evaluate(results: dict[str, Any]) -> list[Target]:
    """Every target, judged from a results document (the JSON the run writes)."""
    return [target for section in _SECTIONS for target in section(results)]
