import numpy as np
import pytest

from wand_assets.data.windows import WindowSet
from wand_assets.training.model import (
    EXPECTED_PARAMETERS,
    INPUT_SHAPE,
    TrainingConfig,
    as_model_input,
    build_cnn,
    train,
)


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
    return WindowSet(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "split", "group", "recording", "variant"))
    )


@pytest.mark.slow
@pytest.mark.parametrize(("monitor", "best"), [("val_loss", np.argmin), ("val_accuracy", np.argmax)])
def test_training_keeps_the_best_validation_epoch_and_stops_early(tmp_path, monitor, best):
    import keras

    windows = overfitting_windows()
    config = TrainingConfig(epochs=25, batch_size=32, learning_rate=1e-2, monitor=monitor, early_stopping_patience=3)
    result = train(windows, config, tmp_path / "model.keras", log=lambda _: None)
    scores = result.history[monitor]
    assert result.stopped_early and len(scores) < config.epochs
    assert result.best_epoch == int(best(scores)) + 1 < len(scores)
    valid = windows.select("validation")
    saved = keras.models.load_model(tmp_path / "model.keras")
    measured = saved.evaluate(as_model_input(valid.x), valid.y, batch_size=32, verbose=0, return_dict=True)
    assert measured[monitor.removeprefix("val_")] == pytest.approx(scores[result.best_epoch - 1], rel=1e-4)
    if monitor == "val_loss":  # continuous, so the last epoch's value differs: the weights were really restored
        assert measured["loss"] != pytest.approx(scores[-1], rel=1e-4)


def test_an_unknown_monitor_is_refused(tmp_path):
    with pytest.raises(ValueError, match="val_accuracy, val_loss"):
        train(overfitting_windows(), TrainingConfig(epochs=1, monitor="accuracy"), tmp_path / "m.keras", log=lambda _: None)
