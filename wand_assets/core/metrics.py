"""Classification metrics computed the same way for Keras, host IREE and the simulated device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClassificationMetrics:
    classes: tuple[str, ...]
    confusion: np.ndarray  # rows: true class, columns: predicted class
    accuracy: float
    precision: list[float]
    recall: list[float]
    f1: list[float]
    g_mean: float  # geometric mean of per-class recall: low when any class is neglected

    def per_class_rows(self) -> list[dict]:
        return [
            {
                "class": c,
                "support": int(self.confusion[i].sum()),
                "precision": round(self.precision[i], 4),
                "recall": round(self.recall[i], 4),
                "f1": round(self.f1[i], 4),
            }
            for i, c in enumerate(self.classes)
        ]

    def as_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "g_mean": self.g_mean,
            "confusion_matrix": self.confusion.tolist(),
            "per_class": self.per_class_rows(),
        }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> ClassificationMetrics:
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(n), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    total = confusion.sum()
    accuracy = float(tp.sum() / total) if total else 0.0
    g_mean = float(np.prod(recall) ** (1.0 / n)) if n else 0.0
    return ClassificationMetrics(classes, confusion, accuracy, precision.tolist(), recall.tolist(), f1.tolist(), g_mean)
