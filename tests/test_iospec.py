import pytest

from wand_assets.compilation.iospec import (
    IOSPEC_SIZE,
    MODEL_IO,
    IOSpecError,
    ModelIOSpec,
    TensorSpec,
    unpack,
)


def test_magic_wand_iospec_matches_the_seeds_layout():
    payload = MODEL_IO.pack()
    assert len(payload) == IOSPEC_SIZE == 160
    fields = unpack(payload)
    assert fields["num_input"] == 1
    assert fields["num_input_dim"] == [4, 0]
    assert fields["input_shape"] == [[1, 128, 3, 1], [0, 0, 0, 0]]
    assert fields["input_length"] == [384, 0]
    assert fields["input_size_bytes"] == [4, 0]
    assert fields["num_output"] == 1
    assert fields["output_length"] == [4] + [0] * 11
    assert fields["output_size_bytes"] == 4
    assert (fields["dtype"], fields["entry_func"], fields["model_name"]) == ("f32", "module.main", "module")
    assert payload[116:120] == b"f32\0"


def test_kenning_json_lists_input_processed_input_and_output():
    spec = MODEL_IO.to_kenning_json(raw_input_shapes=[[1, 128, 3], [1, 128, 3, 1]])
    assert spec["processed_input"] == [{"name": "input_1", "shape": [1, 128, 3, 1], "dtype": "float32"}]
    assert spec["output"][0]["class_names"] == ["wing", "ring", "slope", "negative"]
    assert spec["input"][0]["shape"] == [[1, 128, 3], [1, 128, 3, 1]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ModelIOSpec(inputs=(TensorSpec("x", (1, 2, 3, 4, 5), "float32"),), outputs=(TensorSpec("y", (1,), "float32"),)), "dims"),
        (ModelIOSpec(inputs=(), outputs=(TensorSpec("y", (1,), "float32"),)), "inputs"),
        (ModelIOSpec(inputs=(TensorSpec("x", (1,), "bool"),), outputs=(TensorSpec("y", (1,), "float32"),)), "dtype"),
        (
            ModelIOSpec(
                inputs=(TensorSpec("x", (1,), "float32"),), outputs=(TensorSpec("y", (1,), "float32"),), entry_func="m" * 20
            ),
            "longer",
        ),
    ],
)
def test_specs_the_firmware_cannot_hold_are_refused(spec, message):
    with pytest.raises(IOSpecError, match=message):
        spec.pack()


def test_unpack_refuses_wrong_length():
    with pytest.raises(IOSpecError, match="160"):
        unpack(b"\0" * 159)
