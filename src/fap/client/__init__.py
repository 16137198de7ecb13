"""The desktop client: find files, upload them in compressed chunks, fetch and decrypt results.

Only :mod:`fap.cli` uses this role; it imports from here, never from the modules inside.
"""

from fap.client.batch import BatchReporter, FileOutcome, check_file, result_path, upload_files
from fap.client.device import DeviceKeys, register_device
from fap.client.folder import CALL_BUDGET_SECONDS, FolderReporter, FolderSummary, FolderSync
from fap.client.journal import JOURNAL_NAME, FileRecord, Journal, JournalDamaged
from fap.client.queries import fetch_status, list_uploads
from fap.client.results import ResultWaiter, download_sealed, open_result, write_atomic
from fap.client.rules import ignore_reason, ignored_name
from fap.client.runtime import Runtime, open_runtime
from fap.client.session import connect, load_settings, resolve_token
from fap.client.state import last_server, remember_server, resolve_server
from fap.client.uploader import FileChanged, LocalFile, Sent, Uploader, UploadListener
from fap.client.watcher import Settler, scan, watch_changes

__all__ = (
    "CALL_BUDGET_SECONDS",
    "JOURNAL_NAME",
    "BatchReporter",
    "DeviceKeys",
    "FileChanged",
    "FileOutcome",
    "FileRecord",
    "FolderReporter",
    "FolderSummary",
    "FolderSync",
    "Journal",
    "JournalDamaged",
    "LocalFile",
    "ResultWaiter",
    "Runtime",
    "Sent",
    "Settler",
    "UploadListener",
    "Uploader",
    "check_file",
    "connect",
    "download_sealed",
    "fetch_status",
    "ignore_reason",
    "ignored_name",
    "last_server",
    "list_uploads",
    "load_settings",
    "open_result",
    "open_runtime",
    "register_device",
    "remember_server",
    "resolve_server",
    "resolve_token",
    "result_path",
    "scan",
    "upload_files",
    "watch_changes",
    "write_atomic",
)
