"""Comparing a new device evaluation with the previous one: accuracy drops and instruction-count growth."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerances:
    max_accuracy_drop: float = 0.02  # absolute, e.g. 0.91 → 0.89 is the limit
    max_instruction_growth: float = 0.05  # relative, e.g. +5 % instructions per inference


def find_regressions(previous: dict | None, current: dict, tolerances: Tolerances) -> list[str]:
    """Human-readable regressions of ``current`` against ``previous`` (both: accuracy, instructions)."""
    if not previous:
        return []
    problems = []
    drop = previous["accuracy"] - current["accuracy"]
    if drop > tolerances.max_accuracy_drop:
        problems.append(
            f"accuracy fell by {drop:.4f} ({previous['accuracy']:.4f} → {current['accuracy']:.4f}); "
            f"tolerance {tolerances.max_accuracy_drop}"
        )
    before, after = previous["instructions"], current["instructions"]
    if before > 0 and (after - before) / before > tolerances.max_instruction_growth:
        problems.append(
            f"instructions per inference grew by {100 * (after - before) / before:.1f} % ({before:,.0f} → {after:,.0f}); "
            f"tolerance {100 * tolerances.max_instruction_growth:.1f} %"
        )
    return problems
