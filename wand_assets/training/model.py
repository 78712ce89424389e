"""The Magic Wand CNN of TFLM / Kenning (4,300 parameters) and its training loop."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wand_assets.data.dataset import CLASSES
from wand_assets.data.windows import CHANNELS, WINDOW, WindowSet

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INPUT_NAME = "input_1"
OUTPUT_NAME = "out_layer"
INPUT_SHAPE = (1, WINDOW, CHANNELS, 1)  # what the device receives: one window, NHWC
EXPECTED_PARAMETERS = 4300
MILLI_G_TO_G = 1.0 / 1000.0


# What early stopping may watch, and when a new value beats the best so far.
MONITORS: dict[str, Callable[[float, float], bool]] = {
    "val_accuracy": lambda new, best: new > best,
    "val_loss": lambda new, best: new < best,
}


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 42
    # The saved model carries the weights of the epoch with the best validation score, and training stops
    # once it has not improved for `early_stopping_patience` epochs (0: train every epoch). Accuracy by
    # default: on this validation split (two persons, 286 windows) a few confidently wrong windows make
    # the loss climb from epoch 1 on while accuracy still improves, and accuracy is what the gate measures.
    monitor: str = "val_accuracy"  # or "val_loss"
    early_stopping_patience: int = 8


@dataclass
class TrainingResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    test_probabilities: np.ndarray | None = None
    parameters: int = 0
    seconds: float = 0.0
    best_epoch: int = 0  # 1-based epoch whose weights were kept (best monitored validation score)
    stopped_early: bool = False


def build_cnn():
    """mg→g scaling, Conv(8,4×3) → MaxPool 3×3 → Conv(16,4×1) → MaxPool 3×1 → Dense 16 → Dense 4 softmax."""
    import keras

    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE[1:], name=INPUT_NAME),
            # Inputs stay raw milli-g on the wire (as in the seed); scaling to g inside the model keeps
            # early ReLUs alive with the default learning rate and adds no parameters.
            layers.Rescaling(MILLI_G_TO_G, name="milli_g_to_g"),
            layers.Conv2D(8, (4, 3), padding="same", activation="relu"),
            layers.MaxPool2D((3, 3)),
            layers.Dropout(0.1),
            layers.Conv2D(16, (4, 1), padding="same", activation="relu"),
            layers.MaxPool2D((3, 1), padding="same"),
            layers.Dropout(0.1),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dropout(0.1),
            layers.Dense(len(CLASSES), activation="softmax", name=OUTPUT_NAME),
        ],
        name="magic_wand_cnn",
    )


def as_model_input(x: np.ndarray) -> np.ndarray:
    """(n, 128, 3) windows → (n, 128, 3, 1) float32, the model's NHWC input."""
    return np.ascontiguousarray(x, dtype=np.float32)[..., None]


def train(
    windows: WindowSet,
    config: TrainingConfig,
    out_path: Path,
    log: Callable[[str], None] = print,
) -> TrainingResult:
    """Train on the train split, validate on validation, save ``.keras`` to ``out_path``."""
    import time

    import keras

    keras.utils.set_random_seed(config.seed)
    train_set, valid_set, test_set = (windows.select(s) for s in ("train", "validation", "test"))
    model = build_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(
                f"epoch {epoch + 1}/{config.epochs}: loss {logs.get('loss', float('nan')):.4f} "
                f"accuracy {logs.get('accuracy', float('nan')):.4f} "
                f"val_loss {logs.get('val_loss', float('nan')):.4f} val_accuracy {logs.get('val_accuracy', float('nan')):.4f}"
            )

    if config.monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, not {config.monitor!r}")
    better = MONITORS[config.monitor]

    class KeepBest(keras.callbacks.Callback):
        """Keeps the weights of the best monitored score and stops after ``patience`` epochs without one."""

        def __init__(self, patience: int):
            super().__init__()
            self.patience, self.best, self.best_epoch, self.weights, self.stopped = patience, None, 0, None, False

        def on_epoch_end(self, epoch, logs=None):
            score = (logs or {}).get(config.monitor)
            if score is not None and (self.best is None or better(score, self.best)):
                self.best, self.best_epoch, self.weights = score, epoch + 1, self.model.get_weights()
            elif self.patience and epoch + 1 - self.best_epoch >= self.patience:
                log(f"{config.monitor} has not improved for {self.patience} epochs: stopping, keeping epoch {self.best_epoch}")
                self.stopped = self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    keep_best = KeepBest(config.early_stopping_patience)
    started = time.monotonic()
    log(f"training on {len(train_set)} windows, validating on {len(valid_set)}; {model.count_params()} parameters")
    history = model.fit(
        as_model_input(train_set.x),
        train_set.y,
        validation_data=(as_model_input(valid_set.x), valid_set.y),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[EpochLog(), keep_best],
    )
    seconds = time.monotonic() - started
    log(f"keeping epoch {keep_best.best_epoch} ({config.monitor} {keep_best.best:.4f})")
    model.save(out_path)
    probabilities = model.predict(as_model_input(test_set.x), batch_size=256, verbose=0)
    return TrainingResult(
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        test_probabilities=probabilities,
        parameters=int(model.count_params()),
        seconds=seconds,
        best_epoch=keep_best.best_epoch,
        stopped_early=keep_best.stopped,
    )


def load_model(path: Path):
    import keras

    return keras.models.load_model(path)


def predict(model, x: np.ndarray) -> np.ndarray:
    return model.predict(as_model_input(x), batch_size=256, verbose=0)
