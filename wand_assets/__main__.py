"""``python -m wand_assets materialize``: run the whole pipeline from the command line."""

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wand_assets")
    sub = parser.add_subparsers(dest="command", required=True)
    mat = sub.add_parser("materialize", help="materialize every asset, all target partitions")
    mat.add_argument("--target", action="append", help="limit to these targets (repeatable)")
    args = parser.parse_args(argv)

    import dagster as dg

    from wand_assets.defs.pipeline import materialize_all

    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    try:
        materialize_all(targets=args.target, instance=instance)
    except Exception as exc:  # the CLI's job is to say what failed, not to print a Dagster traceback
        print(f"wand: pipeline failed: {exc}", file=sys.stderr)
        return 1
    print("wand: pipeline materialized")
    return 0


if __name__ == "__main__":
    sys.exit(main())
