"""The whole side-by-side run: sections in the order the targets need them, then the targets.

1. one file per tool over each link (bench/transfers.py);
2. small files on loopback (bench/small_files.py);
3. client peak memory on 1 GiB, and ``--bwlimit`` (bench/large_files.py);
4. the 512 MiB round trip over the desktop link;
5. figures without a target: processors 1, 2, 4; the server under concurrent clients.

Each section runs only if the budget still holds it (bench/budget.py), against a fap server of
its own (a fresh database: no section sees another's jobs). The network namespace, the qdisc,
every S3 server and fap process are torn down whatever happens: an ExitStack unwinds them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from bench.budget import Budget
from bench.data import Corpus, MiB, compression_ratio
from bench.fap_stack import FapStack
from bench.large_files import measure_memory, measure_rate_limit, measure_round_trip
from bench.machine import describe_machine
from bench.network import LINKS, Link, Namespace, NamespaceUnavailable
from bench.peers import PeerEnv, tool_versions
from bench.redact import Redactor
from bench.server_load import measure_server_load
from bench.small_files import measure_peer_folders, measure_processors, upload_files
from bench.storage import Bucket, S3Server, running_s3
from bench.targets import evaluate
from bench.transfers import FAP_ROUND_TRIP, FAP_UPLOAD, LinkSetup, measure_link

__all__ = ("Config", "run_benchmark")

logger = logging.getLogger("bench")

# What a section may fail with — a server that would not start, a status poll that got no
# answer, the store refusing a listing: the section is reported as failed and the run goes on.
# Anything else is a bug of the benchmark and ends it.
_SECTION_ERRORS = (
    OSError,
    RuntimeError,
    TimeoutError,
    subprocess.SubprocessError,
    httpx.HTTPError,
    BotoCoreError,
    ClientError,
)


@dataclass(frozen=True)
class Config:
    """Sizes and counts; the defaults fit `make bench` in 10 minutes on 2 cores."""

    budget_s: float = 540.0
    runs: int = 2
    text_mib: int = 64
    random_mib: int = 32
    small_files: int = 5000  # issue 9's folder
    small_round_trip_files: int = 300
    processor_counts: tuple[int, ...] = (1, 2, 4)
    processor_files: int = 300
    load_clients: int = 8
    load_files_per_client: int = 25
    memory_mib: int = 1024
    latency_mib: int = 512
    rate_limit: int = 8 * MiB
    links: tuple[str, ...] = tuple(link.name for link in LINKS)


def _link_estimate(config: Config, link: Link) -> float:
    """Seconds a link's runs should take: five commands per kind at the link's rate (or ~60 MB/s
    where the CPU is the limit), and about 1.5 s of start-up and settling per command."""
    rate_mb_s = min((link.rate_mbit or 10_000) / 8, 60.0)
    mb = (config.text_mib + config.random_mib) * MiB / 1e6
    return config.runs * (5 * mb / rate_mb_s + 2 * 6 * 1.5) + 15


@dataclass
class _Session:
    config: Config
    tmp: Path
    corpus: Corpus
    budget: Budget
    results: dict[str, Any]
    loopback: S3Server | None = None
    shaped: S3Server | None = None
    namespace: Namespace | None = None
    redactor: Redactor = field(default_factory=Redactor)
    _buckets: dict[str, Bucket] = field(default_factory=dict)

    def bucket(self, name: str, shaped: bool = False) -> Bucket:
        server = self.shaped if shaped else self.loopback
        assert server is not None
        if name not in self._buckets:
            self._buckets[name] = server.new_bucket(f"bench-{name}")
        return self._buckets[name]

    def scratch(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def fap(self, name: str, bucket: Bucket, workers: int = 0) -> Iterator[FapStack]:
        """A fresh fap server (and ``workers`` processors) storing in ``bucket``, always stopped."""
        stack = FapStack(self.scratch(name) / "fap", bucket, name, dict(os.environ)).start()
        self.redactor.add(*stack.secrets())
        try:
            stack.start_workers(workers)
            yield stack
        finally:
            stack.stop()

    # -- the sections -------------------------------------------------------------------------

    def transfers(self) -> None:
        for index, link in enumerate(LINKS):
            if link.name not in self.config.links:
                continue
            section = f"transfers over {link.label}"
            if link.shaped and self.namespace is None:
                reason = self.results["network"]["note"] or "no network namespace"
                self.budget.skipped.append({"section": section, "reason": reason})
            elif self.budget.allows(section, _link_estimate(self.config, link)):
                # One link failing leaves the others to run.
                self.guarded(section, lambda index=index, link=link: self._link(index, link))

    def _link(self, index: int, link: Link) -> None:
        logger.info("transfers over %s", link.label)
        if self.namespace is not None and link.shaped:
            self.namespace.shape(link)
            self.results["network"]["qdisc"][link.name] = self.namespace.qdisc()
        bucket = self.bucket(link.name, shaped=link.shaped)
        scratch = self.scratch(f"link-{link.name}")
        try:
            with (
                self.fap(f"link-{link.name}-upload", bucket) as upload_stack,
                self.fap(f"link-{link.name}", bucket, workers=1) as stack,
            ):
                setup = LinkSetup(
                    link,
                    index,
                    bucket,
                    upload_stack,
                    stack,
                    PeerEnv(bucket, scratch).env(dict(os.environ)),
                    scratch,
                )
                rows = measure_link(setup, self.corpus, runs=self.config.runs, budget=self.budget)
                self.results["transfers"].extend(row.to_dict() for row in rows)
        finally:
            if self.namespace is not None:
                self.namespace.unshape()

    def small_files(self) -> None:
        config, budget = self.config, self.budget
        bucket, scratch = self.bucket("small"), self.scratch("small")
        # Four tools, each at ~150 files/s or more.
        if budget.allows("small files", 30 + config.runs * config.small_files * 4 / 150):
            logger.info("small files: %d per run", config.small_files)
            folders = [
                self.corpus.write_small_files(run, config.small_files) for run in range(config.runs)
            ]
            peer_env = PeerEnv(bucket, scratch).env(dict(os.environ))
            rows = measure_peer_folders(folders, bucket=bucket, env=peer_env, budget=budget)
            # Upload only, to a server with no processor (small_files.py says why).
            with self.fap("small-upload", bucket) as stack:
                env = stack.client_env(scratch / "home-upload")
                rows.append(
                    upload_files(
                        FAP_UPLOAD, folders, env=env, budget=budget, wait=False, scratch=scratch
                    )
                )
            self.results["small_files"].extend(row.to_dict() for row in rows)
        if budget.allows("small files through to results", 20 + config.small_round_trip_files / 20):
            logger.info("small files to results: %d", config.small_round_trip_files)
            folder = self.corpus.write_small_files(10, config.small_round_trip_files)
            with self.fap("small-results", bucket, workers=1) as stack:
                env = stack.client_env(scratch / "home-results")
                row = upload_files(
                    FAP_ROUND_TRIP, [folder], env=env, budget=budget, wait=True, scratch=scratch
                )
            self.results["small_files"].append(row.to_dict())

    def memory_and_rate_limit(self) -> None:
        config, budget = self.config, self.budget
        bucket, scratch = self.bucket("large"), self.scratch("large")
        # No processor: the point is the client alone, and nothing should be left to process.
        with self.fap("large", bucket) as stack:
            env = stack.client_env(scratch / "home")
            # Random first: its chunks stay their full size in flight, so its peak is the larger.
            for kind in ("random", "text"):
                section = f"client peak RSS, {config.memory_mib} MiB of {kind}"
                if budget.allows(section, 15 + config.memory_mib / 25):
                    logger.info(section)
                    row = measure_memory(
                        self.corpus,
                        kind=kind,
                        size=config.memory_mib * MiB,
                        env=env,
                        budget=budget,
                        scratch=scratch,
                    )
                    self.results["memory"].append(row.to_dict())
            if budget.allows("--bwlimit", 25):
                logger.info("--bwlimit %d", config.rate_limit)
                self.results["rate_limit"] = measure_rate_limit(
                    self.corpus,
                    limit=config.rate_limit,
                    sizes=(config.rate_limit * 2, config.rate_limit * 6),
                    env=env,
                    budget=budget,
                    scratch=scratch,
                )

    def latency(self) -> None:
        """The big round trip over the desktop link: processing must overlap the upload."""
        link, config = LINKS[0], self.config
        section = f"{config.latency_mib} MiB round trip over {link.label}"
        if self.namespace is None:
            self.budget.skipped.append({"section": section, "reason": "no network namespace"})
            return
        # At ~4x compression the link carries ~45 MB/s of text: the upload, then the last chunk.
        if not self.budget.allows(section, 25 + config.latency_mib * MiB / 1e6 / 30):
            return
        logger.info(section)
        self.namespace.shape(link)
        scratch = self.scratch("latency")
        try:
            with self.fap("latency", self.bucket("latency", shaped=True), workers=1) as stack:
                row = measure_round_trip(
                    self.corpus,
                    link=link.name,
                    size=config.latency_mib * MiB,
                    env=stack.client_env(scratch / "home"),
                    budget=self.budget,
                    scratch=scratch,
                )
        finally:
            self.namespace.unshape()
        sample = row.samples[0]
        self.results["latency"] = {
            "link": link.name,
            "input_bytes": row.input_bytes,
            "wall_s": sample.wall_s if sample.ok else None,
            "uploaded_at_s": sample.extra.get("uploaded_at_s") if sample.ok else None,
            "peak_rss_mib": sample.peak_rss_mib,
            "error": sample.error,
        }

    def processors(self) -> None:
        config = self.config
        counts = config.processor_counts
        # Per count: the upload (~150 files/s), the work (~40 files/s), and start-up.
        estimate = len(counts) * (config.processor_files * (1 / 150 + 1 / 40) + 6)
        if not self.budget.allows(f"processing with {counts} processors", estimate):
            return
        logger.info("processors: %s", counts)
        scratch = self.scratch("processors")
        folders = [
            self.corpus.write_small_files(20 + index, config.processor_files)
            for index in range(len(counts))
        ]
        with self.fap("processors", self.bucket("processors")) as stack:
            runs = measure_processors(
                stack,
                counts,
                folders,
                env=stack.client_env(scratch / "home"),
                budget=self.budget,
                scratch=scratch,
            )
        self.results["processors"] = [run.to_dict() for run in runs]

    def server_load(self) -> None:
        config = self.config
        if not self.budget.allows(f"server under {config.load_clients} clients", 40):
            return
        logger.info("server load: %d clients", config.load_clients)
        scratch = self.scratch("load")
        folders = [
            self.corpus.write_small_files(40 + index, config.load_files_per_client)
            for index in range(config.load_clients)
        ]
        with self.fap("load", self.bucket("load")) as stack:
            self.results["server_load"] = measure_server_load(
                stack,
                folders,
                env=stack.client_env(scratch / "home"),
                budget=self.budget,
                scratch=scratch,
            )

    # -- the servers ----------------------------------------------------------------------------

    def start_servers(self, stack: contextlib.ExitStack) -> None:
        network = self.results["network"]
        Namespace.remove_leftovers()
        try:
            self.namespace = Namespace().create()
            stack.callback(self.namespace.remove)
        except NamespaceUnavailable as error:
            network["note"] = f"no network namespace ({error}): only loopback was run"
        self.loopback = stack.enter_context(running_s3(self.tmp / "s3-loopback"))
        self.redactor.add(self.loopback.access_key, self.loopback.secret_key)
        if self.namespace is not None:
            try:
                self.shaped = stack.enter_context(running_s3(self.tmp / "s3-netns", self.namespace))
                self.redactor.add(self.shaped.access_key, self.shaped.secret_key)
            except RuntimeError as error:
                network["note"] = f"S3 would not start in the namespace ({error}): only loopback"
                self.namespace.remove()
                self.namespace = None
        network["namespaces"] = self.namespace is not None

    def guarded(self, name: str, section: Callable[[], None]) -> None:
        """Run one section; if it fails, say so in the results and go on with the next."""
        try:
            section()
        except _SECTION_ERRORS as error:
            logger.exception("%s failed", name)
            message = f"{type(error).__name__}: {error}".strip().splitlines()
            self.results["errors"].append({"section": name, "error": message[0][:400]})


def _new_results(config: Config) -> dict[str, Any]:
    return {
        "schema": 1,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "tools": tool_versions(),
        "config": asdict(config),
        "network": {
            "namespaces": False,
            "note": "",
            "links": [
                {
                    "name": link.name,
                    "label": link.label,
                    "rate_mbit": link.rate_mbit,
                    "tbf": link.tbf,
                }
                for link in LINKS
                if link.name in config.links
            ],
            "qdisc": {},
        },
        "transfers": [],
        "small_files": [],
        "processors": [],
        "memory": [],
        "latency": None,
        "rate_limit": None,
        "server_load": None,
        "errors": [],
    }


def run_benchmark(config: Config, tmp: Path) -> dict[str, Any]:
    budget = Budget(config.budget_s)
    results = _new_results(config)
    logger.info("making the data (seeded)")
    corpus = Corpus.make(tmp / "data", config.text_mib * MiB, config.random_mib * MiB)
    results["data"] = {
        "text_bytes": len(corpus.text),
        "text_zstd3_ratio": round(compression_ratio(corpus.text), 2),
        "random_bytes": len(corpus.random),
        "random_zstd3_ratio": round(compression_ratio(corpus.random), 3),
        "small_files": config.small_files,
        "small_file_sizes": "1-64 KiB, uniform",
        "memory_file_bytes": config.memory_mib * MiB,
        "latency_file_bytes": config.latency_mib * MiB,
    }
    session = _Session(config, tmp, corpus, budget, results)
    with contextlib.ExitStack() as stack:
        session.start_servers(stack)
        for section in (
            session.transfers,
            session.small_files,
            session.memory_and_rate_limit,
            session.latency,
            session.processors,
            session.server_load,
        ):
            session.guarded(section.__name__.replace("_", " "), section)
    results["skipped"] = budget.skipped
    results["targets"] = [target.to_dict() for target in evaluate(results)]
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["load_end"] = round(os.getloadavg()[0], 2)
    results["duration_s"] = round(budget.elapsed(), 1)
    return session.redactor.document(results)
