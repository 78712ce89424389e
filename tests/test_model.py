import numpy as np
import pytest

from wand_assets.model import EXPECTED_PARAMETERS, INPUT_SHAPE, TrainingConfig, as_model_input, build_cnn, train
from wand_assets.windows import WindowSet


def test_cnn_has_exactly_the_seeds_4300_parameters():
    assert build_cnn().count_params() == EXPECTED_PARAMETERS == 4300


def test_cnn_maps_one_window_to_four_class_probabilities():
    model = build_cnn()
    out = model(np.zeros(INPUT_SHAPE, np.float32)).numpy()
    assert out.shape == (1, 4)
    assert np.isclose(out.sum(), 1.0, atol=1e-5)


def _windows(rng: np.random.Generator, n: int, split: str, labels: np.ndarray) -> WindowSet:
    x = rng.normal(0, 500, (n, 128, 3)).astype(np.float32)
    x[:, :, 0] += labels[:, None] * 400  # learnable from the first channel
    strings = np.array([split] * n)
    return WindowSet(x, labels.astype(np.int64), strings, strings, strings, strings)


def overfitting_windows() -> WindowSet:
    """Train labels follow the signal, validation labels contradict it: validation loss rises as training fits."""
    rng = np.random.default_rng(0)
    train_y = rng.integers(0, 4, 256)
    valid_y = rng.integers(0, 4, 64)
    train = _windows(rng, 256, "train", train_y)
    valid = _windows(rng, 64, "validation", valid_y)
    valid.y = (valid_y + 1) % 4
    test = _windows(rng, 32, "test", rng.integers(0, 4, 32))
    parts = (train, valid, test)
    return WindowSet(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "split", "group", "recording", "variant")))


@pytest.mark.slow
def test_training_keeps_the_epoch_with_the_lowest_validation_loss_and_stops_early(tmp_path):
    import keras

    windows = overfitting_windows()
    config = TrainingConfig(epochs=25, batch_size=32, learning_rate=1e-2, early_stopping_patience=3)
    result = train(windows, config, tmp_path / "model.keras", log=lambda _: None)
    val_loss = result.history["val_loss"]
    assert result.stopped_early and len(val_loss) < config.epochs
    assert result.best_epoch == int(np.argmin(val_loss)) + 1 < len(val_loss)
    valid = windows.select("validation")
    saved = keras.models.load_model(tmp_path / "model.keras")
    loss = saved.evaluate(as_model_input(valid.x), valid.y, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(min(val_loss), rel=1e-4)
    assert loss < val_loss[-1]
