"""KenningProtocol (Kenning v0.8.1/v0.8.2), host side: message codec, an incremental parser and a client
with the same high-level methods as the legacy :class:`~wand_assets.device.protocol.DeviceClient`.

Wire format (``../shared/docs/KENNING_PROTOCOL_FACTS.md``): an 8-byte header — msg-id (message type in
bits 0-5, flow control in bits 6-7), a checksum (``0x4B`` XOR every other byte of the message), u16 LE
flags, u32 LE payload size — then the payload iff HAS_PAYLOAD. The host sends REQUESTs of at most
``max_message_size`` bytes each (136 on Kenning's UART, so 128 payload bytes), FIRST on the first and
LAST on the last; the device answers with a TRANSMISSION of the same type (SUCCESS or FAIL), or a NACK
(ACKNOWLEDGE with FAIL) after which the whole request is sent once more, as Kenning's host does. The
device may send LOGS at any time; they are handed to ``on_log``.
"""

from __future__ import annotations

import enum
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from wand_assets.device.protocol import (
    LEGACY_STATS_FIELDS,
    MAX_PAYLOAD,
    FramingError,
    Port,
    ProtocolError,
    RequestFailed,
    RequestMethods,
)

HEADER = struct.Struct("<BBHI")  # msg-id, checksum, flags, payload size
HEADER_SIZE = HEADER.size  # 8
CHECKSUM_MAGIC = 0x4B
UART_MAX_MESSAGE_SIZE = 136  # Kenning's UARTProtocol default: 128 payload bytes per message
STAT_RECORD = struct.Struct("<32sQQ")  # name, type, value (v0.8.2's 48-byte record)
PROTOCOL = "kenning"


class MessageType(enum.IntEnum):
    PING = 0
    STATUS = 1
    DATA = 2
    MODEL = 3
    PROCESS = 4
    OUTPUT = 5
    STATS = 6
    IO_SPEC = 7
    OPTIMIZERS = 8
    OPTIMIZE_MODEL = 9
    RUNTIME = 10
    UNOPTIMIZED_MODEL = 11
    LOGS = 12


class Flow(enum.IntEnum):
    REQUEST = 0
    REQUEST_RETRANSMIT = 1
    ACKNOWLEDGE = 2
    TRANSMISSION = 3


class Flag(enum.IntFlag):
    SUCCESS = 1 << 0
    FAIL = 1 << 1
    IS_HOST_MESSAGE = 1 << 2
    HAS_PAYLOAD = 1 << 3
    FIRST = 1 << 4
    LAST = 1 << 5
    IS_KENNING = 1 << 6
    IS_ZEPHYR = 1 << 7


class StatType(enum.IntEnum):
    DEFAULT = 0
    ALLOCATION = 1
    INFERENCE_TIME = 2


@dataclass(frozen=True)
class Message:
    type: int  # a MessageType value, or any 6-bit value seen on the wire
    flow: Flow
    flags: Flag
    payload: bytes = b""
    checksum_ok: bool = True

    @property
    def type_name(self) -> str:
        try:
            return MessageType(self.type).name
        except ValueError:
            return f"type {self.type}"

    def describe(self) -> str:
        return f"{self.type_name} {self.flow.name} flags={int(self.flags):#06x} ({len(self.payload)} payload bytes)"


def checksum(message: bytes | bytearray) -> int:
    """The checksum byte of a serialised message (its own byte counted as 0)."""
    x = CHECKSUM_MAGIC
    for i, b in enumerate(message):
        if i != 1:
            x ^= b
    return x


def encode_message(message_type: int, flow: Flow, flags: int, payload: bytes = b"", *, with_checksum: bool = True) -> bytes:
    """One message. HAS_PAYLOAD is derived from the payload, as Kenning's own ``Message`` does."""
    if not 0 <= message_type < 64:
        raise ProtocolError(f"message type {message_type} does not fit the 6-bit type field")
    flags = (flags | Flag.HAS_PAYLOAD) if payload else (flags & ~Flag.HAS_PAYLOAD)
    raw = bytearray(HEADER.pack((int(flow) << 6) | message_type, 0, int(flags) & 0xFFFF, len(payload)) + payload)
    if with_checksum:
        raw[1] = checksum(raw)
    return bytes(raw)


def encode_request(
    message_type: int,
    payload: bytes = b"",
    flags: int = 0,
    *,
    max_message_size: int = UART_MAX_MESSAGE_SIZE,
    with_checksum: bool = True,
) -> list[bytes]:
    """A request as the messages Kenning's host sends for it: user flags on every message, FIRST on the
    first, LAST on the last, at most ``max_message_size - 8`` payload bytes each."""
    chunk = max_message_size - HEADER_SIZE
    if chunk < 1:
        raise ProtocolError(f"max_message_size {max_message_size} leaves no room for payload")
    pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] or [b""]
    messages = []
    for i, piece in enumerate(pieces):
        edge = (Flag.FIRST if i == 0 else 0) | (Flag.LAST if i == len(pieces) - 1 else 0)
        messages.append(encode_message(message_type, Flow.REQUEST, flags | edge, piece, with_checksum=with_checksum))
    return messages


class MessageParser:
    """Incremental parser: feed bytes, get whole messages. ``max_payload`` bounds one message's payload,
    so a corrupt size field is reported instead of being waited for."""

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self._buffer = bytearray()
        self._max = max_payload

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def _payload_size(self) -> int:
        _, _, flags, size = HEADER.unpack_from(self._buffer)
        return size if flags & Flag.HAS_PAYLOAD else 0

    def bytes_wanted(self) -> int:
        """How many more bytes complete the next message (its header first)."""
        if len(self._buffer) < HEADER_SIZE:
            return HEADER_SIZE - len(self._buffer)
        size = self._payload_size()
        if size > self._max:
            return 1  # feed() reports it
        return max(1, HEADER_SIZE + size - len(self._buffer))

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER_SIZE:
            msg_id, sent_checksum, flags, _ = HEADER.unpack_from(self._buffer)
            size = self._payload_size()
            if size > self._max:
                bad = bytes(self._buffer[:HEADER_SIZE])
                self._buffer.clear()
                raise FramingError(f"message payload of {size} bytes in header {bad.hex()} exceeds {self._max}")
            end = HEADER_SIZE + size
            if len(self._buffer) < end:
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[:end]
            messages.append(
                Message(msg_id & 0x3F, Flow(msg_id >> 6), Flag(flags), raw[HEADER_SIZE:], sent_checksum == checksum(raw))
            )
        return messages


def parse_stats(payload: bytes) -> dict[str, int]:
    """What v0.8.2's host accepts (§3.1): the 24-byte allocator record, or 48-byte ``[name][u64 type][u64
    value]`` records. Unlike Kenning's host this keeps every record, whatever its type."""
    if len(payload) == 4 * len(LEGACY_STATS_FIELDS):
        return dict(zip(LEGACY_STATS_FIELDS, struct.unpack("<6I", payload), strict=True))
    if not payload or len(payload) % STAT_RECORD.size:
        raise ProtocolError(f"STATS payload of {len(payload)} bytes is neither 24 bytes nor 48-byte records")
    stats = {}
    for offset in range(0, len(payload), STAT_RECORD.size):
        raw_name, kind, value = STAT_RECORD.unpack_from(payload, offset)
        name = raw_name.split(b"\0", 1)[0].decode("ascii", errors="replace")
        if not name:
            raise ProtocolError(f"STATS record at offset {offset} has an empty name")
        if kind not in StatType._value2member_map_:
            raise ProtocolError(f"STATS record {name!r} has type {kind}, not one of {[t.value for t in StatType]}")
        stats[name] = value
    return stats


def parse_logs(payload: bytes) -> list[str]:
    """A LOGS payload: entries of ``[u8 length][ASCII]`` back to back (§3.4)."""
    lines, at = [], 0
    while at < len(payload):
        length = payload[at]
        entry = payload[at + 1 : at + 1 + length]
        if len(entry) != length:
            raise ProtocolError(f"LOGS entry at offset {at} claims {length} bytes, {len(entry)} present")
        lines.append(entry.decode("ascii", errors="replace"))
        at += 1 + length
    return lines


def request_type(data: bytes) -> int | None:
    """The type of the request a host write starts (its FIRST message), else None: for UART sniffers."""
    if len(data) < HEADER_SIZE:
        return None
    msg_id, _, flags, _ = HEADER.unpack_from(data)
    if msg_id >> 6 != Flow.REQUEST or not flags & Flag.FIRST:
        return None
    return msg_id & 0x3F


PROCESS_REPLY_BYTES = HEADER_SIZE  # PROCESS is answered by a TRANSMISSION without payload

_STATE_AFTER = {
    MessageType.IO_SPEC: "iospec loaded",
    MessageType.MODEL: "model loaded",
    MessageType.DATA: "input loaded",
    MessageType.PROCESS: "inference done",
}


class NackError(RequestFailed):
    """The device refused the request twice with ACKNOWLEDGE+FAIL (it did not arrive intact)."""


class KenningClient(RequestMethods):
    """KenningProtocol over a port, strictly in step: each request waits for its one reply (a NACK is
    answered by sending the request once more, as Kenning's host does); LOGS go to ``on_log``."""

    protocol = PROTOCOL
    parse_stats = staticmethod(parse_stats)

    def __init__(
        self,
        port: Port,
        *,
        timeout_s: float = 30.0,
        max_message_size: int = UART_MAX_MESSAGE_SIZE,
        on_log: Callable[[str], None] = lambda _line: None,
        read_chunk: int = 4096,
    ):
        self._port = port
        self._parser = MessageParser()
        self._timeout_s = timeout_s
        self._max_message_size = max_message_size
        self._on_log = on_log
        self._chunk = read_chunk
        self.state = "unknown"
        self.last_request_seconds = 0.0
        self.nacks = 0
        self.bad_checksums = 0  # replies whose checksum was wrong (counted, as Kenning's host ignores them)

    def iospec_payload(self, io) -> bytes:
        return io.pack_kenning()

    def request(
        self, message_type: MessageType, payload: bytes = b"", flags: int = 0, *, timeout_s: float | None = None
    ) -> Message:
        """Send one request; return the SUCCESS reply. RequestFailed on FAIL (NackError after a second
        NACK), RequestTimeout on silence, ProtocolError on a reply that does not belong to the request."""
        message_type = MessageType(message_type)  # the shared request methods pass the legacy numbers
        self._require_in_step(message_type)
        started = time.monotonic()
        for attempt in (1, 2):
            for message in encode_request(message_type, payload, flags, max_message_size=self._max_message_size):
                self._port.write(message)
            self._port.flush()
            reply = self._read_reply(message_type, started + (timeout_s or self._timeout_s))
            if reply.flow == Flow.ACKNOWLEDGE and reply.flags & Flag.FAIL:
                self.nacks += 1
                if attempt == 2:
                    raise NackError(f"{message_type.name} refused twice with a NACK in state '{self.state}'")
                continue
            break
        self.last_request_seconds = time.monotonic() - started
        if reply.flow != Flow.TRANSMISSION or not reply.flags & Flag.FIRST or not reply.flags & Flag.LAST:
            raise ProtocolError(f"reply to {message_type.name} is not one whole transmission: {reply.describe()}")
        if not reply.flags & Flag.SUCCESS or reply.flags & Flag.FAIL:
            raise RequestFailed(
                f"{message_type.name} ({len(payload)}-byte payload) failed in state '{self.state}': "
                f"device answered {reply.describe()}"
            )
        if message_type in _STATE_AFTER:
            self.state = _STATE_AFTER[message_type]
        return reply

    def _read_reply(self, message_type: MessageType, deadline: float) -> Message:
        """The next message of ``message_type`` (LOGS in between go to ``on_log``); a multi-message
        TRANSMISSION is joined into one Message with the FIRST message's flags plus LAST."""
        parts: list[Message] = []
        received = self._received(message_type, deadline)
        while True:
            message = next(received)
            if not message.checksum_ok:
                self.bad_checksums += 1
            if message.type == MessageType.LOGS and message.flow == Flow.TRANSMISSION:
                for line in parse_logs(message.payload):
                    self._on_log(line)
                continue
            if message.type != message_type:
                raise ProtocolError(f"reply to {message_type.name} has another type: {message.describe()}")
            if message.flow == Flow.ACKNOWLEDGE or (message.flags & Flag.FIRST and message.flags & Flag.LAST):
                if parts:
                    raise ProtocolError(f"reply to {message_type.name} restarted mid-transmission: {message.describe()}")
                return message
            if bool(message.flags & Flag.FIRST) == bool(parts):
                raise ProtocolError(f"reply to {message_type.name} out of order: {message.describe()}")
            parts.append(message)
            if message.flags & Flag.LAST:
                payload = b"".join(p.payload for p in parts)
                return Message(message_type, Flow.TRANSMISSION, parts[0].flags | Flag.LAST, payload)

    def connect(self) -> None:
        """PING with SUCCESS: a new session (the device drops any model)."""
        self.request(MessageType.PING, flags=Flag.SUCCESS)
        self.state = "connected"

    def disconnect(self) -> None:
        """PING with FAIL: the session ends; the device may next be spoken to in either protocol."""
        self.request(MessageType.PING, flags=Flag.FAIL)
        self.state = "disconnected"
