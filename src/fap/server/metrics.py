"""Autoscaling signals on ``/metrics``, in Prometheus' text format; docs/scaling.md says which
signal scales what.

Every label is bounded and names nothing a caller chose: route *templates* (never a path with its
ids), methods, status classes, engine names (capped). That is why the route needs no token.

The figures are of two kinds, which a dashboard adds up differently:

- counted in this process — requests, event-loop lag, job latency, engine usage, bytes in,
  uploads deduplicated — are what this replica saw: sum them over the replicas;
- read from the store at scrape time — jobs queued, jobs leased, processors online — are the whole
  deployment's, the same on every replica of one database: take their max, never their sum.
  Counting those in-process could not work: a job is queued through one replica and leased
  through another. One grouped count per scrape, cached for ``_BACKLOG_TTL`` seconds.

Each app has its own registry, so several apps in one process (the tests) never collide.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from fap.api import BLOBS, JOB_CHUNKS, LEASE, LEASES, UPLOADS_WAIT
from fap.api.messages import EngineUsage
from fap.server.background import BackgroundTask
from fap.server.store import Backlog, Jobs

__all__ = ("METRICS_PATH", "Metrics", "metrics_route")

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"

# Routes that hold a request open until something happens: their time says how idle the queue
# is, not how busy the server is, so they get a kind of their own and stay out of latency panels.
_LONG_POLLS = frozenset({LEASE, LEASES, UPLOADS_WAIT, JOB_CHUNKS})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_TYPED_PARAM = re.compile(r"\{(\w+):\w+\}")

# Scrapes come every 15 s or so, from one Prometheus or two; two seconds keeps a burst of them
# (several dashboards, a federation) at one query, and the figures fresh enough to scale on.
_BACKLOG_TTL = 2.0
# As routes/status.py: a worker long-polls at least every ~20 s; one silent for a minute is gone.
_ONLINE_SECONDS = 60.0
# Engines are name@version strings an uploader may choose; past this many, the least busy are
# summed as engine="other", so that a scrape stays small whatever uploads ask for.
_MAX_ENGINES = 50

# The probe wakes four times a second: often enough to catch a stall of a few hundred ms, rarely
# enough to cost nothing. The gauge shows the worst lag of the last window (one scrape interval).
_PROBE_SECONDS = 0.25
_LAG_WINDOW_SECONDS = 15.0

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0)
# What an engine used on one attempt: from a small file's few milliseconds of CPU to hours, and
# from a Python engine's 30 MiB to a model's tens of GiB.
_CPU_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
_MEMORY_BUCKETS = tuple(float(2**power) for power in range(24, 37))  # 16 MiB … 64 GiB


class Metrics:
    """This server's instruments, its registry, and the probe that measures event-loop lag."""

    def __init__(self, jobs: Jobs, clock: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._requests = Counter(
            "fap_http_requests",
            "HTTP requests answered by a route, by its template, method and status class.",
            ("route", "method", "status"),
            registry=registry,
        )
        self._request_seconds = Histogram(
            "fap_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer. kind: call, long-poll "
            "(held open until there is news) or blob (a transfer to or from the local store).",
            ("route", "method", "kind"),
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        self._loop_lag = Histogram(
            "fap_event_loop_lag_seconds",
            "How late the event loop ran a task that asked to wake up: time spent blocked.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self._lags: deque[float] = deque(maxlen=round(_LAG_WINDOW_SECONDS / _PROBE_SECONDS))
        Gauge(
            "fap_event_loop_lag_max_seconds",
            f"The largest event-loop lag of the last {_LAG_WINDOW_SECONDS:g} seconds.",
            registry=registry,
        ).set_function(lambda: max(self._lags, default=0.0))
        self._job_seconds = Histogram(
            "fap_job_latency_seconds",
            "Seconds from a job becoming leasable (queued, or queued again) to its result, "
            "by engine; observed when the job completes.",
            ("engine",),
            buckets=_JOB_BUCKETS,
            registry=registry,
        )
        self._engine_cpu = Histogram(
            "fap_engine_cpu_seconds",
            "CPU seconds an engine used on one attempt of a job (the kernel's count for every "
            "process of its sandbox, as its processor reported it), by engine and outcome (done "
            "or failed).",
            ("engine", "outcome"),
            buckets=_CPU_BUCKETS,
            registry=registry,
        )
        self._engine_memory = Histogram(
            "fap_engine_peak_memory_bytes",
            "The engine's peak resident memory on one attempt of a job, by engine and outcome.",
            ("engine", "outcome"),
            buckets=_MEMORY_BUCKETS,
            registry=registry,
        )
        self._engine_wall = Histogram(
            "fap_engine_wall_seconds",
            "Seconds from handing a file to the engine to its answer (or its failure), on one "
            "attempt of a job, by engine and outcome.",
            ("engine", "outcome"),
            buckets=_JOB_BUCKETS,
            registry=registry,
        )
        self._bytes_in = Counter(
            "fap_bytes_in",
            "Bytes of chunks reported stored, as stored (compressed).",
            registry=registry,
        )
        self._raw_bytes_in = Counter(
            "fap_raw_bytes_in",
            "Bytes of chunks reported stored, before compression.",
            registry=registry,
        )
        self._deduplicated = Counter(
            "fap_uploads_deduplicated",
            "Uploads asked for and answered with an earlier analysis of the same file (dedup): "
            "nothing was made, sent nor analysed for them.",
            registry=registry,
        )
        self._backlog = _BacklogCollector(jobs, clock)
        registry.register(self._backlog)
        ProcessCollector(registry=registry)  # CPU, memory, open files (on Linux)
        self._probe = BackgroundTask("fap-loop-lag", self._measure_lag)

    # -- what the app reports -------------------------------------------------------------------

    def request_done(self, template: str, method: str, status: int, seconds: float) -> None:
        route = _TYPED_PARAM.sub(r"{\1}", template)
        method = method if method in _METHODS else "OTHER"
        self._requests.labels(route, method, f"{status // 100}xx").inc()
        self._request_seconds.labels(route, method, route_kind(route)).observe(seconds)

    def job_done(self, engine: str, seconds: float) -> None:
        # Engines that complete jobs are the ones processors run: a bounded set.
        self._job_seconds.labels(engine).observe(max(0.0, seconds))

    def engine_used(self, engine: str, outcome: str, usage: EngineUsage) -> None:
        """What the engine of a job's attempt used; ``outcome``: done or failed. The engine is the
        job's, which a processor leased it for: a bounded set, as in job_done."""
        self._engine_cpu.labels(engine, outcome).observe(usage.cpu_seconds)
        self._engine_memory.labels(engine, outcome).observe(usage.peak_memory_bytes)
        self._engine_wall.labels(engine, outcome).observe(usage.wall_seconds)

    def chunk_stored(self, stored_size: int, raw_size: int) -> None:
        self._bytes_in.inc(stored_size)
        self._raw_bytes_in.inc(raw_size)

    def uploads_deduplicated(self, count: int) -> None:
        self._deduplicated.inc(count)

    # -- serving ----------------------------------------------------------------------------------

    def middleware(self) -> DefineMiddleware:
        """Times every answered request except the scrapes themselves."""
        return DefineMiddleware(_RequestTimer, metrics=self)

    async def scrape(self) -> bytes:
        """The text exposition, with the store's figures fresh (within ``_BACKLOG_TTL``)."""
        await self._backlog.refresh()
        # A few hundred lines of text: rendering takes well under a millisecond, on the loop.
        return generate_latest(self.registry)

    def start(self) -> None:
        """Start measuring event-loop lag."""
        self._probe.start()

    async def stop(self) -> None:
        await self._probe.stop()

    async def _measure_lag(self) -> None:
        """Sleep for a known time and see how much later than asked the loop woke us: any
        blocking call, or a backlog of ready callbacks, shows up as lag."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(_PROBE_SECONDS)
            # The loop may run a timer up to its clock resolution early: no lag is 0, not < 0.
            lag = max(0.0, loop.time() - started - _PROBE_SECONDS)
            self._loop_lag.observe(lag)
            self._lags.append(lag)


def metrics_route(metrics: Metrics) -> HTTPRouteHandler:
    """``GET /metrics`` for Prometheus; no token (no label names an id or a user's name)."""

    @get(METRICS_PATH, include_in_schema=False)
    async def scrape() -> Response[bytes]:
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return scrape


class _RequestTimer:
    """ASGI middleware around each route: its template, method, status class and time."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path_template"] == METRICS_PATH:
            await self._app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self._app(scope, receive, sending)
        finally:
            # Litestar turns a route's errors into answers inside this middleware, so every
            # request that got an answer is counted; one cut off before it had one is not.
            if status:
                elapsed = time.perf_counter() - started
                self._metrics.request_done(scope["path_template"], scope["method"], status, elapsed)


class _BacklogCollector(Collector):
    """Jobs queued and leased, processors online, per engine: read from the store, cached."""

    def __init__(self, jobs: Jobs, clock: Callable[[], float]) -> None:
        self._jobs = jobs
        self._clock = clock
        self._backlog: Backlog | None = None
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        if time.monotonic() - self._read_at < _BACKLOG_TTL:
            return
        async with self._lock:  # scrapes arriving together share one query
            if time.monotonic() - self._read_at < _BACKLOG_TTL:
                return
            try:
                self._backlog = await self._jobs.backlog(self._clock(), _ONLINE_SECONDS)
            except (SQLAlchemyError, OSError) as error:
                # The scrape still serves lag and requests, which matter most while the store is
                # away; the store's figures are left out rather than shown stale.
                logger.warning("The queue figures for /metrics could not be read: %s", error)
                self._backlog = None
                return
            self._read_at = time.monotonic()

    def describe(self) -> Iterator[Metric]:
        return iter(_families(Backlog({}, {}, {})))

    def collect(self) -> Iterator[Metric]:
        return iter(_families(self._backlog) if self._backlog is not None else [])


def _families(backlog: Backlog) -> list[Metric]:
    queued = GaugeMetricFamily(
        "fap_queue_depth",
        "Jobs queued (leasable, waiting for a processor), by engine, in the whole deployment.",
        labels=("engine",),
    )
    leased = GaugeMetricFamily(
        "fap_jobs_leased",
        "Jobs leased (being worked by a processor), by engine, in the whole deployment.",
        labels=("engine",),
    )
    processors = GaugeMetricFamily(
        "fap_processors_online",
        f"Processors (fap work) that asked for work in the last {_ONLINE_SECONDS:g} s, by the "
        "engine they run, in the whole deployment.",
        labels=("engine",),
    )
    shown = _shown(backlog)
    for family, counts in (
        (queued, backlog.queued),
        (leased, backlog.leased),
        (processors, backlog.processors),
    ):
        grouped = _grouped(counts, shown)
        # Zeros too, so that "queued per processor" and "processors online" always have a value.
        for engine in sorted(shown | grouped.keys()):
            family.add_metric((engine,), grouped.get(engine, 0))
    return [queued, leased, processors]


def _shown(backlog: Backlog) -> set[str]:
    """The engines shown by name: those processors run first (a set their operators chose), then
    those with the most jobs, ``_MAX_ENGINES`` in all."""
    jobs = dict(backlog.queued)
    for engine, count in backlog.leased.items():
        jobs[engine] = jobs.get(engine, 0) + count
    ranked = sorted(
        jobs.keys() | backlog.processors.keys(),
        key=lambda engine: (engine not in backlog.processors, -jobs.get(engine, 0), engine),
    )
    return set(ranked[:_MAX_ENGINES])


def _grouped(counts: dict[str, int], shown: set[str]) -> dict[str, int]:
    grouped: dict[str, int] = {}
    for engine, count in counts.items():
        name = engine if engine in shown else "other"
        grouped[name] = grouped.get(name, 0) + count
    return grouped


def route_kind(route: str) -> str:
    """How a route's seconds are told apart: ``call``, ``long-poll`` or ``blob``."""
    if route in _LONG_POLLS:
        return "long-poll"
    if route.startswith(BLOBS + "/"):
        return "blob"
    return "call"
