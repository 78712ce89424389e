"""Training stage: the 4,300-parameter Magic Wand CNN, with its test metrics and a blocking accuracy gate."""

import json
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import numpy as np

from wand_assets.core import plots
from wand_assets.core.artifacts import fingerprint, sha256_file, write_json_atomic
from wand_assets.core.metadata import entry_output, file_metadata, table
from wand_assets.core.metrics import classification_metrics
from wand_assets.core.resources import ArtifactStoreResource, QualityGates
from wand_assets.data.dataset import CLASSES
from wand_assets.data.windows import WindowSet
from wand_assets.training import model as wand_model

TRAINING_CODE_VERSION = "2"  # 2: keeps the best validation epoch


_DEFAULTS = wand_model.TrainingConfig()


class TrainingConfig(dg.Config):
    """Training settings; the defaults are the training library's."""

    epochs: int = _DEFAULTS.epochs
    batch_size: int = _DEFAULTS.batch_size
    learning_rate: float = _DEFAULTS.learning_rate
    seed: int = _DEFAULTS.seed
    monitor: str = _DEFAULTS.monitor  # the validation score whose best epoch is kept: val_accuracy or val_loss
    early_stopping_patience: int = _DEFAULTS.early_stopping_patience  # 0: no early stop (best epoch still kept)

    def to_training(self) -> wand_model.TrainingConfig:
        return wand_model.TrainingConfig(**self.model_dump())


@dg.asset(
    kinds={"keras", "tensorflow"},
    group_name="training",
    code_version=TRAINING_CODE_VERSION,
)
def trained_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, artifact_store: ArtifactStoreResource, gesture_windows: Path
) -> dg.Output[Path]:
    """The TFLM/Kenning Magic Wand CNN trained on the train split, saved as `.keras`.

    Metadata: test accuracy, per-class precision/recall/F1, confusion matrix and learning curves.
    """
    store = artifact_store.store()
    windows_entry = gesture_windows
    windows_sha = sha256_file(windows_entry / "windows.npz")
    training = config.to_training()
    stage = store.stage("trained_model")
    fp = fingerprint(windows_sha, asdict(training), TRAINING_CODE_VERSION)
    if (entry := stage.cached(fp)) is None:
        windowset = WindowSet.load(windows_entry / "windows.npz")
        with stage.produce(fp) as out:
            result = wand_model.train(windowset, training, out / "model.keras", log=context.log.info)
            test = windowset.select("test")
            assert result.test_probabilities is not None  # train() always predicts the test split
            metrics = classification_metrics(test.y, result.test_probabilities.argmax(axis=1), CLASSES)
            np.save(out / "test_probabilities.npy", result.test_probabilities)
            write_json_atomic(
                out / "training.json",
                {
                    "history": result.history,
                    "parameters": result.parameters,
                    "seconds": result.seconds,
                    "best_epoch": result.best_epoch,
                    "stopped_early": result.stopped_early,
                    "config": asdict(training),
                    "windows_sha256": windows_sha,
                    "test": metrics.as_dict(),
                },
            )
        entry = stage.entry(fp)
    else:
        context.log.info(f"a model for these inputs and settings already exists ({fp}); not retraining")
    report = json.loads((entry / "training.json").read_text())
    test = report["test"]
    confusion = np.asarray(test["confusion_matrix"])
    keras_path = entry / "model.keras"
    sha = sha256_file(keras_path)
    return entry_output(
        entry,
        {
            **file_metadata(keras_path, sha),
            "windows_sha256": windows_sha,
            "parameters": report["parameters"],
            "test_accuracy": test["accuracy"],
            "test_g_mean": test["g_mean"],
            "training_seconds": round(report["seconds"], 1),
            "epochs": len(report["history"].get("loss", [])),
            "best_epoch": report.get("best_epoch", 0),
            "stopped_early": report.get("stopped_early", False),
            "per_class": table(test["per_class"]),
            "confusion_matrix": dg.MetadataValue.md(
                plots.markdown_image(plots.confusion_matrix_png(confusion, CLASSES, "test split (Keras)"), "confusion")
            ),
            "learning_curves": dg.MetadataValue.md(
                plots.markdown_image(plots.learning_curves_png(report["history"]), "learning curves")
            ),
        },
        sha,
    )


@dg.asset_check(asset=trained_model, blocking=True, description="Test accuracy is at least the configured floor.")
def accuracy_above_floor(trained_model: Path, gates: QualityGates) -> dg.AssetCheckResult:
    accuracy = json.loads((trained_model / "training.json").read_text())["test"]["accuracy"]
    return dg.AssetCheckResult(
        passed=accuracy >= gates.min_test_accuracy,
        metadata={"test_accuracy": accuracy, "floor": gates.min_test_accuracy},
    )
