"""What /proc says about processes: the tests find, watch and measure the processes a ``backprop
serve`` starts with these, without any tool of their own."""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); OSError when gone.

    The name is in parentheses and may hold spaces or parentheses itself: the fields are what
    follows its last closing one."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the direct children of ``pid``."""
    found = []
    for child in _pids():
        try:
            parent = int(_stat(child)[1])
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if parent == pid:
            found.append((child, cmdline))
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def in_group(group: int) -> list[int]:
    """Live processes of a process group."""
    found = []
    for pid in _pids():
        try:
            fields = _stat(pid)
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(pid)
    return found


def with_environment(name: str, value: str) -> list[int]:
    """Live processes started with ``name=value`` in their environment."""
    wanted = f"{name}={value}".encode()
    found = []
    for pid in _pids():
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environment and alive(pid):
            found.append(pid)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time ``pid`` has used so far, user and system."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
