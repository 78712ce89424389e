"""Parsing the terminal captures the Magic Wand data was recorded as.

The files are ``script``/``screen`` logs: CRLF endings, ANSI escape sequences, shell chatter before and
after, `` \\b`` junk, and recordings of ``x,y,z`` milli-g samples separated by ``-,-,-`` lines. Unlike
Kenning's parser, the last recording of a file is kept (no separator follows it).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wand_assets.data.dataset import CLASSES

_ANSI = re.compile(rb"\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78]|\][^\x07]*\x07)")
_NUMBER = r"-?\d+(?:\.\d+)?"
_SAMPLE = re.compile(rf"^\s*({_NUMBER}),({_NUMBER}),({_NUMBER})\s*$")
_SEPARATOR = re.compile(r"^\s*-,-,-\s*$")


@dataclass(frozen=True)
class Recording:
    gesture: str
    person: str  # "" where the file does not say who recorded it
    source_file: str  # <class>/<file>.txt
    index: int  # position within its file
    samples: np.ndarray  # (n, 3) float32, milli-g


@dataclass
class ParseReport:
    files: int = 0
    data_lines: int = 0
    separators: int = 0
    blank_lines: int = 0
    skipped_lines: int = 0  # neither data, separator nor blank: shell chatter, junk, garbage
    skipped_examples: list[str] = field(default_factory=list)
    skipped_by_file: Counter = field(default_factory=Counter)


def person_of(gesture: str, filename: str) -> str:
    """``output_ring_hyw.txt`` → ``hyw``; unattributed negatives keep their file tag (``negative_3``)."""
    stem = Path(filename).stem
    prefix = f"output_{gesture}_"
    tag = stem.removeprefix(prefix)
    if gesture == "negative":
        return tag if not tag[:1].isdigit() and not tag.startswith("ccw") else f"negative_{tag}"
    return tag


def clean_lines(raw: bytes) -> list[str]:
    """Text lines with escape sequences, carriage returns and backspace junk removed."""
    text = _ANSI.sub(b"", raw).replace(b"\r", b"")
    # " \b" pairs are a terminal erasing the character it just printed.
    while b"\b" in text:
        text = re.sub(rb"[^\n\b]?\x08", b"", text)
    return text.decode("utf-8", errors="replace").split("\n")


def parse_file(raw: bytes, gesture: str, rel_path: str, report: ParseReport) -> list[Recording]:
    person = person_of(gesture, rel_path.rsplit("/", 1)[-1])
    recordings: list[Recording] = []
    current: list[tuple[float, float, float]] = []

    def close() -> None:
        if current:
            samples = np.asarray(current, dtype=np.float32)
            recordings.append(Recording(gesture, person, rel_path, len(recordings), samples))
            current.clear()

    report.files += 1
    for line in clean_lines(raw):
        if match := _SAMPLE.match(line):
            x, y, z = match.groups()
            current.append((float(x), float(y), float(z)))
            report.data_lines += 1
        elif _SEPARATOR.match(line):
            close()
            report.separators += 1
        elif not line.strip():
            report.blank_lines += 1
        else:
            report.skipped_lines += 1
            report.skipped_by_file[rel_path] += 1
            if len(report.skipped_examples) < 20:
                report.skipped_examples.append(f"{rel_path}: {line.strip()[:80]!r}")
    close()
    return recordings


def parse_tree(raw_dir: Path) -> tuple[list[Recording], ParseReport]:
    """Parse every ``<class>/*.txt`` below ``raw_dir`` in a stable order."""
    report = ParseReport()
    recordings: list[Recording] = []
    for gesture in CLASSES:
        for path in sorted((raw_dir / gesture).glob("*.txt")):
            rel = f"{gesture}/{path.name}"
            recordings.extend(parse_file(path.read_bytes(), gesture, rel, report))
    return recordings, report


def recordings_per_class(recordings: list[Recording]) -> dict[str, int]:
    counts = Counter(r.gesture for r in recordings)
    return {cls: counts.get(cls, 0) for cls in CLASSES}
