"""Throwaway local servers for a shared Dagster instance and a distributed executor: a PostgreSQL
cluster, a Redis broker and Celery worker processes. Each listens on loopback only, lives in its own
temporary folder and is stopped (and its folder removed) when its ``with`` block ends, even on error.

Used by the tests and ``benchmarks/sweep.py``; a deployment runs real services instead and only
points ``$DAGSTER_HOME/dagster.yaml`` (``docs/dagster-postgres.yaml``) and the executor config
(``docs/dagster-celery.yaml``) at them. Debian packages: ``postgresql``, ``redis-server``
(``WAND_WITH_SERVERS=1 scripts/setup.sh``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wand_assets.core.procs import LogFn, ToolError, run_tool

LOOPBACK = "127.0.0.1"
POSTGRES_ROOTS = (Path("/usr/lib/postgresql"),)  # Debian: /usr/lib/postgresql/<major>/bin
INSTALL_HINT = "install Debian's postgresql and redis-server (WAND_WITH_SERVERS=1 bash scripts/setup.sh)"


class ServerError(RuntimeError):
    """A local server could not be started; the message says which and why (with its log's tail)."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def _wait_until(ready, *, timeout_s: float, what: str, log_path: Path, alive=lambda: True, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive():
            raise ServerError(f"{what} exited before it was ready; {log_path}:\n{_tail(log_path)}")
        time.sleep(poll_s)
    raise ServerError(f"{what} was not ready within {timeout_s:.0f} s; {log_path}:\n{_tail(log_path)}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_group(proc: subprocess.Popen, *, grace_s: float) -> None:
    """SIGTERM to the process group ``proc`` leads; SIGKILL to what is left of it after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


# PostgreSQL -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    """How to reach a running PostgreSQL database."""

    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        """The variables ``docs/dagster-postgres.yaml`` reads."""
        return {
            "WAND_PG_HOST": self.host,
            "WAND_PG_PORT": str(self.port),
            "WAND_PG_USER": self.user,
            "WAND_PG_PASSWORD": self.password,
            "WAND_PG_DB": self.database,
        }


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL server's bin folder (initdb, pg_ctl, postgres, createdb)."""
    found = sorted(
        (p.parent for root in POSTGRES_ROOTS for p in root.glob("*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise ServerError(f"no PostgreSQL server (initdb) under /usr/lib/postgresql or on PATH: {INSTALL_HINT}")


def _server_user() -> str | None:
    """The account PostgreSQL runs as: None (ourselves) unless we are root, which it refuses."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError("running as root, and there is no 'postgres' account to run the server as: " + INSTALL_HINT) from None
    return "postgres"


@contextlib.contextmanager
def local_postgres(*, database: str = "dagster", timeout_s: float = 60.0, log: LogFn | None = None) -> Iterator[Postgres]:
    """A private PostgreSQL cluster on 127.0.0.1 (free port) with password authentication.

    Its folder is a fresh ``/tmp/wand-postgres-*`` (the server's account must reach it, which a
    pytest tmp folder of root does not allow); stopped and removed afterwards.
    """
    bindir = postgres_bin_dir()
    user = _server_user()
    as_user = ["runuser", "-u", user, "--"] if user else []
    base = Path(tempfile.mkdtemp(prefix="wand-postgres-"))
    data, log_path = base / "data", base / "postgres.log"
    password = secrets.token_urlsafe(16)
    started = False
    try:
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if user:
            entry = pwd.getpwnam(user)
            for path in (base, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        run_tool(
            [
                *as_user,
                bindir / "initdb",
                "-D",
                data,
                "-U",
                "wand",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb",
            timeout_s=timeout_s,
            log=log,
        )
        pwfile.unlink()
        port = free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# wand: private test cluster\nlisten_addresses = '{LOOPBACK}'\nport = {port}\n"
                f"unix_socket_directories = '{base}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        run_tool(
            [*as_user, bindir / "pg_ctl", "-D", data, "-l", log_path, "-w", "-t", str(int(timeout_s)), "start"],
            what="pg_ctl start",
            timeout_s=timeout_s + 10,
            log=log,
        )
        started = True
        env = {**os.environ, "PGPASSWORD": password}
        run_tool(
            [bindir / "createdb", "-h", LOOPBACK, "-p", str(port), "-U", "wand", database],
            what="createdb",
            timeout_s=timeout_s,
            log=log,
            env=env,
        )
        yield Postgres(LOOPBACK, port, "wand", password, database, data)
    except ToolError as e:
        raise ServerError(f"PostgreSQL did not start: {e}\n{_tail(log_path)}") from e
    finally:
        try:
            if started:
                try:
                    run_tool(
                        [*as_user, bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop"],
                        what="pg_ctl stop",
                        timeout_s=40,
                        log=log,
                    )
                except ToolError:
                    _kill_postmaster(data)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


# Redis ------------------------------------------------------------------------------------------


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def local_redis(workdir: Path, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Debian's redis-server on 127.0.0.1 (free port), no persistence; yields its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerError(f"redis-server is not on PATH: {INSTALL_HINT}")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "redis.log"
    args = [
        binary,
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--protected-mode",
        "yes",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(log_path),
        "--daemonize",
        "no",
    ]
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_until(
            lambda: _redis_answers(port),
            timeout_s=timeout_s,
            what="redis-server",
            log_path=log_path,
            alive=lambda: proc.poll() is None,
        )
        yield f"redis://{LOOPBACK}:{port}/0"
    finally:
        _stop_group(proc, grace_s=10)


# Celery workers ---------------------------------------------------------------------------------


@dataclass
class Worker:
    """One ``dagster-celery worker start`` process tree (the CLI and the celery worker it runs)."""

    name: str  # the node name celery reports: <name>@<host>
    process: subprocess.Popen
    log_path: Path

    def ready(self) -> bool:
        return bool(re.search(rf"\b{re.escape(self.name)} ready\.", _tail(self.log_path, 400)))


def _beside_python(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ServerError(f"{name} is not installed next to {sys.executable}: pip install -e '.[celery]'")
    return found


@contextlib.contextmanager
def celery_workers(
    names: Sequence[str],
    *,
    config_yaml: Path,
    workdir: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
    includes: Sequence[str] = ("wand_assets.definitions",),
    concurrency: int = 1,
    timeout_s: float = 120.0,
) -> Iterator[list[Worker]]:
    """Start one dagster-celery worker per name (``concurrency`` task slots each) and wait until every
    one is connected to the broker that ``config_yaml`` names. ``env`` must carry what the steps need
    ($DAGSTER_HOME, the instance's and the broker's variables, IREE_SOURCE_DIR, …)."""
    cli = _beside_python("dagster-celery")
    _beside_python("celery")  # dagster-celery runs `celery` from PATH
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"}
    host = socket.gethostname()
    workers: list[Worker] = []
    try:
        for name in names:
            log_path = workdir / f"{name}.log"
            args = [cli, "worker", "start", "-A", "dagster_celery.app", "-y", str(config_yaml), "-n", name, "-l", "INFO"]
            for module in includes:
                args += ["-i", module]
            args += ["--", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"]
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    args,
                    cwd=cwd,
                    env=full_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            workers.append(Worker(f"{name}@{host}", proc, log_path))
        for w in workers:
            _wait_until(
                w.ready,
                timeout_s=timeout_s,
                what=f"celery worker {w.name}",
                log_path=w.log_path,
                alive=lambda w=w: w.process.poll() is None,
                poll_s=0.5,
            )
        yield workers
    finally:
        for w in workers:  # all warm shutdowns at once, then wait for each
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.process.pid, signal.SIGTERM)
        for w in workers:
            _stop_group(w.process, grace_s=30)
