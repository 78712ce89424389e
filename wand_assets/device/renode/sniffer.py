"""A pyserial port that watches the host's requests go by and tells the Renode session when to read
the simulator's counters: once when the evaluation loop starts, and around each PROCESS request."""

from __future__ import annotations

from types import ModuleType
from typing import Protocol

from wand_assets.device import protocol as legacy_protocol
from wand_assets.device.protocol import MessageType

# DATA and PROCESS have the same numbers in both protocols.
DATA, PROCESS = int(MessageType.DATA), int(MessageType.PROCESS)


class MarkedSession(Protocol):
    loop_started: bool

    def mark_loop_start(self) -> None: ...
    def mark(self, label: str) -> object: ...


class MarkingPort:
    """Wraps a port: the first DATA starts the loop; PROCESS is bracketed by ``process_start`` (before
    the request is written) and ``process_end`` (once its reply has been read).

    The protocol clients write each message with one ``write`` call, so every write starts with a header;
    ``wire`` is the protocol module (``protocol`` or ``kenning_protocol``) whose ``request_type`` reads it.
    Everything else (``timeout``, ``in_waiting``, ``flush``, ``close``) is the wrapped port's.
    """

    _OWN = ("_port", "_session", "_await", "_wire")

    def __init__(self, port, session: MarkedSession, wire: ModuleType = legacy_protocol):
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_wire", wire)
        object.__setattr__(self, "_await", 0)  # reply bytes of a PROCESS still to be read

    def write(self, data: bytes):
        frame_type = self._wire.request_type(data)
        if frame_type == DATA and not self._session.loop_started:
            self._session.mark_loop_start()
        elif frame_type == PROCESS:
            self._session.mark("process_start")
            object.__setattr__(self, "_await", self._wire.PROCESS_REPLY_BYTES)
        return self._port.write(data)

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(size)
        if self._await and data:
            left = self._await - len(data)
            object.__setattr__(self, "_await", max(left, 0))
            if left <= 0:
                self._session.mark("process_end")
        return data

    def __getattr__(self, name):
        return getattr(self._port, name)

    def __setattr__(self, name, value):
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._port, name, value)
