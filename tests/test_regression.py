from wand_assets.device.regression import Tolerances, find_regressions

BASE = {"accuracy": 0.91, "instructions": 80_000}


def test_first_evaluation_has_nothing_to_regress_from():
    assert find_regressions(None, BASE, Tolerances()) == []


def test_changes_within_tolerance_pass():
    assert find_regressions(BASE, {"accuracy": 0.895, "instructions": 83_000}, Tolerances()) == []


def test_accuracy_drop_beyond_tolerance_is_reported():
    (problem,) = find_regressions(BASE, {"accuracy": 0.85, "instructions": 80_000}, Tolerances())
    assert "accuracy fell by 0.0600 (0.9100 → 0.8500)" in problem


def test_instruction_growth_beyond_tolerance_is_reported():
    (problem,) = find_regressions(BASE, {"accuracy": 0.91, "instructions": 90_000}, Tolerances(max_instruction_growth=0.1))
    assert "grew by 12.5 %" in problem


def test_fewer_instructions_is_never_a_regression():
    assert find_regressions(BASE, {"accuracy": 0.91, "instructions": 10_000}, Tolerances()) == []
