"""Run one command and report what the kernel counted for it: ``python -I -S rusage_child.py FD
ARGV...`` writes ``wall utime stime maxrss_kib exit_code`` to file descriptor FD.

Why a helper at all: Linux carries a process's peak RSS across ``exec`` (the high-water mark of
the memory it had before), and a child forked from the benchmark starts with the benchmark's
memory — its data, its libraries — so ``ru_maxrss`` of a tool started directly would read at
least the benchmark's own size. This helper is tiny (``-S``: no site imports, about 8 MiB), so
the tool it spawns starts from 8 MiB, and that is the floor of every peak-RSS figure.

Kept to the standard library's built-in modules: it runs with ``-I -S``, outside any venv.
"""

import os
import sys
import time


def main() -> int:
    report = int(sys.argv[1])
    argv = sys.argv[2:]
    os.set_inheritable(report, False)  # the tool gets stdin/stdout/stderr, not the report pipe
    started = time.perf_counter()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ)
    except OSError as error:
        os.write(report, f"spawn-error {error}".encode())
        return 127
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    os.write(report, f"{wall} {usage.ru_utime} {usage.ru_stime} {usage.ru_maxrss} {code}".encode())
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
