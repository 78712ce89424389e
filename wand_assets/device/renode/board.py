"""The wand board: ``renode/wand.resc`` plus a platform rendered from ``renode/wand_board.repl.in``
for one :class:`~wand_assets.core.targets.Target` (CPU type, VLEN, ELEN and the board's memory map,
all from the registry)."""

from __future__ import annotations

from pathlib import Path
from string import Template

from wand_assets.core.targets import Target

RENODE_DIR = Path(__file__).resolve().parents[3] / "renode"  # beside wand_assets/
BOARD_TEMPLATE = RENODE_DIR / "wand_board.repl.in"
BOARD_SCRIPT = RENODE_DIR / "wand.resc"
BOARD_FILE_NAME = "wand_board.repl"  # -> monitor variable $wand_board_repl, used by wand.resc


def render_board(target: Target) -> str:
    """The wand board's ``.repl`` for ``target``: CPU type, vector lengths and the memory map of its
    :class:`~wand_assets.core.targets.Board`, all from the registry.

    ELEN is set before VLEN: Renode checks VLEN ≥ ELEN whenever either changes.
    """
    properties = ""
    if target.has_vector:
        properties = f"\n    VectorElementMaxWidth: {target.elen}\n    VectorRegisterLength: {target.vlen}"
    board = target.device_board
    return Template(BOARD_TEMPLATE.read_text()).substitute(
        cpu_type=target.renode_cpu_type(),
        cpu_properties=properties,
        clint_base=f"{board.clint_base:#x}",
        mtime_hz=board.mtime_hz,
        uart0_base=f"{board.uart0_base:#x}",
        uart0_irq=board.uart0_irq,
        plic_base=f"{board.plic_base:#x}",
        plic_sources=board.uart0_irq + 1,
        log_uart_base=f"{board.log_uart_base:#x}",
        ram_base=f"{board.ram_base:#x}",
        ram_size=f"{board.ram_size:#x}",
    )
