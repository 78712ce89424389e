"""Kenning's legacy UART protocol, host side: framing, a bounded frame parser and a request/response client.

Wire format (KENNING_FACTS §1): a 6-byte header — u32 LE ``size`` counting the type field plus the
payload, u16 LE ``type`` — then the payload. No checksum and no resync, so the parser treats an
impossible size as lost framing rather than guessing. OUTPUT and STATS are answered as OK with a
payload. This is what the seed firmware and Kenning ≤ v0.8.0 speak.
"""

from __future__ import annotations

import enum
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

HEADER = struct.Struct("<IH")
HEADER_SIZE = HEADER.size  # 6
TYPE_SIZE = 2
MAX_MESSAGE_SIZE = 5 * 256 * 1024  # the size field's ceiling: type + payload
MAX_PAYLOAD = MAX_MESSAGE_SIZE - TYPE_SIZE  # 1,310,718 bytes
LEGACY_STATS_FIELDS = (
    "host_bytes_peak",
    "host_bytes_allocated",
    "host_bytes_freed",
    "device_bytes_peak",
    "device_bytes_allocated",
    "device_bytes_freed",
)
# minstret since reset when STATS was handled (PROTOCOL.md): the device's own whole-session count.
SESSION_INSTRUCTIONS_FIELD = "total_instructions"
STAT_RECORD = struct.Struct("<32sQ")  # NUL-padded name, u64 value: the form Kenning also accepts


class MessageType(enum.IntEnum):
    OK = 0
    ERROR = 1
    DATA = 2
    MODEL = 3
    PROCESS = 4
    OUTPUT = 5
    STATS = 6
    IOSPEC = 7


class ProtocolError(RuntimeError):
    """Something on the wire was not what the protocol allows."""


class FramingError(ProtocolError):
    """A header that no valid message has: framing is lost and the stream cannot be trusted."""


class RequestTimeout(ProtocolError):
    pass


class RequestFailed(ProtocolError):
    """The device answered a request with ERROR (or something other than OK)."""


@dataclass(frozen=True)
class Frame:
    type: int  # a MessageType value, or any u16 seen on the wire
    payload: bytes

    @property
    def type_name(self) -> str:
        try:
            return MessageType(self.type).name
        except ValueError:
            return f"type {self.type}"


def encode(message_type: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the protocol's {MAX_PAYLOAD}-byte limit")
    if not 0 <= message_type <= 0xFFFF:
        raise ProtocolError(f"message type {message_type} does not fit the u16 type field")
    return HEADER.pack(len(payload) + TYPE_SIZE, message_type) + payload


class FrameParser:
    """Incremental parser: feed bytes, get whole frames. Never buffers more than one maximal message."""

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE):
        self._buffer = bytearray()
        self._max = max_message_size

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def bytes_wanted(self) -> int:
        """How many more bytes complete the next frame (its header first). Reading exactly this many
        lets a blocking port return as soon as the reply is complete instead of at its timeout."""
        if len(self._buffer) < HEADER_SIZE:
            return HEADER_SIZE - len(self._buffer)
        size, _ = HEADER.unpack_from(self._buffer)
        if size < TYPE_SIZE or size > self._max:
            return 1  # feed() will report the framing error
        return max(1, 4 + size - len(self._buffer))

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER_SIZE:
            size, message_type = HEADER.unpack_from(self._buffer)
            if size < TYPE_SIZE or size > self._max:
                bad = bytes(self._buffer[:HEADER_SIZE])
                self._buffer.clear()
                raise FramingError(f"impossible message size {size} in header {bad.hex()} (allowed {TYPE_SIZE}..{self._max})")
            end = 4 + size
            if len(self._buffer) < end:
                break
            frames.append(Frame(message_type, bytes(self._buffer[HEADER_SIZE:end])))
            del self._buffer[:end]
        return frames


def parse_stats(payload: bytes) -> dict[str, int]:
    """The seed's 24-byte allocator record (6 × u32) or a sequence of 40-byte named u64 records."""
    if len(payload) == 4 * len(LEGACY_STATS_FIELDS):
        return dict(zip(LEGACY_STATS_FIELDS, struct.unpack("<6I", payload), strict=False))
    if payload and len(payload) % STAT_RECORD.size == 0:
        stats = {}
        for offset in range(0, len(payload), STAT_RECORD.size):
            raw_name, value = STAT_RECORD.unpack_from(payload, offset)
            name = raw_name.split(b"\0", 1)[0].decode("ascii", errors="replace")
            if not name:
                raise ProtocolError(f"STATS record at offset {offset} has an empty name")
            stats[name] = value
        return stats
    raise ProtocolError(
        f"STATS payload of {len(payload)} bytes is neither the 24-byte allocator record nor 40-byte named records"
    )


def request_type(data: bytes) -> int | None:
    """The type of the request a host write starts (the client writes each frame at once), for sniffers."""
    return HEADER.unpack_from(data)[1] if len(data) >= HEADER_SIZE else None


PROCESS_REPLY_BYTES = HEADER_SIZE  # PROCESS is answered by an OK without payload
PROTOCOL = "legacy"


class Port(Protocol):
    """What the client needs from a pyserial port (``serial.serial_for_url(...)``)."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int = 1) -> bytes: ...
    def flush(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...


# Host's view of the device's model state machine (the firmware enforces the real one).
_STATE_AFTER = {
    MessageType.IOSPEC: "iospec loaded",
    MessageType.MODEL: "model loaded",
    MessageType.DATA: "input loaded",
    MessageType.PROCESS: "inference done",
}


class RequestMethods:
    """The high-level requests, the same for both protocols' clients (their request types have the same
    numbers), and the strict in-step reading both do. A client provides ``request``, ``parse_stats``
    and the port, its protocol's parser (``feed``, ``pending``, ``bytes_wanted``) and the read size."""

    _port: Port
    _parser: Any
    _chunk: int
    state: str

    def _require_in_step(self, message_type: Any) -> None:
        """Nothing may be waiting before a request: a stray byte means replies and requests are out of step."""
        stray = getattr(self._port, "in_waiting", 0)
        if stray or self._parser.pending:
            raise ProtocolError(
                f"{stray + self._parser.pending} unexpected bytes from the device before {message_type.name} "
                f"in state '{self.state}': replies and requests are out of step"
            )

    def _received(self, message_type: Any, deadline: float) -> Iterator[Any]:
        """What the parser makes of the device's bytes, unit by unit, until ``deadline`` (time.monotonic);
        RequestTimeout after it. Never reads past the unit the parser is waiting for."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout(
                    f"no reply to {message_type.name} in state '{self.state}' "
                    f"({self._parser.pending} bytes of a partial reply received)"
                )
            self._port.timeout = min(remaining, 0.5)
            data = self._port.read(min(self._parser.bytes_wanted(), self._chunk))
            if not data:
                continue
            try:
                units = self._parser.feed(data)
            except FramingError as exc:
                raise FramingError(f"reply to {message_type.name} in state '{self.state}': {exc}") from None
            yield from units

    def request(self, message_type: Any, payload: bytes = b"", *, timeout_s: float | None = None) -> Any:
        raise NotImplementedError

    @staticmethod
    def parse_stats(payload: bytes) -> dict[str, int]:
        raise NotImplementedError

    def load_iospec(self, iospec: bytes) -> None:
        self.request(MessageType.IOSPEC, iospec)

    def load_model(self, vmfb: bytes, *, timeout_s: float = 120.0) -> None:
        self.request(MessageType.MODEL, vmfb, timeout_s=timeout_s)

    def send_input(self, data: bytes) -> None:
        self.request(MessageType.DATA, data)

    def run_inference(self, *, timeout_s: float | None = None) -> None:
        self.request(MessageType.PROCESS, timeout_s=timeout_s)

    def read_output(self) -> bytes:
        return self.request(MessageType.OUTPUT).payload

    def read_stats(self) -> dict[str, int]:
        return self.parse_stats(self.request(MessageType.STATS).payload)


class DeviceClient(RequestMethods):
    """Strict request/response over a port: every request waits for one reply within its timeout."""

    parse_stats = staticmethod(parse_stats)

    protocol = PROTOCOL

    def __init__(self, port: Port, *, timeout_s: float = 30.0, read_chunk: int = 4096):
        self._port = port
        self._parser = FrameParser()
        self._timeout_s = timeout_s
        self._chunk = read_chunk
        self.state = "unknown"
        self.last_request_seconds = 0.0  # host wall time of the last round trip

    def request(self, message_type: MessageType, payload: bytes = b"", *, timeout_s: float | None = None) -> Frame:
        """Send one message, return the OK reply; raise RequestFailed on ERROR, RequestTimeout on silence."""
        self._require_in_step(message_type)
        started = time.monotonic()
        self._port.write(encode(message_type, payload))
        self._port.flush()
        reply = self._read_frame(message_type, started + (timeout_s or self._timeout_s))
        self.last_request_seconds = time.monotonic() - started
        if reply.type != MessageType.OK:
            raise RequestFailed(
                f"{message_type.name} ({len(payload)}-byte payload) failed in state '{self.state}': "
                f"device answered {reply.type_name}" + (f" with {len(reply.payload)} bytes" if reply.payload else "")
            )
        if message_type in _STATE_AFTER:
            self.state = _STATE_AFTER[message_type]
        return reply

    def _read_frame(self, message_type: MessageType, deadline: float) -> Frame:
        return next(self._received(message_type, deadline))  # the parser is asked for one frame at a time

    def iospec_payload(self, io) -> bytes:
        return io.pack()

    def connect(self) -> None:
        """The legacy protocol has no session handshake."""

    def disconnect(self) -> None:
        """The legacy protocol has no session end."""
