"""The Renode backend: the wand board (or the seed's own setup) in Renode, through pyrenode3 in a worker.

One concern per module:

- :mod:`.installation`: is Renode installed and configured (``PYRENODE_*``), which version;
- :mod:`.board`: the wand board's platform, rendered per target from ``renode/wand_board.repl.in``;
- :mod:`.plan`: a :class:`RenodeSetup` resolved into the worker's plan and its monitor commands;
- :mod:`.session`: the worker process, its channel, :func:`start_renode` and :class:`RenodeSession`;
- :mod:`.sniffer`: the UART wrapper that marks the evaluation loop and each PROCESS request;
- :mod:`.worker`: the worker process itself (``python -m wand_assets.device.renode.worker PLAN.json``);
- :mod:`.stats`: the profiler dump, opcode counters and Kenning's renode_stats report.
"""

from wand_assets.device.qemu import SimulatorError
from wand_assets.device.renode.board import BOARD_SCRIPT, BOARD_TEMPLATE
from wand_assets.device.renode.installation import (
    RenodeUnavailable,
    check_renode_available,
    renode_environment,
    renode_version,
)
from wand_assets.device.renode.plan import RenodeSetup
from wand_assets.device.renode.session import RenodeSession, start_renode

__all__ = [
    "BOARD_SCRIPT",
    "BOARD_TEMPLATE",
    "RenodeSession",
    "RenodeSetup",
    "RenodeUnavailable",
    "SimulatorError",
    "check_renode_available",
    "renode_environment",
    "renode_version",
    "start_renode",
]
