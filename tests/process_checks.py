"""Helpers for tests that check processes and sockets from the outside, through /proc."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def is_running(pid: int) -> bool:
    """True while any thread of ``pid`` runs. A killed process whose parent is gone may stay a zombie
    (nobody reaps it); and its main thread turns zombie before the others have exited and released
    the process's files and sockets, so every thread is looked at."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state = stat.rsplit(")", 1)[1].split()[0]  # the command name, in parentheses, may hold spaces
        if state not in ("Z", "X"):
            return True
    return False


def wait_until_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def start_python(code: str, *args: str) -> subprocess.Popen:
    """A Python child that imports this checkout's ``wand_assets`` and prints what the test reads."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_line(process: subprocess.Popen, timeout_s: float) -> str:
    """The child's next stdout line; fails with its stderr if none comes in time."""
    stdout = process.stdout
    assert stdout is not None  # start_python pipes it
    ready, _, _ = select.select([stdout], [], [], timeout_s)
    line = stdout.readline() if ready else ""
    if not line:
        process.kill()
        raise AssertionError(f"the child printed nothing within {timeout_s:.0f} s; stderr:\n{process.communicate(timeout=30)[1]}")
    return line.strip()


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


def can_listen_on(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port``: a new listener binds it (as QEMU would, with
    SO_REUSEADDR, which only a live listener on the port refuses)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
    return True


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket ``pid`` holds in the LISTEN state, IPv4 and IPv6, as the
    kernel reports it: the socket inodes behind the process's file descriptors, looked up in
    /proc/<pid>/net/tcp and tcp6."""
    import ipaddress

    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: TCP_LISTEN
                continue
            address, port = local.split(":")
            # The kernel prints the address as 32-bit words in host (little-endian) byte order.
            raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
            found.add((str(ipaddress.ip_address(raw)), int(port, 16)))
    return found
