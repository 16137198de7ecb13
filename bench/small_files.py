"""Many small files (1-64 KiB) on loopback, where per-file costs decide: the peers' folder
copies against ``fap upload FILE...``, upload only and through to the results, and how fast
1, 2 and 4 processors work off a queue of them.

fap's upload-only runs go to a server with no processor: each upload queues a job, and a
processor working them off would take the CPU from the very upload being timed (the peers have
no such work after them). The round-trip runs go to a server with one processor.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.budget import Budget
from bench.fap_client import fap_upload
from bench.fap_stack import FapStack
from bench.measure import run_measured
from bench.peers import PEERS
from bench.results import Sample, Series
from bench.storage import Bucket

__all__ = (
    "ProcessorRun",
    "measure_peer_folders",
    "measure_processors",
    "upload_files",
)

_FOLDER_TIMEOUT = 240.0
_POLL_SECONDS = 0.2


def _folder_bytes(folder: Path) -> tuple[list[Path], int]:
    files = sorted(folder.iterdir())
    return files, sum(path.stat().st_size for path in files)


def measure_peer_folders(
    folders: list[Path], *, bucket: Bucket, env: dict[str, str], budget: Budget
) -> list[Series]:
    """Each peer that copies folders, once per folder (a fresh set of files each run)."""
    rows = []
    for peer in PEERS:
        if peer.folder is None:
            continue
        files, size = _folder_bytes(folders[0])
        series = Series(
            "small-files", peer.folder_name, "loopback", "small", "upload", size, len(files)
        )
        for run, folder in enumerate(folders):
            prefix = f"small/{peer.name.split()[0]}/{run}"
            result = run_measured(
                peer.folder(folder, bucket, prefix),
                env=env,
                timeout=budget.timeout(_FOLDER_TIMEOUT),
            )
            sample = Sample.of(result)
            if result.ok:
                stored = bucket.count_under(prefix + "/")
                if stored != len(files):
                    sample.ok = False
                    sample.error = f"{stored} of {len(files)} files in the bucket afterwards"
            series.samples.append(sample)
        rows.append(series)
    return rows


def upload_files(
    name: str,
    folders: list[Path],
    *,
    env: dict[str, str],
    budget: Budget,
    wait: bool,
    scratch: Path,
) -> Series:
    """``fap upload`` of every file of a folder, once per folder."""
    files, size = _folder_bytes(folders[0])
    series = Series(
        "small-files",
        name,
        "loopback",
        "small",
        "round-trip" if wait else "upload",
        size,
        len(files),
    )
    for run, folder in enumerate(folders):
        _, sample = fap_upload(
            sorted(folder.iterdir()),
            env=env,
            budget=budget,
            wait=wait,
            results=scratch / f"small-results-{name.replace(' ', '-')}-{run}",
            timeout=_FOLDER_TIMEOUT,
        )
        series.samples.append(sample)
    return series


@dataclass
class ProcessorRun:
    """``processors`` fap work processes working off ``files`` queued jobs."""

    processors: int
    files: int
    input_bytes: int
    ok: bool = False
    error: str | None = None
    # From the processors' start to the last result: includes their start-up.
    wall_s: float | None = None
    # From the first result to the last: the rate once every processor is working.
    steady_s: float | None = None
    files_s: float | None = None
    timeline: list[tuple[float, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["timeline"] = [[round(at, 2), done] for at, done in self.timeline]
        return data


def measure_processors(
    stack: FapStack,
    counts: tuple[int, ...],
    folders: list[Path],
    *,
    env: dict[str, str],
    budget: Budget,
    scratch: Path,
) -> list[ProcessorRun]:
    """For each count: queue a folder of files with no processor running, start that many
    processors, and time them until every job is done (polling the queue through the API)."""
    runs = []
    for count, folder in zip(counts, folders, strict=True):
        files, size = _folder_bytes(folder)
        record = ProcessorRun(count, len(files), size)
        runs.append(record)
        # The upload (~150 files/s), the work (~40 files/s), start-up.
        if not budget.allows(f"processing with {count} processors", 10 + len(files) / 30):
            record.error = "skipped: time budget"
            continue
        jobs = stack.jobs()
        done_before, failed_before = jobs.get("done", 0), jobs.get("failed", 0)
        _, sample = fap_upload(
            files, env=env, budget=budget, wait=False, results=scratch, timeout=_FOLDER_TIMEOUT
        )
        if not sample.ok:
            record.error = f"the upload failed: {sample.error}"
            continue
        started = time.monotonic()
        stack.start_workers(count)
        deadline = started + budget.timeout(_FOLDER_TIMEOUT)
        done, failed = 0, 0
        while time.monotonic() < deadline:
            jobs = stack.jobs()
            done = jobs.get("done", 0) - done_before
            failed = jobs.get("failed", 0) - failed_before
            if not record.timeline or record.timeline[-1][1] != done:
                record.timeline.append((time.monotonic() - started, done))
            if done + failed >= len(files):
                break
            time.sleep(_POLL_SECONDS)
        stack.stop_workers()
        if done < len(files):
            record.error = f"{done} of {len(files)} jobs done ({failed} failed) by the deadline"
            continue
        first = next(at for at, count_done in record.timeline if count_done > 0)
        last = record.timeline[-1][0]
        record.ok = True
        record.wall_s = round(last, 2)
        record.steady_s = round(last - first, 2)
        if last > first:
            record.files_s = round((done - 1) / (last - first), 1)
    return runs
