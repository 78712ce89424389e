"""KenningProtocol (Kenning v0.8.1/v0.8.2) conformance of the real firmware in QEMU (TEST-ONLY protocol
firmware: real detection, framing, validation and state machine, fake runtime), and both protocols
served on one UART in one boot."""

import shutil
import struct

import numpy as np
import pytest
from test_device_qemu import fnv1a, next_frame

from wand_assets.compilation.iospec import MODEL_IO
from wand_assets.core.targets import get_target
from wand_assets.device import protocol as legacy
from wand_assets.device import qemu
from wand_assets.device.firmware_build import build_firmware
from wand_assets.device.kenning_protocol import (
    Flag,
    Flow,
    KenningClient,
    MessageParser,
    MessageType,
    NackError,
    encode_message,
    encode_request,
)
from wand_assets.device.protocol import (
    LEGACY_STATS_FIELDS,
    MAX_PAYLOAD,
    SESSION_INSTRUCTIONS_FIELD,
    DeviceClient,
    RequestFailed,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("riscv64-unknown-elf-gcc") is None or shutil.which(qemu.QEMU_BINARY) is None,
        reason="needs gcc-riscv64-unknown-elf, picolibc-riscv64-unknown-elf and qemu-system-misc (scripts/setup.sh)",
    ),
]

SCALAR = get_target("rv32imf")
FAKE_MODEL = b"fake model for the TEST-ONLY firmware" * 8  # 304 bytes: three MODEL messages
WINDOW = np.arange(384, dtype=np.float32).tobytes()
ALL_STATS = [
    *LEGACY_STATS_FIELDS,
    "inference_instructions",
    "inference_cycles",
    "inference_mtime_ticks",
    "mtime_hz",
    "inference_count",
    "heap_bytes_peak",
    "stack_bytes_peak",
    SESSION_INSTRUCTIONS_FIELD,
]


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    out = tmp_path_factory.mktemp("fw")
    return build_firmware(SCALAR, None, out / "build", out / "fw.elf", protocol_only=True, log=lambda _: None).path


@pytest.fixture
def device(firmware, tmp_path):
    with qemu.start_qemu(firmware, SCALAR, tmp_path) as session:
        yield session


def next_message(session, timeout_s: float = 30.0):
    parser = MessageParser()
    session.port.timeout = timeout_s
    while True:
        data = session.port.read(parser.bytes_wanted())
        assert data, "device did not answer"
        if messages := parser.feed(data):
            return messages[0]


def send(session, *messages: bytes, timeout_s: float = 30.0):
    """Write raw messages, return the device's next message (bypassing the client's checks)."""
    for message in messages:
        session.port.write(message)
    return next_message(session, timeout_s)


def connected(session) -> KenningClient:
    client = KenningClient(session.port)
    client.connect()
    return client


def loaded(session) -> KenningClient:
    client = connected(session)
    client.load_iospec(MODEL_IO.pack_kenning())
    client.load_model(FAKE_MODEL)
    return client


def assert_fail(reply, message_type):
    assert (reply.type, reply.flow) == (message_type, Flow.TRANSMISSION)
    assert reply.flags & Flag.FAIL and not reply.flags & Flag.SUCCESS and reply.checksum_ok


def assert_nack(reply, message_type):
    assert (reply.type, reply.flow, int(reply.flags), reply.payload, reply.checksum_ok) == (
        message_type,
        Flow.ACKNOWLEDGE,
        int(Flag.FAIL),
        b"",
        True,
    )


def assert_still_serves(session):
    client = KenningClient(session.port)
    client.load_iospec(MODEL_IO.pack_kenning())
    client.load_model(FAKE_MODEL)


def test_a_whole_kenning_session_reaches_the_fake_runtime(device):
    client = loaded(device)
    client.send_input(WINDOW)  # 1,536 bytes: 12 messages
    client.run_inference()
    assert client.read_output() == struct.pack("<I", fnv1a(WINDOW)) * 4
    stats = client.read_stats()
    assert list(stats) == ALL_STATS  # every wand_runtime_stats_t field, in the struct's order
    assert stats["inference_count"] == 1
    client.disconnect()
    assert client.bad_checksums == 0


def test_replies_are_the_bytes_kenning_expects(device):
    # A host with error_recovery off sends checksum 0x00 (§1.6): accepted. The reply is SUCCESS|FIRST|LAST|IS_ZEPHYR.
    ping = encode_request(MessageType.PING, flags=Flag.SUCCESS, with_checksum=False)
    assert ping == [bytes.fromhex("00 00 31 00 00 00 00 00")]
    device.port.write(ping[0])
    device.port.timeout = 30
    assert device.port.read(8) == bytes.fromhex("C0 3A B1 00 00 00 00 00")
    device.port.write(bytes.fromhex("05 00 30 00 00 00 00 00"))  # OUTPUT before any inference
    assert device.port.read(8) == bytes.fromhex("C5 3C B2 00 00 00 00 00")  # FAIL|FIRST|LAST|IS_ZEPHYR


def test_bad_checksum_gets_a_nack_after_the_last_message_and_the_next_request_works(device):
    client = loaded(device)
    messages = [bytearray(m) for m in encode_request(MessageType.DATA, WINDOW)]
    messages[5][20] ^= 0xFF  # a payload byte of a middle message
    assert_nack(send(device, *map(bytes, messages)), MessageType.DATA)
    client.send_input(WINDOW)
    client.run_inference()


def test_bad_checksum_of_stats_gets_a_fail_transmission_not_a_nack(device):
    # A NACK to STATS would crash Kenning v0.8.2's host (§2.7).
    loaded(device)
    raw = bytearray(encode_request(MessageType.STATS)[0])
    raw[1] ^= 0x55
    assert_fail(send(device, bytes(raw)), MessageType.STATS)


@pytest.mark.parametrize(
    "message_type", [MessageType.STATUS, MessageType.OPTIMIZERS, MessageType.RUNTIME, MessageType.LOGS, 13, 63]
)
def test_unknown_or_unserved_type_gets_a_fail_of_that_type(device, message_type):
    connected(device)
    assert_fail(send(device, *encode_request(message_type, b"xyz")), message_type)
    assert_still_serves(device)


def test_a_message_that_is_not_a_request_gets_a_fail(device):
    connected(device)
    transmission = encode_message(MessageType.DATA, Flow.TRANSMISSION, Flag.SUCCESS | Flag.FIRST | Flag.LAST, b"ab")
    assert_fail(send(device, transmission), MessageType.DATA)
    assert_still_serves(device)


def test_oversized_request_is_refused_with_fail(device):
    # The header announces more than the buffer holds; the sender then goes quiet mid-payload.
    connected(device)
    header = encode_message(MessageType.MODEL, Flow.REQUEST, Flag.FIRST | Flag.LAST, b"x")[:8]
    header = header[:4] + struct.pack("<I", MAX_PAYLOAD + 1)
    assert_fail(send(device, header + bytes(100), timeout_s=60), MessageType.MODEL)
    assert_still_serves(device)


@pytest.mark.parametrize("keep", [4, 8, 8 + 60, 136 + 8])
def test_request_cut_off_gets_a_nack_and_the_next_request_works(device, keep):
    connected(device)
    raw = b"".join(encode_request(MessageType.IO_SPEC, MODEL_IO.pack_kenning()))[:keep]
    assert_nack(send(device, raw, timeout_s=60), MessageType.IO_SPEC)
    assert_still_serves(device)


def test_messages_out_of_order_get_a_nack(device):
    client = loaded(device)
    first, middle, *_rest, last = encode_request(MessageType.DATA, WINDOW)
    assert_nack(send(device, middle, last), MessageType.DATA)  # no FIRST
    model = encode_request(MessageType.MODEL, FAKE_MODEL)
    assert_nack(send(device, first, model[1], last), MessageType.DATA)  # another type mid-way
    assert_nack(send(device, first, first, last), MessageType.DATA)  # FIRST again
    client.send_input(WINDOW)


def test_requests_out_of_state_order_fail_and_change_nothing(device):
    client = connected(device)
    for request in (MessageType.MODEL, MessageType.DATA, MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS):
        assert_fail(send(device, *encode_request(request, b"")), request)
    client.load_iospec(MODEL_IO.pack_kenning())
    with pytest.raises(RequestFailed, match=r"DATA .* failed in state 'iospec loaded'"):
        client.send_input(WINDOW)


def patched(offset: int, value: bytes) -> bytes:
    raw = bytearray(MODEL_IO.pack_kenning())
    raw[offset : offset + len(value)] = value
    return bytes(raw)


@pytest.mark.parametrize(
    "iospec",
    [
        patched(45, b"\x07"),  # a 7-bit float
        patched(0, struct.pack("<I", 3)),  # 3 inputs
        patched(4, struct.pack("<I", 5)),  # rank 5
        patched(16, struct.pack("<I", 0)),  # a zero dimension
        patched(292, b"\x00\x08"),  # int8 output of a float32 input
        patched(48, struct.pack("<I", 12)),  # 12 outputs, 11 of them of rank 0
        MODEL_IO.pack_kenning()[:355],
        bytes(356),
    ],
    ids=["float7", "three-inputs", "rank5", "zero-dim", "mixed-dtypes", "rank0-outputs", "355-bytes", "zeros"],
)
def test_malformed_iospec_fails(device, iospec):
    client = connected(device)
    with pytest.raises(RequestFailed, match="IO_SPEC"):
        client.load_iospec(iospec)
    assert "IOSPEC rejected" in device.log_text()


def test_ping_starts_a_new_session_that_has_no_model(device):
    client = loaded(device)
    client.connect()
    assert_fail(send(device, *encode_request(MessageType.DATA, WINDOW)), MessageType.DATA)


def test_both_protocols_on_one_uart_in_one_boot(device):
    def legacy_round(client: DeviceClient) -> bytes:
        client.load_iospec(MODEL_IO.pack())
        client.load_model(FAKE_MODEL)
        client.send_input(WINDOW)
        client.run_inference()
        return client.read_output()

    expected = struct.pack("<I", fnv1a(WINDOW)) * 4
    assert legacy_round(DeviceClient(device.port)) == expected
    kenning = loaded(device)
    kenning.send_input(WINDOW)
    kenning.run_inference()
    assert kenning.read_output() == expected
    kenning.disconnect()
    assert legacy_round(DeviceClient(device.port)) == expected
    # A v0.8.0 host needs no disconnect: its IOSPEC is recognised in the middle of a Kenning session too.
    loaded(device)
    device.port.write(legacy.encode(legacy.MessageType.IOSPEC, MODEL_IO.pack()))
    assert next_frame(device).type == legacy.MessageType.OK
    assert "KenningProtocol framing from here on" in device.log_text()


class NoisyLine:
    """The UART with a flipped payload bit in the first message of the first ``corrupt`` requests the host
    writes (line noise)."""

    def __init__(self, port, corrupt: int):
        self._port, self._left = port, corrupt

    def write(self, data: bytes):
        if self._left and len(data) > 8 and data[2] & Flag.FIRST:
            self._left -= 1
            data = data[:8] + bytes([data[8] ^ 0x01]) + data[9:]
        return self._port.write(data)

    def __getattr__(self, name):
        return getattr(self._port, name)

    def __setattr__(self, name, value):
        if name in ("_port", "_left"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._port, name, value)


def test_client_resends_once_after_a_nack_as_kennings_host_does(device):
    loaded(device)
    client = KenningClient(NoisyLine(device.port, corrupt=1))
    client.send_input(WINDOW)  # NACKed once for the checksum, then accepted
    assert client.nacks == 1
    client.run_inference()
    assert client.read_output() == struct.pack("<I", fnv1a(WINDOW)) * 4
    noisy = KenningClient(NoisyLine(device.port, corrupt=2))
    with pytest.raises(NackError, match="DATA refused twice"):
        noisy.send_input(WINDOW)
