"""Wall time of the test suite exactly as CI runs it: a fresh clone of HEAD beside this checkout (so
``../shared`` is where ``.ci/run`` expects it), then ``CI=true bash .ci/run``.

    .venv/bin/python benchmarks/suite_wall_time.py [--keep]

The first run on a machine also creates the clone's ``.venv`` (pip's cache makes later ones quicker);
the table says how long setup took and how long pytest took, from pytest's own closing line.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CI_TIMEOUT_S = 90 * 60  # CI's budget


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="keep the clone (and its log) afterwards")
    args = parser.parse_args()
    clone = REPO.parent / f"wand-suite-bench-{os.getpid()}"
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    log = clone / "ci-run.log"
    started_at, started = datetime.now(), time.monotonic()
    try:
        with open(log, "w") as out:
            code = subprocess.run(
                ["bash", ".ci/run"],
                cwd=clone,
                env={**os.environ, "CI": "true"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=CI_TIMEOUT_S,
                check=False,
            ).returncode
        total = time.monotonic() - started
        text = log.read_text(errors="replace")
        closing = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed)", line) and " in " in line]
        pytest_seconds = re.search(r" in ([\d.]+)s", closing[-1]) if closing else None
        print("| what | value |")
        print("|---|---|")
        print(f"| commit | {head} |")
        print(f"| `CI=true bash .ci/run` exit code | {code} |")
        print(f"| pytest's closing line | {closing[-1].strip('= ') if closing else '(none)'} |")
        print(f"| whole run (setup + lint + tests) | {total:.0f} s |")
        if pytest_seconds:
            print(f"| of which pytest | {float(pytest_seconds.group(1)):.0f} s |")
        print()
        print(f"Measured {started_at:%Y-%m-%d %H:%M} on a {os.cpu_count()}-core machine in a fresh clone of {head}.")
        if code != 0:
            print("\n".join(text.splitlines()[-40:]), file=sys.stderr)
        return code
    finally:
        if args.keep:
            print(f"clone kept at {clone} (log: {log})", file=sys.stderr)
        else:
            shutil.rmtree(clone, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
