"""Figures rendered to PNG and embedded as data URIs, so Markdown in the UI and the HTML report need no files."""

from __future__ import annotations

import base64
import io

import numpy as np


def new_figure(width=5.0, height=3.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=90)


def figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def confusion_matrix_png(confusion: np.ndarray, classes, title: str) -> bytes:
    fig, ax = new_figure(4.2, 3.6)
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = confusion.max() if confusion.size else 0
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black")
    return figure_png(fig)


def learning_curves_png(history: dict[str, list[float]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.2), dpi=90)
    for key in ("loss", "val_loss"):
        if key in history:
            left.plot(range(1, len(history[key]) + 1), history[key], label=key)
    for key in ("accuracy", "val_accuracy"):
        if key in history:
            right.plot(range(1, len(history[key]) + 1), history[key], label=key)
    for ax, name in ((left, "loss"), (right, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    return figure_png(fig)


def window_examples_png(examples: dict[str, np.ndarray]) -> bytes:
    """One (128, 3) window per class, x/y/z in milli-g."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(examples), figsize=(3.0 * len(examples), 2.6), dpi=90, sharey=True)
    for ax, (name, window) in zip(np.atleast_1d(axes), examples.items(), strict=True):
        for c, axis in enumerate("xyz"):
            ax.plot(window[:, c], label=axis, linewidth=1)
        ax.set_title(name)
        ax.set_xlabel("sample")
    np.atleast_1d(axes)[0].set_ylabel("milli-g")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return figure_png(fig)


def bar_png(labels, values, title: str, ylabel: str) -> bytes:
    fig, ax = new_figure(6.0, 3.2)
    ax.bar(range(len(values)), values)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return figure_png(fig)


def pareto_png(points: dict[str, tuple[float, float]], front: set[str], xlabel: str, ylabel: str, title: str) -> bytes:
    """A scatter of named points, the Pareto front (lower is better on both axes) drawn as a step line."""
    fig, ax = new_figure(6.5, 4.0)
    for name, (x, y) in points.items():
        on_front = name in front
        ax.scatter([x], [y], color="tab:red" if on_front else "tab:gray", zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if front:
        xs, ys = zip(*sorted(points[n] for n in front), strict=True)
        ax.step(xs, ys, where="post", color="tab:red", alpha=0.5, label="Pareto front")
        ax.legend(fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return figure_png(fig)
