"""What /proc says about the server: CPU time and resident memory of its process group
(the server runs in a group of its own, so `--workers` processes count too)."""

from __future__ import annotations

import contextlib
import os

_TICKS = os.sysconf("SC_CLK_TCK")


def _group(pid: int) -> list[int]:
    """`pid` and every process in its process group (the server called setsid)."""
    members = [pid]
    for entry in os.listdir("/proc"):
        if not entry.isdecimal() or int(entry) == pid:
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # field 5: process group
            members.append(int(entry))
    return members


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`'s process group (all threads), in seconds."""
    total = 0.0
    for member in _group(pid):
        with contextlib.suppress(OSError):  # ended meanwhile
            total += _cpu(member)
    return total


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # a zombie has no VmRSS


def rss_kib(pid: int) -> int:
    total = 0
    for member in _group(pid):
        with contextlib.suppress(OSError):
            total += _rss(member)
    if not total:
        raise RuntimeError(f"no VmRSS for {pid}")
    return total
