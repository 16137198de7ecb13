"""``fap watch`` as a per-user service from login: a systemd user unit, or a launchd agent.

:mod:`~fap.client.service.units` writes and reads the files (pure functions, either platform's
anywhere); :mod:`~fap.client.service.manager` installs and manages them through ``systemctl``
or ``launchctl``.
"""

from fap.client.service.manager import (
    PLATFORMS,
    UNKNOWN,
    Installed,
    NotStarted,
    ServiceManager,
    fap_command,
    find_installed,
    plan_service,
    service_manager,
)
from fap.client.service.units import (
    WatchService,
    escape_path,
    launchd_label,
    launchd_plist,
    plist_text,
    read_plist,
    read_unit,
    split_exec,
    systemd_unit,
    unit_name,
)

__all__ = (
    "PLATFORMS",
    "UNKNOWN",
    "Installed",
    "NotStarted",
    "ServiceManager",
    "WatchService",
    "escape_path",
    "fap_command",
    "find_installed",
    "launchd_label",
    "launchd_plist",
    "plan_service",
    "plist_text",
    "read_plist",
    "read_unit",
    "service_manager",
    "split_exec",
    "systemd_unit",
    "unit_name",
)
