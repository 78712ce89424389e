import numpy as np

from wand_assets.model import EXPECTED_PARAMETERS, INPUT_SHAPE, build_cnn


def test_cnn_has_exactly_the_seeds_4300_parameters():
    assert build_cnn().count_params() == EXPECTED_PARAMETERS == 4300


def test_cnn_maps_one_window_to_four_class_probabilities():
    model = build_cnn()
    out = model(np.zeros(INPUT_SHAPE, np.float32)).numpy()
    assert out.shape == (1, 4)
    assert np.isclose(out.sum(), 1.0, atol=1e-5)
