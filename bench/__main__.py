"""``python -m bench``: fap against the peer tools, side by side, in one run (``make bench``).

Writes bench/results/bench-<UTC time>.json and regenerates docs/performance.md with its charts
from it. ``python -m bench.report FILE.json`` regenerates the page from a kept run.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.compare import Config, run_benchmark
from bench.network import LINKS
from bench.report import target_table, write_report

RESULTS = Path(__file__).parent / "results"


def _parse(argv: list[str]) -> tuple[Config, bool]:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget",
        type=float,
        default=defaults.budget_s,
        help="seconds the measurements may take in all (default: %(default)s)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=defaults.runs,
        help="runs of each measurement (default: %(default)s)",
    )
    parser.add_argument("--text-mib", type=int, default=defaults.text_mib)
    parser.add_argument("--random-mib", type=int, default=defaults.random_mib)
    parser.add_argument("--small-files", type=int, default=defaults.small_files)
    parser.add_argument("--memory-mib", type=int, default=defaults.memory_mib)
    parser.add_argument("--latency-mib", type=int, default=defaults.latency_mib)
    parser.add_argument(
        "--links",
        default=",".join(defaults.links),
        help="comma-separated, of: " + ", ".join(link.name for link in LINKS),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, one run: checks the benchmark itself, not fap (no report)",
    )
    args = parser.parse_args(argv)
    config = Config(
        budget_s=args.budget,
        runs=args.runs,
        text_mib=args.text_mib,
        random_mib=args.random_mib,
        small_files=args.small_files,
        memory_mib=args.memory_mib,
        latency_mib=args.latency_mib,
        links=tuple(name for name in args.links.split(",") if name),
    )
    if args.quick:
        config = Config(
            budget_s=args.budget,
            runs=1,
            text_mib=8,
            random_mib=8,
            small_files=40,
            small_round_trip_files=10,
            processor_counts=(1, 2),
            processor_files=10,
            load_clients=2,
            load_files_per_client=5,
            memory_mib=32,
            latency_mib=16,
            links=config.links,
        )
    return config, args.quick


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SIGTERM would otherwise end the interpreter without unwinding: the namespace, the qdisc,
    # the S3 servers and fap processes are torn down by `finally` blocks, which need an exception.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(
        level=logging.INFO, format="bench %(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    # One line per request polled would drown the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config, quick = _parse(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="fap-bench-", ignore_cleanup_errors=True) as tmp:
        results = run_benchmark(config, Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{'quick' if quick else 'bench'}-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    logging.getLogger("bench").info("results in %s", out)
    print(target_table(results))
    if not quick:
        page = write_report(out)
        logging.getLogger("bench").info("report in %s", page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
