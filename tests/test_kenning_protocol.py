"""The host's KenningProtocol codec against the byte examples in KENNING_PROTOCOL_FACTS.md, which were
produced by Kenning v0.8.2's own ``message.py``/``serializable.py``/``io_spec_serializer.py``."""

import struct

import pytest

from wand_assets.compilation.iospec import KENNING_IOSPEC_SIZE, ModelIOSpec, TensorSpec
from wand_assets.device import kenning_protocol as kp
from wand_assets.device.kenning_protocol import Flag, Flow, MessageParser, MessageType
from wand_assets.device.protocol import FramingError, ProtocolError


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def parse_one(raw: bytes) -> kp.Message:
    (message,) = MessageParser().feed(raw)
    return message


def test_data_request_of_8_bytes_with_and_without_checksum():
    payload = bytes(range(1, 9))
    assert kp.encode_request(MessageType.DATA, payload) == [h("02 71 38 00 08 00 00 00") + payload]
    assert kp.encode_request(MessageType.DATA, payload, with_checksum=False) == [h("02 00 38 00 08 00 00 00") + payload]


@pytest.mark.parametrize(
    ("flags", "raw"),
    [
        (Flag.SUCCESS, "00 7A 31 00 00 00 00 00"),  # PING connect
        (Flag.FAIL, "00 79 32 00 00 00 00 00"),  # PING disconnect
    ],
)
def test_ping_requests(flags, raw):
    assert kp.encode_request(MessageType.PING, flags=flags) == [h(raw)]


@pytest.mark.parametrize("message_type", [MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS])
def test_empty_requests_without_checksum(message_type):
    assert kp.encode_request(message_type, with_checksum=False) == [bytes([message_type]) + h("00 30 00 00 00 00 00")]


def test_300_byte_data_is_three_messages_as_kenning_sends_it():
    messages = kp.encode_request(MessageType.DATA, bytes(300), with_checksum=False)
    assert [m[:8] for m in messages] == [h("02 00 18 00 80 00 00 00"), h("02 00 08 00 80 00 00 00"), h("02 00 28 00 2C 00 00 00")]
    assert [len(m) for m in messages] == [136, 136, 52]


def test_iospec_upload_is_128_128_100_with_first_and_last():
    spec = ModelIOSpec((TensorSpec("in", (1, 128, 3, 1), "float32"),), (TensorSpec("out", (1, 4), "float32"),))
    messages = kp.encode_request(MessageType.IO_SPEC, spec.pack_kenning())
    assert [(m[2], len(m) - 8) for m in messages] == [(0x18, 128), (0x08, 128), (0x28, 100)]
    assert all(kp.checksum(m) == m[1] for m in messages)


@pytest.mark.parametrize(
    ("raw", "message_type", "flow", "flags", "payload"),
    [
        ("C2 38 B1 00 00 00 00 00", MessageType.DATA, Flow.TRANSMISSION, 0xB1, b""),
        ("C2 F4 79 00 01 00 00 00 05", MessageType.DATA, Flow.TRANSMISSION, 0x79, b"\x05"),
        ("C2 3B B2 00 00 00 00 00", MessageType.DATA, Flow.TRANSMISSION, 0xB2, b""),
        ("82 CB 02 00 00 00 00 00", MessageType.DATA, Flow.ACKNOWLEDGE, 0x02, b""),
        ("C0 BA 31 00 00 00 00 00", MessageType.PING, Flow.TRANSMISSION, 0x31, b""),
        ("C7 3D B1 00 00 00 00 00", MessageType.IO_SPEC, Flow.TRANSMISSION, 0xB1, b""),
        ("C3 39 B1 00 00 00 00 00", MessageType.MODEL, Flow.TRANSMISSION, 0xB1, b""),
        ("C4 3E B1 00 00 00 00 00", MessageType.PROCESS, Flow.TRANSMISSION, 0xB1, b""),
        ("C5 3F B1 00 00 00 00 00", MessageType.OUTPUT, Flow.TRANSMISSION, 0xB1, b""),
        ("C5 33 B9 00 04 00 00 00 00 00 00 00", MessageType.OUTPUT, Flow.TRANSMISSION, 0xB9, bytes(4)),
        ("C6 3C B1 00 00 00 00 00", MessageType.STATS, Flow.TRANSMISSION, 0xB1, b""),
        ("C7 45 2D E0 05 00 00 00 01 02 03 04 05", MessageType.IO_SPEC, Flow.TRANSMISSION, 0xE02D, h("0102030405")),
        ("CC 5E B8 00 06 00 00 00 05 68 65 6C 6C 6F", MessageType.LOGS, Flow.TRANSMISSION, 0xB8, b"\x05hello"),
    ],
)
def test_device_messages_decode_and_reencode(raw, message_type, flow, flags, payload):
    message = parse_one(h(raw))
    assert (message.type, message.flow, int(message.flags), message.payload, message.checksum_ok) == (
        message_type,
        flow,
        flags,
        payload,
        True,
    )
    assert kp.encode_message(message_type, flow, flags, payload) == h(raw)


def test_logs_payload_entries():
    assert kp.parse_logs(parse_one(h("CC 5E B8 00 06 00 00 00 05 68 65 6C 6C 6F")).payload) == ["hello"]
    assert kp.parse_logs(b"\x02ab\x00\x01c") == ["ab", "", "c"]
    with pytest.raises(ProtocolError, match="claims 5 bytes"):
        kp.parse_logs(b"\x05abc")


def test_a_wrong_checksum_is_reported_not_dropped():
    raw = bytearray(h("C2 38 B1 00 00 00 00 00"))
    raw[1] ^= 0x01
    message = parse_one(bytes(raw))
    assert not message.checksum_ok and message.flags & Flag.SUCCESS


def test_without_has_payload_the_size_field_is_ignored():
    # §1.7: a message without HAS_PAYLOAD is exactly 8 bytes whatever its size field says.
    first, second = MessageParser().feed(h("C4 00 31 00 FF FF 00 00") + h("C5 3F B1 00 00 00 00 00"))
    assert (first.type, first.payload, second.type) == (MessageType.PROCESS, b"", MessageType.OUTPUT)


def test_parser_takes_bytes_one_at_a_time_and_says_how_many_it_wants():
    raw = h("C5 33 B9 00 04 00 00 00 0A 0B 0C 0D")
    parser = MessageParser()
    wanted = []
    for i, byte in enumerate(raw):
        wanted.append(parser.bytes_wanted())
        messages = parser.feed(bytes([byte]))
        assert messages == ([] if i < len(raw) - 1 else messages)
    assert messages[0].payload == h("0A0B0C0D")
    assert wanted[0] == 8 and wanted[8] == 4 and parser.pending == 0


def test_a_payload_size_beyond_the_limit_is_a_framing_error():
    with pytest.raises(FramingError, match="exceeds"):
        MessageParser(max_payload=1024).feed(h("C5 00 38 00 01 04 00 00"))


def test_iospec_matches_the_worked_example():
    spec = ModelIOSpec(
        (TensorSpec("in", (1, 128, 3, 1), "float32"),), (TensorSpec("out", (1, 4), "float32"),), entry_func="module.main"
    )
    raw = spec.pack_kenning()
    assert len(raw) == KENNING_IOSPEC_SIZE == 356
    assert raw[:28] == h("01 00 00 00 04 00 00 00 00 00 00 00 01 00 00 00 80 00 00 00 03 00 00 00 01 00 00 00")
    assert raw[28:44] == bytes(16)
    assert raw[44:48] == h("02 20 00 00")
    assert raw[48:56] == h("01 00 00 00 02 00 00 00")
    assert raw[100:108] == h("01 00 00 00 04 00 00 00")
    assert raw[292:296] == h("02 20 00 00")
    assert raw[316:336] == b"module.main" + bytes(9)
    assert raw[336:356] == b"module" + bytes(14)


def test_iospec_dims_of_two_inputs_are_concatenated_not_padded():
    spec = ModelIOSpec((TensorSpec("a", (1, 10), "float32"), TensorSpec("b", (3,), "int8")), (TensorSpec("o", (2,), "uint8"),))
    raw = spec.pack_kenning()
    assert struct.unpack_from("<8I", raw, 12) == (1, 10, 3, 0, 0, 0, 0, 0)
    assert raw[44:48] == h("02 20 00 08")
    assert raw[292:294] == h("01 08")


def stat_record(name: str, kind: int, value: int) -> bytes:
    return kp.STAT_RECORD.pack(name.encode(), kind, value)


def test_stats_records_of_48_bytes_and_the_24_byte_form():
    payload = stat_record("host_bytes_peak", 1, 7) + stat_record("inference_instructions", 0, 2**40)
    assert kp.parse_stats(payload) == {"host_bytes_peak": 7, "inference_instructions": 2**40}
    assert kp.parse_stats(struct.pack("<6I", 1, 2, 3, 4, 5, 6))["device_bytes_freed"] == 6


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (stat_record("x", 3, 1), "type 3"),
        (bytes(40), "neither"),  # v0.8.0's 40-byte record is not v0.8.2's
        (stat_record("", 1, 1), "empty name"),
    ],
)
def test_stats_that_kenning_v082_would_reject(payload, match):
    with pytest.raises(ProtocolError, match=match):
        kp.parse_stats(payload)


def test_request_type_is_read_only_from_the_first_message():
    first, middle, _ = kp.encode_request(MessageType.DATA, bytes(300))
    assert kp.request_type(first) == MessageType.DATA
    assert kp.request_type(middle) is None
    assert kp.request_type(kp.encode_message(MessageType.PROCESS, Flow.TRANSMISSION, Flag.FIRST | Flag.LAST)) is None
