"""Running a host-compiled .vmfb with the IREE Python runtime: the parity reference for the device."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wand_assets.compilation.iree_tools import EXPORTED_FUNCTION
from wand_assets.training.model import as_model_input


def run_vmfb(
    vmfb: Path,
    windows: np.ndarray,
    *,
    driver: str = "local-sync",
    log: Callable[[str], None] | None = None,
    log_every: int = 100,
) -> tuple[np.ndarray, float]:
    """Scores for each (128, 3) window, one invocation per window as on the device; and seconds taken."""
    import iree.runtime as rt

    config = rt.Config(driver)
    context = rt.SystemContext(config=config)
    module = rt.VmModule.copy_buffer(context.instance, Path(vmfb).read_bytes())
    context.add_vm_module(module)
    entry = getattr(context.modules.module, EXPORTED_FUNCTION)
    inputs = as_model_input(windows)
    outputs = []
    started = time.monotonic()
    for i, window in enumerate(inputs):
        # Copy out of the runtime's mapped buffer so no numpy array keeps IREE memory alive.
        outputs.append(np.array(entry(window[None]).to_host(), dtype=np.float32, copy=True).reshape(-1))
        if log and (i + 1) % log_every == 0:
            log(f"host IREE: {i + 1}/{len(inputs)} windows")
    seconds = time.monotonic() - started
    del entry, module, context, config
    gc.collect()
    return np.stack(outputs), seconds
