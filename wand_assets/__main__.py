"""``python -m wand_assets materialize``: run the whole pipeline from the command line.

What ``scripts/materialize.sh`` (the README's main command) runs. Dagster's log goes to stderr while
the stages run; the run ends on a summary on stdout — every stage and target partition materialized,
failed, not run or skipped (and why), the path of ``report.html`` (from the report's materialization
metadata) and the command that opens this run history in the web UI. Nothing is printed after it.

``--config FILE`` applies a run-config YAML (``ops:`` / ``resources:``, as in the launchpad) to every
run of the chain, e.g. a short training::

    ops:
      trained_model: {config: {epochs: 3}}
    resources:
      gates: {config: {min_test_accuracy: 0.5}}

Ctrl-C prints one line naming the step that was interrupted, and nothing else; atomic writes mean
nothing half-written is kept. Temporaries left by a run that was killed outright (SIGKILL) are removed
when the next run starts.

Exit codes:
  0    every stage materialized, device stages included
  1    a stage failed (the summary names it; Dagster's log above it has the error and traceback)
  2    the host stages materialized, the device stages were skipped: IREE_SOURCE_DIR is not set
  64   bad command line or ``--config`` file
  130  interrupted (SIGINT, Ctrl-C); 143 when terminated (SIGTERM)
"""

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_HOST_ONLY, EXIT_USAGE = 0, 1, 2, 64
UI_HOST, UI_PORT = "127.0.0.1", 3000
REPO = Path(__file__).resolve().parents[1]
NO_IREE_REASON = "IREE_SOURCE_DIR is not set"
# How long a chunk of a child's stderr waits, so that a signal that reached the child first is seen here too.
_SIGNAL_GRACE_S = 0.05


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own status 2 would read as "device stages skipped"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _SignalLatch:
    """Knows, at any moment and from any thread, whether SIGINT or SIGTERM has arrived — although Dagster
    replaces the Python handlers while a run executes: Python's C-level handler writes each signal's
    number into the wakeup fd before any Python handler runs."""

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        # SIGTERM like Ctrl-C from the start (Dagster maps it so anyway once its first run has begun).
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        self._lock = threading.Lock()
        self.signum: int | None = None

    def fired(self) -> bool:
        with self._lock:
            while self.signum is None:
                try:
                    got = os.read(self._read, 512)
                except BlockingIOError:
                    break
                self.signum = next((n for n in got if n in (signal.SIGINT, signal.SIGTERM)), None)
            return self.signum is not None


class _MutedAfterSignal:
    """A text stream that passes writes through until a signal fired, then swallows them: what Dagster
    logs while it unwinds an interrupted run (step failure, run failure, tracebacks) is not for a person
    who pressed Ctrl-C."""

    def __init__(self, stream, latch: _SignalLatch, isatty: bool) -> None:
        self._stream, self._latch, self._isatty = stream, latch, isatty

    def write(self, text: str) -> int:
        if not self._latch.fired():
            self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        if not self._latch.fired():
            self._stream.flush()

    def isatty(self) -> bool:  # what the terminal is, not the pipe of _Fd2Gate: keeps Dagster's colours
        return self._isatty

    def __getattr__(self, name):  # fileno, encoding, ... as the real stream
        return getattr(self._stream, name)


class _Fd2Gate:
    """File descriptor 2 of this process — and so of every child it starts — becomes a pipe that a thread
    copies to the real stderr until a signal fired.

    Ctrl-C in a terminal signals the whole process group, which includes the babysitter processes
    (``watch_orphans``) that Dagster's compute-log capture starts for every step; each answers with a
    KeyboardInterrupt traceback on the stderr it inherited. This pipe is the only place where that output,
    and whatever else children or C libraries write after the interrupt, can be stopped.
    """

    def __init__(self, latch: _SignalLatch) -> None:
        self._latch = latch
        sys.stderr.flush()
        try:
            self.real = os.dup(2)
        except OSError:  # started with stderr closed: nothing to protect
            self._open = False
            return
        self._open = True
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._read = read
        self._thread = threading.Thread(target=self._pump, name="wand-stderr", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while chunk := _read_retrying(self._read):
            # A child's answer to Ctrl-C can get here before this process's own handler ran: the
            # kernel hands the signal to one thread (often the main one), which a loaded machine may
            # not schedule for a while. Until then the signal sits in the process's pending set.
            time.sleep(_SIGNAL_GRACE_S)
            if self._open and not self._latch.fired() and not _interrupt_pending():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.real, view) :]

    def close(self, timeout_s: float = 5.0) -> None:
        """Give fd 2 back to the real stderr once everything written so far went through."""
        if not self._open:
            return
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        os.dup2(self.real, 2)  # this process's write end is gone: EOF once no child holds one either
        self._thread.join(timeout_s)
        self._open = False  # a child that still holds the pipe may write, but not after our last line


def _interrupt_pending() -> bool:
    return bool({signal.SIGINT, signal.SIGTERM} & signal.sigpending())


def _read_retrying(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""


def _say(message: str, stream=None) -> None:
    print(f"wand: {message}", file=stream or sys.stdout, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m wand_assets")
    sub = parser.add_subparsers(dest="command", required=True)
    mat = sub.add_parser("materialize", help="materialize every asset, all target partitions")
    mat.add_argument("--target", action="append", help="limit to these targets (repeatable)")
    mat.add_argument("--config", metavar="FILE", help="run-config YAML (ops: / resources:) for every run")
    args = parser.parse_args(argv)

    real_stdout, real_stderr = sys.stdout, sys.stderr
    if hasattr(real_stdout, "reconfigure"):
        real_stdout.reconfigure(line_buffering=True)  # our lines in order with Dagster's on a shared pipe
    stderr_isatty = real_stderr.isatty()
    latch = _SignalLatch()
    gate = _Fd2Gate(latch)
    sys.stdout = _MutedAfterSignal(real_stdout, latch, real_stdout.isatty())
    sys.stderr = _MutedAfterSignal(real_stderr, latch, stderr_isatty)
    progress: list = []  # the stages, as materialize_all plans and runs them
    where: dict = {}  # the artifact root, once known
    try:
        lines, code = _materialize(args, progress, where)
        gate.close()  # everything before the summary has been written; nothing comes after it
        print("\n".join(lines), file=real_stdout if code != EXIT_USAGE else real_stderr, flush=True)
        return code
    except BaseException as exc:  # KeyboardInterrupt, or Dagster's DagsterExecutionInterruptedError
        if _is_interrupt(exc) or latch.fired():
            gate.close()
            return _interrupted(progress, where.get("root"), latch, real_stderr)
        raise
    finally:
        gate.close()


def _materialize(args, progress: list, where: dict) -> tuple[list[str], int]:
    import dagster as dg

    from wand_assets.pipeline import load_run_config, materialize_all, plan_stages

    try:
        op_config, resources = load_run_config(args.config) if args.config else ({}, {})
        plan_stages(args.target)  # unknown targets are a usage error, not a failed stage
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        return [f"wand: {exc}"], EXIT_USAGE
    from wand_assets.definitions import RESOURCES

    root = where["root"] = (resources.get("artifact_store") or RESOURCES["artifact_store"]).store().root
    instance = None  # without DAGSTER_HOME: an ephemeral one, nothing kept for the web UI
    if home := os.environ.get("DAGSTER_HOME"):
        Path(home).mkdir(parents=True, exist_ok=True)  # as scripts/materialize.sh does
        instance = dg.DagsterInstance.get()
    has_iree_source = bool(os.environ.get("IREE_SOURCE_DIR"))
    if not has_iree_source:
        _say(
            f"{NO_IREE_REASON}, so the firmware cannot be built: materializing up to the host reference "
            "only. See README.md, 'The device half', for getting the IREE v3.11.0 runtime source.",
            sys.stderr,
        )
    try:
        materialize_all(
            targets=args.target,
            instance=instance,
            op_config=op_config,
            resources=resources,
            log=_say,
            device_stages=has_iree_source,
            progress=progress,
        )
        failed = None
    except Exception as exc:  # noqa: BLE001 -- the summary says what failed; Dagster's log above has the traceback
        failed = exc
    return _summary(progress, failed, root, has_iree_source)


def _is_interrupt(exc: BaseException) -> bool:
    dg = sys.modules.get("dagster")
    return isinstance(exc, KeyboardInterrupt) or (dg is not None and isinstance(exc, dg.DagsterExecutionInterruptedError))


def _interrupted(progress: list, root: Path | None, latch: _SignalLatch, stream) -> int:
    """One line naming what was running; remove this process's own temporaries if any survived."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    latch.fired()
    signum = latch.signum or signal.SIGINT
    kept = ""
    if root is not None:
        from wand_assets.core.artifacts import remove_stale_temps

        remove_stale_temps(root, include_own=True)  # normally already gone: atomic writes clean up
        kept = "; nothing half-written was kept"
    running = next((s for s in progress if s.status in ("interrupted", "failed", "running")), None)
    if running:
        where = f" during {running.where}"
    else:
        where = " after the last stage" if any(s.status == "materialized" for s in progress) else " before any stage started"
    verb = "interrupted" if signum == signal.SIGINT else "terminated"
    print(f"wand: {verb}{where}{kept}", file=stream, flush=True)
    return 128 + signum


def _stage_rows(stage, has_iree_source: bool) -> list[tuple[str, str, str]]:
    """(state, asset [partition], why) for each asset of one stage."""
    suffix = f" [{stage.partition}]" if stage.partition else ""
    done = {m.asset for m in stage.materialized}
    rows = []
    for asset in stage.assets:
        if asset in done:
            rows.append(("materialized", asset + suffix, ""))
        elif stage.status == "skipped":
            rows.append(("skipped", asset + suffix, "device stages off" if has_iree_source else NO_IREE_REASON))
        else:
            rows.append(("not run", asset + suffix, ""))
    if stage.status == "failed":
        failed = ("FAILED", stage.where, stage.error)
        if stage.failed_checks:
            failed = ("FAILED", stage.where, "blocking check: " + "; ".join(v for _, _, v in stage.failed_checks))
        # In place of the failed asset, or after the last materialized one when a check failed.
        at = next((i for i, r in enumerate(rows) if r[0] == "not run"), len(rows))
        if not stage.failed_checks and stage.step in stage.assets:
            at = stage.assets.index(stage.step)
            rows[at] = failed
        else:
            rows.insert(at, failed)
    return rows


def _summary(progress: list, failed: Exception | None, root: Path, has_iree_source: bool) -> tuple[list[str], int]:
    """The lines that end every run, and the exit code they announce."""
    rows = [row for stage in progress for row in _stage_rows(stage, has_iree_source)]
    report_html = next(
        (
            Path(getattr(m.metadata["path"], "value", m.metadata["path"]))  # the report's own metadata
            for stage in progress
            for m in stage.materialized
            if m.asset == "evaluation_report" and "path" in m.metadata
        ),
        None,
    )
    width = max(len(label) for _, label, _ in rows)
    lines = ["", "wand: summary"]
    lines += [f"  {state:<13} {label:<{width}}  {why}".rstrip() for state, label, why in rows]
    skipped = any(state == "skipped" for state, _, _ in rows)
    if skipped and not has_iree_source:
        lines.append(
            "  (the device stages need the IREE v3.11.0 runtime source: set IREE_SOURCE_DIR, see README.md, 'The device half')"
        )
    if report_html is not None and report_html.is_file():
        lines.append(f"  report        {report_html}")
    else:
        lines.append("  report        not written: the pipeline stopped before evaluation_report")
    lines.append(f"  web UI        {_ui_command(root)}")
    if failed is not None:
        where = next((s.where for s in progress if s.status == "failed"), "a stage")
        lines.append(f"wand: {where} failed; Dagster's log above has the error (exit code {EXIT_FAILED})")
        return lines, EXIT_FAILED
    if skipped:
        lines.append(f"wand: host stages materialized, device stages skipped (exit code {EXIT_HOST_ONLY})")
        return lines, EXIT_HOST_ONLY
    lines.append(f"wand: every stage materialized (exit code {EXIT_OK})")
    return lines, EXIT_OK


def _ui_command(root: Path) -> str:
    """The web UI over this run history and these artifacts, ready to paste."""
    home = os.environ.get("DAGSTER_HOME")
    env = {"DAGSTER_HOME": str(Path(home).absolute()) if home else str(REPO / ".dagster_home")}
    if Path(root).absolute() != Path(env["DAGSTER_HOME"]) / "wand-artifacts":
        env["WAND_ARTIFACT_ROOT"] = str(Path(root).absolute())
    for name in ("WAND_DATASET", "IREE_SOURCE_DIR"):  # so runs launched from the UI find the same inputs
        if os.environ.get(name):
            env[name] = os.environ[name]
    dagster = Path(sys.executable).parent / "dagster"
    with contextlib.suppress(ValueError):
        dagster = dagster.relative_to(REPO)
    where = "-w workspace.yaml" if (REPO / "workspace.yaml").is_file() else "-m wand_assets.definitions"
    command = " ".join(f"{k}={v}" for k, v in env.items()) + f" {dagster} dev {where} -h {UI_HOST} -p {UI_PORT}"
    if Path.cwd().resolve() != REPO:
        command = f"cd {REPO} && {command}"
    note = "" if home else "  (DAGSTER_HOME was not set, so this run is in no history; scripts/materialize.sh sets it)"
    return f"{command}, then open http://{UI_HOST}:{UI_PORT}{note}"


def _silence_nanobind_leak_report() -> None:
    """Keep the interpreter's exit silent, so that the summary stays the last thing printed.

    When the interpreter shuts down, the IREE runtime's nanobind module lists every IREE object still
    alive ("nanobind: leaked N instances!", about 40 lines on stderr): here the result buffers
    (HalBufferView, MappedMemory) of host_evaluation's per-window invocations, which the binding's
    keep-alive records hold until the process ends. The memory goes with the process; the report only
    buries the summary. iree.runtime exposes nanobind's own switch for it,
    ``_binding.disable_leak_checker()``, which is used rather than ending with ``os._exit``: that would
    also skip the atexit handlers (logging, the Dagster instance's storage, temporary folders) that
    should still run.
    """
    binding = sys.modules.get("iree.runtime._binding")
    if binding is not None and hasattr(binding, "disable_leak_checker"):
        binding.disable_leak_checker()


if __name__ == "__main__":
    try:
        exit_code = main()
    finally:
        _silence_nanobind_leak_report()
    sys.exit(exit_code)
