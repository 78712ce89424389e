"""From recordings to fixed 128×3 model windows: person split, negative cutting, padding, augmentation.

Split by person, so the test score says how the model does on people it has never seen. All ten
persons are used (TFLM's scripts forget ``lsj``). Negative recordings without a person are assigned as
whole files, so no take is split across train and test:

| split      | persons                                         | negative files                             |
|------------|-------------------------------------------------|--------------------------------------------|
| train      | hyw, shiyun, tangsy, dengyl, jiangyh, xunkai    | negative_3, negative_5, ccw_1, ccw_2, jiangyh |
| validation | lsj, pengxl                                     | negative_2                                 |
| test       | liucx, zhangxy                                  | negative_1, negative_4                     |

Windows follow TFLM: every sequence (truncated to its first 128 samples) gives two windows, one with
the data right-aligned after noisy copies of its first sample ("pre") and one left-aligned before
noisy copies of its last sample ("post"). Values stay raw milli-g: the seed's model has no
normalisation layer, and neither has this one, so the device sees exactly what the host trained on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wand_assets.data.dataset import CLASSES
from wand_assets.data.recordings import Recording

WINDOW = 128
CHANNELS = 3
SPLITS: tuple[str, ...] = ("train", "validation", "test")

SPLIT_OF_GROUP: dict[str, str] = {
    **dict.fromkeys(["hyw", "shiyun", "tangsy", "dengyl", "jiangyh", "xunkai"], "train"),
    **dict.fromkeys(["lsj", "pengxl"], "validation"),
    **dict.fromkeys(["liucx", "zhangxy"], "test"),
    **dict.fromkeys(["negative_3", "negative_5", "negative_ccw_1", "negative_ccw_2"], "train"),
    "negative_2": "validation",
    **dict.fromkeys(["negative_1", "negative_4"], "test"),
}

# Ratios TFLM uses for its time-warp and amplitude augmentations.
TFLM_RATIOS: tuple[float, ...] = (3 / 2, 5 / 3, 2 / 3, 3 / 4, 9 / 5, 6 / 5, 4 / 5)


@dataclass(frozen=True)
class WindowingConfig:
    seed: int = 30
    negative_piece_length: int = 120  # continuous negative takes are cut into pieces this long
    pad_noise_level: float = 20.0  # padding noise is uniform in ±level/2 milli-g
    augment: bool = True
    shift_copies: int = 5  # copies with one random offset in ±shift_range added
    shift_range: float = 100.0
    noise_copies: int = 5  # copies with fresh uniform [0, noise_range) noise per sample
    noise_range: float = 5.0
    time_warp_ratios: tuple[float, ...] = TFLM_RATIOS
    amplitude_ratios: tuple[float, ...] = TFLM_RATIOS


@dataclass
class Sequence:
    samples: np.ndarray
    label: int
    split: str
    group: str
    recording: str
    variant: str


class SplitError(ValueError):
    pass


def split_of(recording: Recording) -> str:
    try:
        return SPLIT_OF_GROUP[recording.person]
    except KeyError:
        raise SplitError(
            f"{recording.source_file}: person {recording.person!r} has no split assignment; "
            f"known: {', '.join(sorted(SPLIT_OF_GROUP))}"
        ) from None


def to_sequences(recordings: list[Recording], config: WindowingConfig) -> list[Sequence]:
    """Label, split and cut recordings; continuous negative takes become fixed-length pieces."""
    sequences: list[Sequence] = []
    for rec in recordings:
        split = split_of(rec)
        label = CLASSES.index(rec.gesture)
        rec_id = f"{rec.source_file}#{rec.index}"
        if rec.gesture == "negative" and len(rec.samples) > WINDOW:
            step = config.negative_piece_length
            for k in range(len(rec.samples) // step):
                piece = rec.samples[k * step : (k + 1) * step]
                sequences.append(Sequence(piece, label, split, rec.person, f"{rec_id}@{k}", "original"))
        else:
            sequences.append(Sequence(rec.samples, label, split, rec.person, rec_id, "original"))
    return sequences


def augment(seq: Sequence, config: WindowingConfig, rng: np.random.Generator) -> list[Sequence]:
    """The original plus TFLM's shifted, noisy, time-warped and amplitude-scaled copies."""
    out = [seq]
    data = seq.samples.astype(np.float64)

    def add(samples: np.ndarray, variant: str) -> None:
        out.append(Sequence(samples.astype(np.float32), seq.label, seq.split, seq.group, seq.recording, variant))

    for _ in range(config.shift_copies):
        add(data + rng.uniform(-config.shift_range, config.shift_range), "shift")
    for _ in range(config.noise_copies):
        add(data + rng.uniform(0.0, config.noise_range, size=data.shape), "noise")
    for ratio in config.time_warp_ratios:
        add(time_warp(data, ratio), f"time_warp_{ratio:.3f}")
    for ratio in config.amplitude_ratios:
        add(data * ratio, f"amplitude_{ratio:.3f}")
    return out


def time_warp(data: np.ndarray, ratio: float) -> np.ndarray:
    """Linear resampling to ``round(len * ratio)`` samples (at least 2)."""
    n = len(data)
    m = max(2, round(n * ratio))
    src = np.linspace(0.0, n - 1, m)
    return np.stack([np.interp(src, np.arange(n), data[:, c]) for c in range(data.shape[1])], axis=1)


def pad_windows(samples: np.ndarray, rng: np.random.Generator, noise_level: float) -> dict[str, np.ndarray]:
    """The "pre" and "post" padded 128×3 windows of one sequence (truncated to 128 samples)."""
    data = samples[:WINDOW].astype(np.float32)
    missing = WINDOW - len(data)
    half = noise_level / 2

    def fill(anchor: np.ndarray) -> np.ndarray:
        noise = rng.uniform(-half, half, size=(missing, CHANNELS))
        return np.round(anchor[None, :] + noise, 1).astype(np.float32)

    if missing == 0:
        return {"pre": data, "post": data.copy()}
    return {
        "pre": np.concatenate([fill(data[0]), data]),
        "post": np.concatenate([data, fill(data[-1])]),
    }


@dataclass
class WindowSet:
    x: np.ndarray  # (n, 128, 3) float32, milli-g
    y: np.ndarray  # (n,) int64 class index into CLASSES
    split: np.ndarray  # (n,) str
    group: np.ndarray  # (n,) str person / negative file
    recording: np.ndarray  # (n,) str source_file#index
    variant: np.ndarray  # (n,) str augmentation variant + padding side

    def select(self, split: str) -> WindowSet:
        mask = self.split == split
        return WindowSet(*(getattr(self, f)[mask] for f in ("x", "y", "split", "group", "recording", "variant")))

    def head(self, count: int) -> WindowSet:
        """The first ``count`` windows."""
        return WindowSet(*(getattr(self, f)[:count] for f in ("x", "y", "split", "group", "recording", "variant")))

    def __len__(self) -> int:
        return len(self.y)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez_compressed(
                f, x=self.x, y=self.y, split=self.split, group=self.group, recording=self.recording, variant=self.variant
            )

    @classmethod
    def load(cls, path: Path) -> WindowSet:
        with np.load(path, allow_pickle=False) as data:
            return cls(*(data[f] for f in ("x", "y", "split", "group", "recording", "variant")))

    def counts(self) -> dict[str, dict[str, int]]:
        """Windows per split per class."""
        table = Counter(zip(self.split.tolist(), self.y.tolist(), strict=True))
        return {s: {c: table.get((s, i), 0) for i, c in enumerate(CLASSES)} for s in SPLITS}


def build_windows(recordings: list[Recording], config: WindowingConfig) -> WindowSet:
    rng = np.random.default_rng(config.seed)
    x, y, split, group, recording, variant = [], [], [], [], [], []
    for seq in to_sequences(recordings, config):
        variants = augment(seq, config, rng) if (config.augment and seq.split == "train") else [seq]
        for v in variants:
            for side, window in pad_windows(v.samples, rng, config.pad_noise_level).items():
                x.append(window)
                y.append(v.label)
                split.append(v.split)
                group.append(v.group)
                recording.append(v.recording)
                variant.append(f"{v.variant}/{side}")
    return WindowSet(
        np.stack(x).astype(np.float32),
        np.asarray(y, dtype=np.int64),
        np.asarray(split),
        np.asarray(group),
        np.asarray(recording),
        np.asarray(variant),
    )


def check_split(windows: WindowSet) -> list[str]:
    """Problems with a split: a class missing from a split, or a person/group in two splits."""
    problems = []
    for split, per_class in windows.counts().items():
        for cls, n in per_class.items():
            if n == 0:
                problems.append(f"split '{split}' has no '{cls}' windows")
    splits_of_group: dict[str, set[str]] = {}
    for g, s in zip(windows.group.tolist(), windows.split.tolist(), strict=True):
        splits_of_group.setdefault(g, set()).add(s)
    for g, splits in sorted(splits_of_group.items()):
        if len(splits) > 1:
            problems.append(f"'{g}' appears in {sorted(splits)}")
    return problems
