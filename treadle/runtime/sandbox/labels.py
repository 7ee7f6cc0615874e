"""Labels on every container, and the sweep that uses them.

A container is labelled with its owner (host id, pid and the pid's start time), so a sweep only
removes containers whose owning process is dead: parallel test workers and concurrent users of
the same engine never remove each other's containers.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any

from treadle.version import __version__

LABEL = "treadle.sandbox"
LABEL_OWNER = "treadle.owner"
LABEL_RUN = "treadle.run"
LABEL_VERSION = "treadle.version"


@functools.cache
def host_id() -> str:
    """This boot of this machine: a container from an earlier boot has a dead owner."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "noboot"
    return f"{socket.gethostname()}/{boot}"


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks: it tells a live owner from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_label(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{host_id()}:{pid}:{_start_time(pid) or '0'}"


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this machine; None when it belongs to another host."""
    try:
        host_boot, pid_s, start = owner.rsplit(":", 2)
        hostname, boot = host_boot.split("/", 1)
        pid = int(pid_s)
    except ValueError:
        return False
    mine_host, mine_boot = host_id().split("/", 1)
    if hostname != mine_host:
        return None
    if boot != mine_boot:
        return False
    return _start_time(pid) == start


def labels(run: str) -> dict[str, str]:
    return {
        LABEL: "1",
        LABEL_OWNER: owner_label(),
        LABEL_RUN: run,
        LABEL_VERSION: __version__,
    }


def sweep(api: Any, *, everything: bool = False) -> list[str]:
    """Remove treadle containers whose owner is dead (or all of them); returns their ids."""
    removed = []
    for c in api.containers(all=True, filters={"label": LABEL}):
        owner = (c.get("Labels") or {}).get(LABEL_OWNER, "")
        if everything or owner_alive(owner) is False:
            try:
                api.remove_container(c["Id"], force=True)
                removed.append(c["Id"])
            except Exception as exc:  # already gone, or being removed by its owner
                if "No such container" not in str(exc) and "already in progress" not in str(exc):
                    raise
    return removed
