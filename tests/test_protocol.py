import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wand_assets.device.protocol import (
    HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_PAYLOAD,
    DeviceClient,
    Frame,
    FrameParser,
    FramingError,
    MessageType,
    ProtocolError,
    RequestFailed,
    RequestTimeout,
    encode,
    parse_stats,
)


def test_header_counts_type_and_payload_little_endian():
    assert encode(MessageType.DATA, b"abc") == b"\x05\x00\x00\x00\x02\x00abc"
    assert encode(MessageType.PROCESS) == b"\x02\x00\x00\x00\x04\x00"


def test_magic_wand_data_message_is_1542_bytes_on_the_wire():
    assert len(encode(MessageType.DATA, bytes(1536))) == 1542


def test_payload_over_the_firmware_limit_is_refused_before_sending():
    with pytest.raises(ProtocolError, match="1310718"):
        encode(MessageType.MODEL, bytes(MAX_PAYLOAD + 1))


def test_parser_reassembles_frames_split_anywhere():
    stream = encode(MessageType.OK) + encode(MessageType.OK, b"\x01\x02\x03\x04") + encode(MessageType.ERROR)
    parser = FrameParser()
    frames = [f for byte in stream for f in parser.feed(bytes([byte]))]
    assert frames == [Frame(0, b""), Frame(0, b"\x01\x02\x03\x04"), Frame(1, b"")]
    assert parser.pending == 0


@pytest.mark.parametrize("size", [0, 1, MAX_MESSAGE_SIZE + 1, 0xFFFFFFFF])
def test_impossible_size_is_lost_framing(size):
    with pytest.raises(FramingError, match=f"impossible message size {size}"):
        FrameParser().feed(struct.pack("<IH", size, 0))


def test_unknown_type_is_parsed_not_rejected():
    (frame,) = FrameParser().feed(encode(200, b"x"))
    assert frame.type == 200 and frame.type_name == "type 200"


def test_legacy_24_byte_stats_are_the_seeds_allocator_fields():
    stats = parse_stats(struct.pack("<6I", 1, 2, 3, 4, 5, 6))
    assert stats == {
        "host_bytes_peak": 1,
        "host_bytes_allocated": 2,
        "host_bytes_freed": 3,
        "device_bytes_peak": 4,
        "device_bytes_allocated": 5,
        "device_bytes_freed": 6,
    }


def test_named_40_byte_stats_records():
    payload = (
        b"inference_instructions".ljust(32, b"\0")
        + struct.pack("<Q", 2**40)
        + b"mtime_hz".ljust(32, b"\0")
        + struct.pack("<Q", 10_000_000)
    )
    assert parse_stats(payload) == {"inference_instructions": 2**40, "mtime_hz": 10_000_000}


@pytest.mark.parametrize("payload", [b"", b"\0" * 23, b"\0" * 40])
def test_malformed_stats_are_refused(payload):
    with pytest.raises(ProtocolError):
        parse_stats(payload)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=40))
def test_random_byte_streams_never_crash_or_overbuffer_the_parser(chunks):
    parser = FrameParser(max_message_size=4096)
    for chunk in chunks:
        try:
            for frame in parser.feed(chunk):
                assert len(frame.payload) <= 4096 - 2
        except FramingError:
            pass  # the one allowed failure: it clears the buffer
        assert parser.pending < HEADER_SIZE + 4096


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=300)), max_size=10), st.integers(1, 50))
def test_valid_frames_round_trip_through_any_chunking(messages, chunk):
    stream = b"".join(encode(t, p) for t, p in messages)
    parser = FrameParser()
    frames = [f for i in range(0, len(stream), chunk) for f in parser.feed(stream[i : i + chunk])]
    assert frames == [Frame(t, p) for t, p in messages]


class ScriptedPort:
    """Test double for the serial port (the client is under test, not the device): replies from a script."""

    def __init__(self, replies: list[bytes]):
        self.replies = list(replies)
        self.sent: list[bytes] = []
        self.timeout: float | None = None
        self._out = b""

    def write(self, data):
        self.sent.append(bytes(data))
        if self.replies:
            self._out += self.replies.pop(0)

    def flush(self):
        pass

    @property
    def in_waiting(self):
        return len(self._out)

    def read(self, size=1):
        data, self._out = self._out[:size], self._out[size:]
        return data


def test_client_with_scripted_port_walks_the_request_sequence():
    port = ScriptedPort(
        [encode(0), encode(0), encode(0), encode(0), encode(0, bytes(16)), encode(0, struct.pack("<6I", *range(6)))]
    )
    client = DeviceClient(port)
    client.load_iospec(bytes(160))
    client.load_model(b"vmfb")
    client.send_input(bytes(1536))
    client.run_inference()
    assert client.read_output() == bytes(16)
    assert client.read_stats()["device_bytes_freed"] == 5
    assert [m[4] for m in port.sent] == [7, 3, 2, 4, 5, 6]


def test_client_error_reply_names_request_and_state():
    client = DeviceClient(ScriptedPort([encode(0), encode(MessageType.ERROR)]))
    client.load_iospec(bytes(160))
    with pytest.raises(RequestFailed, match=r"MODEL .* failed in state 'iospec loaded': device answered ERROR"):
        client.load_model(b"not a vmfb")


def test_client_times_out_on_silence_with_partial_reply_count():
    client = DeviceClient(ScriptedPort([encode(0, b"abcdef")[:5]]), timeout_s=0.2)
    with pytest.raises(RequestTimeout, match=r"no reply to PROCESS .*5 bytes of a partial reply"):
        client.run_inference()


def test_client_refuses_to_send_while_unexpected_bytes_are_waiting():
    client = DeviceClient(ScriptedPort([encode(0) + encode(0)]))
    client.run_inference()
    with pytest.raises(ProtocolError, match="6 unexpected bytes from the device before OUTPUT"):
        client.read_output()


def test_parser_asks_for_exactly_the_rest_of_the_frame():
    parser = FrameParser()
    assert parser.bytes_wanted() == HEADER_SIZE
    frame = encode(MessageType.OK, bytes(16))
    parser.feed(frame[:4])
    assert parser.bytes_wanted() == 2
    parser.feed(frame[4:10])
    assert parser.bytes_wanted() == len(frame) - 10
