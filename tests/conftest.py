import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASET = REPO.parent / "shared" / "data" / "magic_wand"


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    """The real Magic Wand files: $WAND_DATASET (as CI sets it) or ../shared/data/magic_wand."""
    path = Path(os.environ.get("WAND_DATASET") or SHARED_DATASET)
    if not (path / "wing").is_dir():
        pytest.skip(f"the Magic Wand dataset folder is not at {path}; set WAND_DATASET to it")
    return path


@pytest.fixture
def writable_dataset(tmp_path, dataset_dir) -> Path:
    """A private copy of the real dataset that a test may damage."""
    copy = tmp_path / "magic_wand"
    shutil.copytree(dataset_dir, copy, ignore=shutil.ignore_patterns("*.md"))
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy
