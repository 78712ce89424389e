import numpy as np
import pytest

from wand_assets.data.recordings import Recording, parse_tree
from wand_assets.data.windows import (
    SPLIT_OF_GROUP,
    SplitError,
    WindowingConfig,
    WindowSet,
    build_windows,
    check_split,
    pad_windows,
)

NO_AUGMENT = WindowingConfig(augment=False)


@pytest.fixture(scope="module")
def real_recordings(dataset_dir):
    return parse_tree(dataset_dir)[0]


def test_every_person_is_used_and_none_is_in_two_splits(real_recordings):
    windows = build_windows(real_recordings, NO_AUGMENT)
    assert check_split(windows) == []
    persons = {r.person for r in real_recordings if not r.person.startswith("negative_")}
    assert len(persons) == 10
    assert persons <= set(SPLIT_OF_GROUP)


def test_only_the_train_split_is_augmented(real_recordings):
    plain = build_windows(real_recordings, NO_AUGMENT)
    augmented = build_windows(real_recordings, WindowingConfig())
    for split in ("validation", "test"):
        assert len(augmented.select(split)) == len(plain.select(split))
    per_sequence = 1 + 5 + 5 + 7 + 7  # TFLM's 25 variants
    assert len(augmented.select("train")) == per_sequence * len(plain.select("train"))


def test_windows_are_deterministic_for_a_seed(real_recordings):
    a = build_windows(real_recordings[:40], WindowingConfig(seed=7))
    b = build_windows(real_recordings[:40], WindowingConfig(seed=7))
    c = build_windows(real_recordings[:40], WindowingConfig(seed=8))
    assert np.array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_short_sequence_gives_pre_and_post_padded_windows():
    data = np.arange(30, dtype=np.float32).reshape(10, 3) * 100
    padded = pad_windows(data, np.random.default_rng(0), noise_level=20)
    assert padded["pre"].shape == padded["post"].shape == (128, 3)
    assert np.array_equal(padded["pre"][-10:], data)
    assert np.array_equal(padded["post"][:10], data)
    assert np.all(np.abs(padded["pre"][:118] - data[0]) <= 10.05)
    assert np.all(np.abs(padded["post"][10:] - data[-1]) <= 10.05)


def test_long_sequence_is_truncated_to_its_first_128_samples():
    data = np.random.default_rng(1).normal(size=(200, 3)).astype(np.float32)
    padded = pad_windows(data, np.random.default_rng(0), noise_level=20)
    assert np.array_equal(padded["pre"], data[:128])


def test_continuous_negative_takes_are_cut_into_pieces():
    take = Recording("negative", "negative_3", "negative/output_negative_3.txt", 0, np.zeros((500, 3), np.float32))
    windows = build_windows([take], NO_AUGMENT)
    assert len(windows) == 2 * (500 // 120)


def test_unknown_person_is_an_error_not_a_silent_split():
    stranger = Recording("wing", "alice", "wing/output_wing_alice.txt", 0, np.zeros((60, 3), np.float32))
    with pytest.raises(SplitError, match="alice"):
        build_windows([stranger], NO_AUGMENT)


def test_windowset_round_trips_through_npz(tmp_path, real_recordings):
    windows = build_windows(real_recordings[:20], NO_AUGMENT)
    windows.save(tmp_path / "w.npz")
    loaded = WindowSet.load(tmp_path / "w.npz")
    assert np.array_equal(loaded.x, windows.x) and list(loaded.recording) == list(windows.recording)


def test_check_split_reports_a_person_in_two_splits():
    x = np.zeros((2, 128, 3), np.float32)
    leaky = WindowSet(
        x, np.array([0, 0]), np.array(["train", "test"]), np.array(["hyw", "hyw"]), np.array(["a", "b"]), np.array(["o", "o"])
    )
    problems = check_split(leaky)
    assert any("'hyw' appears in ['test', 'train']" in p for p in problems)
    assert any("no 'ring'" in p for p in problems)
