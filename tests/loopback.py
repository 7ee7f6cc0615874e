"""Which TCP sockets a set of processes holds, and whether they all stay on loopback: the check
the Ray tests make of a local cluster (traffic must never leave 127.0.0.0/8 or ::1)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from pathlib import Path


def pids_with(text: str) -> set[int]:
    """The processes whose command line contains `text` (a run's own temp dir)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    found.add(int(d.name))
            except OSError:
                continue
    return found


def tcp_sockets(pids: set[int]) -> list[tuple[str, str, str]]:
    """(state, local address, peer address) of every TCP socket of `pids`, from `ss`."""
    out = subprocess.run(["ss", "-Htanp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            parts = line.split()
            found.append((parts[0], parts[3], parts[4]))
    return found


def loopback(addr: str) -> bool:
    """Whether an `ss` address is a loopback one (127.0.0.0/8 or ::1, IPv4-mapped allowed);
    a wildcard (`0.0.0.0`, `*`, `::`) is every interface, not loopback."""
    host = addr.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def off_loopback(sockets: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Sockets that reach or accept beyond loopback: a listener's peer is a wildcard by
    nature, so only its own address counts; every other socket needs both ends on loopback."""
    return [
        s for s in sockets
        if not loopback(s[1]) or (s[0] != "LISTEN" and not loopback(s[2]))
    ]  # fmt: skip


def assert_cluster_on_loopback(temp: Path) -> None:
    """Every TCP socket of this process and of the local cluster started in `temp` is on
    loopback (127.0.0.0/8, ::1; never a wildcard such as 0.0.0.0)."""
    time.sleep(0.5)
    pids = pids_with(str(temp)) | {os.getpid()}
    assert len(pids) > 2, pids  # the GCS, the raylet and workers were found
    sockets = tcp_sockets(pids)
    assert sockets, "no TCP socket of the cluster was seen"
    assert not off_loopback(sockets), off_loopback(sockets)
