"""The job queue: leasing with long-polls, the fencing of every lease holder's request, the sweeper
that returns lapsed leases, and the wake-ups that end long-polls (in one process, or shared by
every replica through PostgreSQL's LISTEN/NOTIFY)."""

from fap.server.queue.job_queue import Clock, JobQueue
from fap.server.queue.notify import (
    Listener,
    LocalNotifier,
    Notifier,
    chunks_topic,
    leases_topic,
    long_poll,
    queue_topic,
    upload_topic,
)
from fap.server.queue.notify_pg import PgNotifier

__all__ = (
    "Clock",
    "JobQueue",
    "Listener",
    "LocalNotifier",
    "Notifier",
    "PgNotifier",
    "chunks_topic",
    "leases_topic",
    "long_poll",
    "queue_topic",
    "upload_topic",
)
