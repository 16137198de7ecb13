"""The desktop client: find files, upload them in compressed chunks, fetch and decrypt results.

Only :mod:`fap.cli` uses this role; it imports from here, never from the modules inside.
"""

from fap.client.access import (
    audit_events,
    change_role,
    create_org,
    create_token,
    delete_org,
    fetch_me,
    get_org,
    get_org_access,
    invite_member,
    list_devices,
    list_members,
    list_orgs,
    list_tokens,
    remove_member,
    resolve_org,
    revoke_device,
    revoke_token,
    role_arg,
    set_org_access,
    set_org_engine,
    token_role_arg,
)
from fap.client.batch import BatchReporter, FileOutcome, check_file, result_path, upload_files
from fap.client.device import DeviceKeys, register_device
from fap.client.folder import CALL_BUDGET_SECONDS, FolderReporter, FolderSummary, FolderSync
from fap.client.journal import JOURNAL_NAME, FileRecord, Journal, JournalDamaged
from fap.client.login import SignedIn, SignOutOutcome, sign_in, sign_out, who_am_i
from fap.client.queries import fetch_status, list_uploads
from fap.client.results import ResultWaiter, download_sealed, open_result, write_atomic
from fap.client.rules import ignore_reason, ignored_name
from fap.client.runtime import Runtime, open_runtime
from fap.client.session import connect, load_settings, resolve_credentials, resolve_token
from fap.client.signin import DeviceCode, SignInPrompt, browser_available
from fap.client.state import last_server, remember_server, resolve_server
from fap.client.uploader import FileChanged, LocalFile, Sent, Uploader, UploadListener
from fap.client.watcher import Settler, scan, watch_changes

__all__ = (
    "CALL_BUDGET_SECONDS",
    "JOURNAL_NAME",
    "BatchReporter",
    "DeviceCode",
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
    "SignInPrompt",
    "SignOutOutcome",
    "SignedIn",
    "UploadListener",
    "Uploader",
    "audit_events",
    "browser_available",
    "change_role",
    "check_file",
    "connect",
    "create_org",
    "create_token",
    "delete_org",
    "download_sealed",
    "fetch_me",
    "fetch_status",
    "get_org",
    "get_org_access",
    "ignore_reason",
    "ignored_name",
    "invite_member",
    "last_server",
    "list_devices",
    "list_members",
    "list_orgs",
    "list_tokens",
    "list_uploads",
    "load_settings",
    "open_result",
    "open_runtime",
    "register_device",
    "remember_server",
    "remove_member",
    "resolve_credentials",
    "resolve_org",
    "resolve_server",
    "resolve_token",
    "result_path",
    "revoke_device",
    "revoke_token",
    "role_arg",
    "scan",
    "set_org_access",
    "set_org_engine",
    "sign_in",
    "sign_out",
    "token_role_arg",
    "upload_files",
    "watch_changes",
    "who_am_i",
    "write_atomic",
)
