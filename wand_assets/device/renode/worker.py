"""The process that owns Renode (pyrenode3 + mono). Started by :func:`wand_assets.device.renode.start_renode`.

Usage: ``python -m wand_assets.device.renode.worker PLAN.json``. Requests arrive as JSON lines on stdin,
answers leave as JSON lines on the original stdout (Renode's own console output is sent to stderr).
End of stdin means "tear down now". Teardown order matters: pause, ``Emulation().clear()`` (this
disposes the pty terminals and flushes the profiler), only then close our side of the ptys, then
``os._exit`` (skipping mono's slow shutdown at interpreter exit). The parent starts this process with
:func:`wand_assets.core.procs.spawn`, so the kernel kills it when the parent dies: no Renode outlives
the pipeline.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wand_assets.device.renode.plan import Plan, setup_commands

if TYPE_CHECKING:
    import serial


class Worker:
    def __init__(self, plan, reply):
        from pyrenode3.wrappers import Emulation, Monitor

        self.plan = plan
        self.reply = reply
        self.emulation = Emulation()
        self.monitor = Monitor()
        # pyrenode3's machine and CPU wrappers are untyped .NET objects.
        self.machine: Any = None
        self.cpu: Any = None
        self.log_reader: threading.Thread | None = None
        self.log_port: serial.Serial | None = None
        self.stop_log = threading.Event()
        self.opcode_baseline = None

    def run(self, command: str) -> str:
        if command.startswith("include @"):  # a script: execute_script reports its errors, include does not
            out, err = self.monitor.execute_script(command[len("include @") :])
        else:
            out, err = self.monitor.execute(command)
        if err:
            raise RuntimeError(f"monitor command {command!r} failed: {err.strip()}")
        return out

    def start(self) -> dict:
        plan = self.plan
        for command in setup_commands(plan):
            self.run(command)
        names = list(self.emulation.internal.Names)
        if not names:
            raise RuntimeError(f"{plan.resc} created no machine")
        self.machine = self.emulation.get_mach(names[0])
        cpu = self.machine
        for part in plan.cpu.split("."):
            cpu = getattr(cpu, part)
        self.cpu = cpu
        if plan.log_uart:
            import serial

            self.log_port = serial.Serial(plan.log_pty, 115200, timeout=0.1)
            self.log_reader = threading.Thread(target=self._pump_log, daemon=True)
            self.log_reader.start()
        self.run("start")
        for command in plan.post_start_commands:
            self.run(command)
        return {"event": "ready", "uart_pty": plan.uart_pty, "machine": names[0], "pid": os.getpid()}

    def _pump_log(self) -> None:
        port = self.log_port
        assert port is not None  # the reader starts after the port is open
        with open(self.plan.log_file, "ab", buffering=0) as out:
            while not self.stop_log.is_set():
                try:
                    data = port.read(256)
                except Exception:  # noqa: BLE001 - the port closed under us: the session is ending
                    return
                if data:
                    out.write(data)

    def counters(self) -> dict:
        return {
            "instructions": int(self.cpu.ExecutedInstructions),
            "virtual_s": float(self.machine.ElapsedVirtualTime.TimeElapsed.TotalSeconds),
            "wall_s": time.monotonic(),
        }

    def opcodes(self) -> dict[str, int]:
        if not self.plan.opcode_counting:
            return {}
        table = self.cpu.GetAllOpcodesCounters()
        rows = table.GetLength(0)
        return {str(table[i, 0]): int(table[i, 1]) for i in range(1, rows)}  # row 0 is the header

    def loop_start(self) -> dict:
        answer = {"event": "loop_start", "opcodes": self.opcodes(), **self.counters()}
        if self.plan.profiler_dump:
            self.machine.EnableProfiler(self.plan.profiler_dump)
        return answer

    def finish(self) -> dict:
        answer = {"event": "finish", "opcodes": self.opcodes(), **self.counters()}
        self.run("pause")
        answer["executed_instructions_total"] = int(self.cpu.ExecutedInstructions)
        return answer

    def teardown(self) -> None:
        try:
            self.emulation.clear()
        finally:
            self.stop_log.set()
            if self.log_port is not None:
                with contextlib.suppress(Exception):
                    self.log_port.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {sys.executable} -m wand_assets.device.renode.worker PLAN.json", file=sys.stderr)
        return 2
    # Our channel is the original stdout; Renode and mono write to fd 1 as they please, so fd 1 becomes stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    plan = Plan.load(Path(argv[1]))
    worker = None
    status = 0
    try:
        worker = Worker(plan, reply)
        reply(worker.start())
        for line in sys.stdin:
            assert worker is not None  # only "finish" clears it, and "finish" ends the loop
            request = json.loads(line)
            op = request.get("op")
            try:
                if op == "mark":
                    answer = {"event": "mark", **worker.counters()}
                    if request.get("opcodes"):
                        answer["opcodes"] = worker.opcodes()
                    reply(answer)
                elif op == "loop_start":
                    reply(worker.loop_start())
                elif op == "finish":
                    answer = worker.finish()
                    worker.teardown()
                    worker = None
                    import resource

                    answer["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    reply(answer)
                    break
                else:
                    reply({"error": f"unknown request {op!r}"})
            except Exception as exc:  # noqa: BLE001 - answered, so the parent raises with this text
                reply({"error": f"{op}: {type(exc).__name__}: {exc}"})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then the worker exits non-zero
        status = 2
        with contextlib.suppress(Exception):
            reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if worker is not None:
            try:
                worker.teardown()
            except BaseException:  # noqa: BLE001 - teardown must not hide the status; exit code 3 says it failed
                status = status or 3
        sys.stderr.flush()
        os._exit(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
