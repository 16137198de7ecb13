"""The server under many concurrent clients: several ``fap upload`` processes at once, each
with its own small files, and what the server's own /metrics saw meanwhile.

The latency figures are the server's histograms (request duration of the "call" kind, which
leaves out long-polls and blob transfers; event-loop lag), read before and after the burst; the
quantiles are interpolated within the buckets as Prometheus' ``histogram_quantile`` does, so
they are as coarse as the buckets (0.005, 0.01, 0.025, 0.05, 0.1, 0.25 s ...) and the report
names the bucket bound beside them.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from tests.support.processes import fap_argv

from bench.budget import Budget
from bench.fap_stack import FapStack

__all__ = ("measure_server_load",)

_REQUEST_METRIC = "fap_http_request_duration_seconds"
_LAG_METRIC = "fap_event_loop_lag_seconds"
_LAG_MAX_METRIC = "fap_event_loop_lag_max_seconds"


def _buckets(text: str, metric: str, **labels: str) -> dict[float, float]:
    """Cumulative bucket counts of ``metric``, summed over every series matching ``labels``."""
    counts: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            if any(sample.labels.get(key) != value for key, value in labels.items()):
                continue
            counts[float(sample.labels["le"])] += sample.value
    return dict(counts)


def _gauge(text: str, metric: str) -> float | None:
    for family in text_string_to_metric_families(text):
        if family.name == metric:
            for sample in family.samples:
                return float(sample.value)
    return None


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> dict[str, object]:
    """``histogram_quantile(q, after - before)``, and the bucket the answer falls in."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return {"seconds": None, "observations": 0}
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return {"seconds": lower_bound, "bucket_le": "+Inf", "observations": int(total)}
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            seconds = lower_bound + (bound - lower_bound) * share
            return {"seconds": round(seconds, 4), "bucket_le": bound, "observations": int(total)}
        lower_bound, lower_count = bound, count
    return {"seconds": None, "observations": int(total)}


def measure_server_load(
    stack: FapStack,
    folders: list[Path],
    *,
    env: dict[str, str],
    budget: Budget,
    scratch: Path,
) -> dict[str, object]:
    """Every folder uploaded by a client of its own, all at once (``--no-wait``)."""
    before = stack.metrics()
    started = time.monotonic()
    clients = []
    for index, folder in enumerate(folders):
        argv = fap_argv(
            "upload",
            "--no-wait",
            "--results",
            str(scratch / f"load-{index}"),
            *map(str, sorted(folder.iterdir())),
        )
        log = (scratch / f"load-client-{index}.log").open("wb")
        clients.append(
            (
                subprocess.Popen(
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                ),
                log,
            )
        )
    failed = 0
    deadline = started + budget.timeout(180.0)
    for process, log in clients:
        try:
            code = process.wait(max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        log.close()
        failed += code != 0
    wall = time.monotonic() - started
    after = stack.metrics()
    files = sum(len(list(folder.iterdir())) for folder in folders)
    calls_before = _buckets(before, _REQUEST_METRIC, kind="call")
    calls_after = _buckets(after, _REQUEST_METRIC, kind="call")
    lag_before, lag_after = _buckets(before, _LAG_METRIC), _buckets(after, _LAG_METRIC)
    return {
        "clients": len(folders),
        "files": files,
        "failed_clients": failed,
        "wall_s": round(wall, 2),
        "files_s": round(files / wall, 1) if not failed else None,
        "request_p50": quantile(0.50, calls_before, calls_after),
        "request_p99": quantile(0.99, calls_before, calls_after),
        "loop_lag_p50": quantile(0.50, lag_before, lag_after),
        "loop_lag_p99": quantile(0.99, lag_before, lag_after),
        "loop_lag_max_s": _gauge(after, _LAG_MAX_METRIC),
    }
