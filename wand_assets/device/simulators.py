"""One entry point for every simulator backend: start the board, hand back a connected UART, tear down.

Backends: ``qemu`` (Debian's qemu-system-riscv32; always installable, used by CI) and ``renode``
(Renode through pyrenode3, in a worker process; adds opcode counters and the profiler). A backend's
session exposes ``port`` (a pyserial port speaking the UART protocol) and ``describe()`` (name,
version and how it was started, recorded with every result). A Renode session also has
``statistics`` (Renode-only measurements), filled in when the session has ended.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from wand_assets.core.targets import Target
from wand_assets.device import qemu, renode
from wand_assets.device.session import PROTOCOLS, check_protocol

BACKENDS = ("qemu", "renode")


class DeviceSessionError(RuntimeError):
    """The evaluation failed while the simulator ran; carries the firmware's own log."""


def simulator_version(backend: str) -> str:
    _check_backend(backend)
    if backend == "renode":
        return renode.renode_version()
    return qemu.qemu_version()


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown simulator backend {backend!r}; available: {', '.join(BACKENDS)}")


@contextlib.contextmanager
def open_session(
    backend: str,
    elf: Path,
    target: Target,
    workdir: Path,
    *,
    boot_timeout_s: float = 30.0,
    log: Callable[[str], None] = lambda _m: None,
    renode_setup: renode.RenodeSetup | None = None,
    protocol: str = "legacy",
) -> Iterator[qemu.QemuSession | renode.RenodeSession]:
    """``protocol``: what the host will speak on the UART (Renode's sniffer reads the requests)."""
    _check_backend(backend)
    check_protocol(protocol)
    starter: contextlib.AbstractContextManager[qemu.QemuSession | renode.RenodeSession]
    if backend == "renode":
        starter = renode.start_renode(
            elf,
            target,
            workdir,
            setup=renode_setup or renode.RenodeSetup(),
            boot_timeout_s=boot_timeout_s,
            log=log,
            wire=PROTOCOLS[protocol],
        )
    else:
        starter = qemu.start_qemu(elf, target, workdir, boot_timeout_s=boot_timeout_s, log=log)
    with starter as session:
        try:
            yield session
        except Exception as exc:
            # The firmware's log says why (a trap report, an IREE status) far better than a timeout does.
            tail = "\n".join(session.log_text().splitlines()[-20:])
            status = session.exit_status()
            where = f"simulator exited with status {status}" if status is not None else "simulator still running"
            raise DeviceSessionError(f"{exc}\n({where}; firmware log tail:)\n{tail}") from exc
        finally:
            for line in session.new_log_lines():
                log(f"firmware: {line}")
