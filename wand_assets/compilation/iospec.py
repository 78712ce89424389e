"""The model I/O specification in Kenning's two forms: the JSON beside the .vmfb and the 160-byte IOSPEC.

Layout of the binary struct (packed, little-endian u32 unless noted; KENNING_FACTS §1.4):
num_input, num_input_dim[2], input_shape[2][4], input_length[2], input_size_bytes[2], num_output,
output_length[12], output_size_bytes, dtype (4 ASCII bytes, e.g. "f32"), entry_func (20 bytes),
model_name (20 bytes).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from wand_assets.data.dataset import CLASSES
from wand_assets.training.model import INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME

MAX_INPUTS = 2
MAX_INPUT_DIMS = 4
MAX_OUTPUTS = 12
NAME_BYTES = 20
IOSPEC_STRUCT = struct.Struct("<I2I8I2I2II12II4s20s20s")
IOSPEC_SIZE = IOSPEC_STRUCT.size
assert IOSPEC_SIZE == 160

_DTYPE_CODES = {
    "int8": "i8",
    "uint8": "u8",
    "int16": "i16",
    "uint16": "u16",
    "int32": "i32",
    "uint32": "u32",
    "int64": "i64",
    "uint64": "u64",
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
}


# Kenning v0.8.1+'s IOSPEC (io_spec_serializer; KENNING_PROTOCOL_FACTS.md §3.2): num_input,
# num_input_dim[2], 8 input dims concatenated, (code, bits) per input, num_output, num_output_dim[12],
# 48 output dims concatenated, (code, bits) per output, entry_func[20], model_name[20].
KENNING_IOSPEC_STRUCT = struct.Struct("<I2I8I2HI12I48I12H20s20s")
KENNING_IOSPEC_SIZE = KENNING_IOSPEC_STRUCT.size
assert KENNING_IOSPEC_SIZE == 356
_KENNING_DTYPE_KINDS = {"i": 0, "u": 1, "f": 2}  # int, uint, float (DLPack-like codes)


class IOSpecError(ValueError):
    pass


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name, e.g. "float32"

    @property
    def length(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return self.length * self.itemsize


@dataclass(frozen=True)
class ModelIOSpec:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    class_names: tuple[str, ...] = ()
    entry_func: str = "module.main"
    model_name: str = "module"

    def to_kenning_json(self, raw_input_shapes: list[list[int]] | None = None) -> dict:
        """Kenning's ``<model>.vmfb.json``: ``input`` (as users pass it), ``processed_input``, ``output``."""
        inputs = [{"name": t.name, "shape": raw_input_shapes or [list(t.shape)], "dtype": t.dtype} for t in self.inputs]
        processed = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.inputs]
        outputs = []
        for t in self.outputs:
            entry = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
            if self.class_names:
                entry["class_names"] = list(self.class_names)
            outputs.append(entry)
        return {
            "input": inputs,
            "processed_input": processed,
            "output": outputs,
            "entry_func": self.entry_func,
            "model_name": self.model_name,
        }

    def pack(self) -> bytes:
        """The 160-byte IOSPEC payload the firmware expects before MODEL."""
        if not 1 <= len(self.inputs) <= MAX_INPUTS:
            raise IOSpecError(f"{len(self.inputs)} inputs; the protocol allows 1..{MAX_INPUTS}")
        if not 1 <= len(self.outputs) <= MAX_OUTPUTS:
            raise IOSpecError(f"{len(self.outputs)} outputs; the protocol allows 1..{MAX_OUTPUTS}")
        dtype = self.inputs[0].dtype  # Kenning applies the first input's dtype to everything
        if dtype not in _DTYPE_CODES:
            raise IOSpecError(f"dtype {dtype!r} has no IOSPEC code; supported: {', '.join(_DTYPE_CODES)}")
        num_dims, shapes, lengths, sizes = (
            [0] * MAX_INPUTS,
            [0] * (MAX_INPUTS * MAX_INPUT_DIMS),
            [0] * MAX_INPUTS,
            [0] * MAX_INPUTS,
        )
        for i, t in enumerate(self.inputs):
            if not 1 <= len(t.shape) <= MAX_INPUT_DIMS:
                raise IOSpecError(f"input {t.name!r} has {len(t.shape)} dims; the protocol allows 1..{MAX_INPUT_DIMS}")
            num_dims[i] = len(t.shape)
            shapes[i * MAX_INPUT_DIMS : i * MAX_INPUT_DIMS + len(t.shape)] = t.shape
            lengths[i], sizes[i] = t.length, t.itemsize
        out_lengths = [0] * MAX_OUTPUTS
        for i, t in enumerate(self.outputs):
            out_lengths[i] = t.length
        return IOSPEC_STRUCT.pack(
            len(self.inputs),
            *num_dims,
            *shapes,
            *lengths,
            *sizes,
            len(self.outputs),
            *out_lengths,
            np.dtype(self.outputs[0].dtype).itemsize,
            _DTYPE_CODES[dtype].encode(),
            _name_field(self.entry_func),
            _name_field(self.model_name),
        )

    def pack_kenning(self) -> bytes:
        """The 356-byte IOSPEC Kenning v0.8.1+'s UART host sends (from ``processed_input`` and ``output``)."""

        def tensors(specs, count, slots):
            ranks, dims, types = [0] * count, [], [0] * count
            for i, t in enumerate(specs):
                dtype = np.dtype(t.dtype)
                if dtype.kind not in _KENNING_DTYPE_KINDS or not 1 <= len(t.shape) <= MAX_INPUT_DIMS:
                    raise IOSpecError(f"tensor {t.name!r} ({t.dtype}, {len(t.shape)} dims) has no Kenning IOSPEC form")
                ranks[i] = len(t.shape)
                dims += t.shape
                types[i] = _KENNING_DTYPE_KINDS[dtype.kind] | (dtype.itemsize * 8) << 8
            if len(dims) > slots:
                raise IOSpecError(f"{len(dims)} dims in all; Kenning's IOSPEC holds {slots}")
            return ranks, dims + [0] * (slots - len(dims)), types

        if not 1 <= len(self.inputs) <= MAX_INPUTS or not 1 <= len(self.outputs) <= MAX_OUTPUTS:
            raise IOSpecError(
                f"{len(self.inputs)} inputs, {len(self.outputs)} outputs; allowed 1..{MAX_INPUTS}, 1..{MAX_OUTPUTS}"
            )
        in_ranks, in_dims, in_types = tensors(self.inputs, MAX_INPUTS, MAX_INPUTS * MAX_INPUT_DIMS)
        out_ranks, out_dims, out_types = tensors(self.outputs, MAX_OUTPUTS, MAX_OUTPUTS * MAX_INPUT_DIMS)
        return KENNING_IOSPEC_STRUCT.pack(
            len(self.inputs),
            *in_ranks,
            *in_dims,
            *in_types,
            len(self.outputs),
            *out_ranks,
            *out_dims,
            *out_types,
            self.entry_func.encode("ascii")[:NAME_BYTES],
            self.model_name.encode("ascii")[:NAME_BYTES],
        )

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.inputs)

    @property
    def output_bytes(self) -> int:
        return sum(t.nbytes for t in self.outputs)


def _name_field(name: str) -> bytes:
    raw = name.encode("ascii")
    if len(raw) >= NAME_BYTES:  # keep a terminating NUL for the C side
        raise IOSpecError(f"name {name!r} is longer than {NAME_BYTES - 1} ASCII characters")
    return raw


def unpack(payload: bytes) -> dict:
    """Decode a 160-byte IOSPEC (for tests and for reading the seed's files)."""
    if len(payload) != IOSPEC_SIZE:
        raise IOSpecError(f"IOSPEC must be {IOSPEC_SIZE} bytes, got {len(payload)}")
    v = IOSPEC_STRUCT.unpack(payload)
    num_input = v[0]
    return {
        "num_input": num_input,
        "num_input_dim": list(v[1:3]),
        "input_shape": [list(v[3:7]), list(v[7:11])],
        "input_length": list(v[11:13]),
        "input_size_bytes": list(v[13:15]),
        "num_output": v[15],
        "output_length": list(v[16:28]),
        "output_size_bytes": v[28],
        "dtype": v[29].rstrip(b"\0").decode(),
        "entry_func": v[30].rstrip(b"\0").decode(),
        "model_name": v[31].rstrip(b"\0").decode(),
    }


# What the device is told about the model (Kenning's I/O spec): one float32 window in, 4 scores out.
MODEL_IO = ModelIOSpec(
    inputs=(TensorSpec(INPUT_NAME, INPUT_SHAPE, "float32"),),
    outputs=(TensorSpec(OUTPUT_NAME, (1, len(CLASSES)), "float32"),),
    class_names=CLASSES,
)
