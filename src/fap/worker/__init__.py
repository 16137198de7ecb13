"""The worker role: lease jobs, stream their chunks to the engine, seal and return the results.

It listens on nothing: it calls the server and the object store, and talks to its own engine over
a private unix socket.
"""

from fap.worker.engine_client import EngineClient, EngineConnectionLost, EngineInfo
from fap.worker.engine_process import EngineProcess
from fap.worker.job import Job, JobServices, Outcome
from fap.worker.runner import Worker, default_engine_command, run_worker
from fap.worker.sandbox import Sandbox
from fap.worker.sandbox_check import SandboxCheck, check_sandbox

__all__ = (
    "EngineClient",
    "EngineConnectionLost",
    "EngineInfo",
    "EngineProcess",
    "Job",
    "JobServices",
    "Outcome",
    "Sandbox",
    "SandboxCheck",
    "Worker",
    "check_sandbox",
    "default_engine_command",
    "run_worker",
)
