"""Which limit explains a failed analysis, read from the kernel's figures of the sandbox; and the
launcher that sets the limits before it becomes the engine."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fap.worker import launch
from fap.worker.launch import Launch
from fap.worker.limits import EngineLimits, Reading, upper_first
from fap.worker.usage import JobWatch, Tracked, read_sandbox

MiB = 1024 * 1024
LIMITS = EngineLimits(memory=256 * MiB, cpu_seconds=2, processes=64, result_max_bytes=MiB)
CALM = Reading(cpu_seconds=10.0, tasks=3, vm_peak=180 * MiB, rss_peak=40 * MiB)


def _more(**changes: float) -> Reading:
    figures = {"cpu_seconds": 10.0, "tasks": 3, "vm_peak": 180 * MiB, "rss_peak": 40 * MiB}
    figures.update(changes)
    return Reading(**figures)  # type: ignore[arg-type]


def test_each_limit_has_its_sentence() -> None:
    limits = EngineLimits(
        memory=512 * MiB, cpu_seconds=30, processes=256, result_max_bytes=7, job_timeout=60
    )
    assert limits.memory_hit() == "the engine exceeded its memory limit (512 MiB)"
    assert limits.cpu_hit() == "the engine exceeded its CPU time limit (30 s)"
    assert limits.timeout_hit() == "the engine ran past the job timeout (60 s)"
    assert limits.result_hit() == "the engine answered more than the result limit (7 bytes)"
    assert limits.processes_hit() == "the engine tried to start more processes than allowed (256)"
    assert upper_first(limits.memory_hit()).startswith(
        "The engine exceeded its memory limit (512 MiB"
    )


def test_nothing_near_a_limit_explains_nothing() -> None:
    assert (
        LIMITS.which(CALM, _more(cpu_seconds=11.0), error="The analyzer raised KeyError.") is None
    )


def test_a_sandbox_full_of_processes_comes_first() -> None:
    full = _more(tasks=63, cpu_seconds=20.0, vm_peak=250 * MiB)
    assert LIMITS.which(CALM, full, error="MemoryError", signal="SIGXCPU") == LIMITS.processes_hit()


def test_memory_reached_in_this_job_or_an_engine_that_says_so() -> None:
    assert LIMITS.which(CALM, _more(vm_peak=240 * MiB)) == LIMITS.memory_hit()
    assert LIMITS.which(CALM, CALM, error="the analyzer raised MemoryError.") == LIMITS.memory_hit()
    assert (
        LIMITS.which(CALM, CALM, error="[Errno 12] Cannot allocate memory") == LIMITS.memory_hit()
    )
    # A peak that high before the job began is an earlier job's.
    high = _more(vm_peak=250 * MiB)
    assert LIMITS.which(high, high) is None


def test_cpu_past_the_limit_in_this_job_or_the_kernels_sigxcpu() -> None:
    assert LIMITS.which(CALM, _more(cpu_seconds=12.5)) == LIMITS.cpu_hit()
    assert LIMITS.which(CALM, CALM, signal="SIGXCPU") == LIMITS.cpu_hit()
    assert LIMITS.which(CALM, CALM, signal="SIGKILL") is None


def test_no_limit_set_is_never_the_reason() -> None:
    none = EngineLimits()
    assert (
        none.which(
            CALM, _more(tasks=10_000, vm_peak=10**12, cpu_seconds=10**6), error="MemoryError"
        )
        is None
    )


def _launched(spec: Launch, code: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            launch.__file__,
            spec.to_json(),
            "--",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_launcher_sets_the_limits_then_becomes_the_command() -> None:
    spec = Launch(limits={"AS": (512 * MiB, 512 * MiB), "CORE": (0, 0)}, no_new_privs=True)
    code = (
        "import json, os, resource; print(json.dumps([resource.getrlimit(resource.RLIMIT_AS), "
        "resource.getrlimit(resource.RLIMIT_CORE), os.getppid(), "
        "open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0]]))"
    )
    address_space, core, parent, no_new_privs = json.loads(_launched(spec, code))
    assert address_space == [512 * MiB, 512 * MiB]
    assert core == [0, 0]
    assert parent == os.getpid()  # the launcher became the engine: no process in between
    assert no_new_privs == "1"


def test_without_a_namespace_the_process_limit_counts_from_what_the_user_runs() -> None:
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])"
    soft = int(_launched(Launch(nproc_above=50), code))
    assert soft > 50  # the user's threads now, this test's among them, and 50 more


def test_a_command_that_cannot_run_is_one_line_and_exit_127() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", launch.__file__, Launch().to_json(), "--", "/nonexistent/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 127
    assert done.stderr.strip().startswith(
        "fap: the engine command '/nonexistent/x' cannot be started"
    )


def test_the_sandbox_is_read_from_proc_children_and_threads_included(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = os.getpid()
        reading = read_sandbox(Tracked(root=me, engine=me))
        assert reading is not None
        assert reading.tasks >= 2  # this process's threads and the child
        assert reading.vm_peak >= reading.rss_peak > 0
        assert reading.cpu_seconds > 0
        assert read_sandbox(Tracked(root=2**22 + 1, engine=2**22 + 1)) is None  # no such pid
    finally:
        child.kill()
        child.wait()


async def test_a_job_watch_reports_the_cpu_the_memory_and_the_wall_time_of_the_job() -> None:
    me = os.getpid()
    tracked = Tracked(root=me, engine=me)
    with ThreadPoolExecutor(max_workers=1) as executor:
        watch = JobWatch(tracked, EngineLimits(), executor)
        await watch.begin()
        start = read_sandbox(tracked)
        assert start is not None
        while (now := read_sandbox(tracked)) and now.cpu_seconds < start.cpu_seconds + 0.05:
            sum(range(100_000))  # some CPU of the job's own, as much as the kernel counts
        await watch.end()
        usage = watch.usage()
    assert usage.cpu_seconds >= 0.05
    assert usage.peak_memory_bytes > 0
    assert usage.wall_seconds > 0


async def test_a_watch_past_the_cpu_limit_stops_the_engine_once() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # the engine
    stopped = asyncio.Event()
    stops: list[int] = []

    async def stop() -> None:
        stops.append(spinner.pid)
        spinner.kill()
        stopped.set()

    # As for a root worker's engine, whose RLIMIT_CPU the kernel does not let it set: the watch
    # alone stops it.
    tracked = Tracked(root=spinner.pid, engine=spinner.pid, cpu_rlimit=False)
    try:
        with ThreadPoolExecutor(max_workers=1) as executor:
            watch = JobWatch(tracked, EngineLimits(cpu_seconds=0.2), executor)
            await watch.begin()
            async with watch.watching(stop):
                await stopped.wait()
            assert watch.cpu_stopped
            assert await watch.verdict() == EngineLimits(cpu_seconds=0.2).cpu_hit()
            await watch.end()
            assert watch.usage().cpu_seconds > 0.2
    finally:
        spinner.kill()
        spinner.wait()
    assert stops == [spinner.pid]


@pytest.mark.parametrize(
    "spec", [Launch(), Launch(limits={"AS": (1, 2)}, user=(3, 4), userns=True)]
)
def test_a_launch_spec_is_json(spec: Launch) -> None:
    assert Launch.from_json(spec.to_json()) == spec


def _cpu_limit(pid: int) -> str:
    [line] = [
        line
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
        if line.startswith("Max cpu time")
    ]
    return line.split()[3]  # the soft limit


async def test_the_engines_cpu_time_limit_is_set_for_the_job_and_lifted_after_it() -> None:
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    tracked = Tracked(root=engine.pid, engine=engine.pid)
    try:
        with ThreadPoolExecutor(max_workers=1) as executor:
            watch = JobWatch(tracked, EngineLimits(cpu_seconds=5), executor)
            await watch.begin()
            assert tracked.cpu_rlimit  # the same user: the kernel lets the worker
            assert _cpu_limit(engine.pid) in ("5", "6")  # what it used so far, rounded up, + 5
            await watch.end()
            assert _cpu_limit(engine.pid) == "unlimited"
    finally:
        engine.kill()
        engine.wait()
