"""The seed's published Magic Wand row: Kenning's bare-metal IREE runtime on Springbok in Renode
(kenning-bare-metal-iree-runtime's 2025-04-15 report; ../shared/docs/KENNING_FACTS.md §7). The one
definition the report, the benchmarks and the README's comparisons use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedRow:
    instructions_per_pass: int  # Kenning's definition: every instruction of the session / test windows
    vector_share: float  # vector instructions among them
    inference_ms_mean: float  # virtual time per inference as Kenning's host measures it
    platform: str
    source: str


SEED = SeedRow(
    instructions_per_pass=242_006,
    vector_share=0.1353,
    inference_ms_mean=1.869,
    platform="Springbok (Renode), RVV",
    source="Kenning v0.8.0 bare-metal IREE runtime report, 2025-04-15",
)
