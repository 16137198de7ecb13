"""Throughput and memory of the whole path on one machine: `fap upload` to a real `fap serve` and
`fap work`, on the embedded defaults.

    python -m bench.upload [--size-mib 512] [--runs 3]

For each kind of data (random: incompressible; text: ~10x compressible) it times
- upload only (`--no-wait`: hash, compress, PUT, report), and
- the round trip (upload, analysis by the reference engine, sealed result back and decrypted),
and records the client's peak resident memory. Results are printed and written as JSON to
bench/results/upload-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.support.processes import FapProcess, ServerProcess, fap_argv, free_port

MiB = 1024 * 1024
RESULTS = Path(__file__).parent / "results"


def make_file(path: Path, kind: str, size: int) -> Path:
    with path.open("wb") as handle:
        if kind == "random":
            for _ in range(size // MiB):
                handle.write(os.urandom(MiB))
        else:
            line = b"2026-11-30T00:00:00Z INFO served path=/v1/uploads status=200 ms=%04d\n"
            block = b"".join(line % (i % 9973) for i in range(MiB // len(line) + 1))[:MiB]
            for _ in range(size // MiB):
                handle.write(block)
    return path


def timed_client(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run one client command; answer its wall time and peak RSS in bytes."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(
            f"{argv[3:]} failed: {process.stderr.read().decode() if process.stderr else ''}"
        )
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MiB

    with tempfile.TemporaryDirectory(prefix="fap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        server = ServerProcess(
            argv=fap_argv("serve", "--port", str(port), "--data-dir", str(tmp / "data")),
            log_path=tmp / "server.log",
            port=port,
            data_dir=tmp / "data",
        )
        server.start().wait_ready()
        env = {
            **os.environ,
            "FAP_HOME": str(tmp / "home"),
            "FAP_SERVER": server.url,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }
        worker = FapProcess(
            argv=fap_argv("work", "--server", server.url),
            log_path=tmp / "worker.log",
            env={**env, "FAP_TOKEN": server.processor_token},
        ).start()
        env["FAP_TOKEN"] = server.owner_token
        rows = []
        try:
            for kind in ("random", "text"):
                for mode in ("upload", "round-trip"):
                    times, peaks = [], []
                    for run in range(args.runs):
                        # A fresh file each run: identical content must not be served from a cache.
                        path = make_file(tmp / f"{kind}-{mode}-{run}.bin", kind, size)
                        extra = ["--no-wait"] if mode == "upload" else []
                        argv = fap_argv("upload", str(path), "--results", str(tmp / "out"), *extra)
                        elapsed, peak = timed_client(argv, env)
                        times.append(elapsed)
                        peaks.append(peak)
                        path.unlink()
                    best = min(times)
                    rows.append(
                        {
                            "data": kind,
                            "mode": mode,
                            "size_mib": args.size_mib,
                            "runs": args.runs,
                            "best_s": round(best, 3),
                            "median_s": round(statistics.median(times), 3),
                            "mib_per_s": round(args.size_mib / best, 1),
                            "client_peak_rss_mib": round(max(peaks) / MiB, 1),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            worker.stop()
            server.stop()

    RESULTS.mkdir(exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "rows": rows,
    }
    out = RESULTS / f"upload-{report['when'][:10]}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
