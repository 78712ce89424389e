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
    has_iree_source = bool(os.environ.get("IREE_SOURCE_DIR"))
    if not has_iree_source:
        print(
            "wand: IREE_SOURCE_DIR is not set, so the firmware cannot be built: materializing up to the host "
            "reference only. See README.md, 'The device half', for getting the IREE v3.11.0 runtime source.",
            file=sys.stderr,
        )
    try:
        materialize_all(targets=args.target, instance=instance, device_stages=has_iree_source)
    except Exception as exc:  # the CLI's job is to say what failed, not to print a Dagster traceback
        print(f"wand: pipeline failed: {exc}", file=sys.stderr)
        return 1
    if not has_iree_source:
        print("wand: host stages materialized; device stages skipped (set IREE_SOURCE_DIR)", file=sys.stderr)
        return 2
    print("wand: pipeline materialized")
    return 0


if __name__ == "__main__":
    sys.exit(main())
