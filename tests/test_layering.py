"""The layout's rules: one folder per stage, plain libraries free of Dagster, arrows only downstream."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "wand_assets"
STAGES = ["data", "training", "compilation", "device", "report"]  # in pipeline order
# The Dagster layer: each stage's one assets module (and its resources), the core's Dagster helpers,
# and the modules that assemble or drive the code location.
DAGSTER_MODULES = {"assets.py", "resources.py"}
DAGSTER_CORE = {"core/metadata.py", "core/resources.py", "core/handoff.py"}
DAGSTER_TOP = {"definitions.py", "__main__.py", "automation.py", "pipeline.py"}


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def is_dagster_layer(path: Path) -> bool:
    rel = relative(path)
    return rel in DAGSTER_TOP or rel in DAGSTER_CORE or (path.name in DAGSTER_MODULES and path.parent.name in STAGES)


def test_every_module_lives_in_a_stage_folder_or_the_core():
    loose = [relative(p) for p in PACKAGE.glob("*.py") if p.name not in DAGSTER_TOP | {"__init__.py"}]
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert loose == []
    assert folders == sorted([*STAGES, "core"])


def test_plain_libraries_do_not_import_dagster_or_the_dagster_layer():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if is_dagster_layer(path):
            continue
        for name in imported_modules(path):
            leaf = name.split(".")[-1]
            if (
                name == "dagster"
                or name.startswith("dagster.")
                or (
                    name.startswith("wand_assets.")
                    and leaf in {"assets", "resources", "metadata", "handoff", "definitions", "automation", "pipeline"}
                )
            ):
                offenders.append(f"{relative(path)} imports {name}")
    assert offenders == []


def test_stages_import_only_the_core_themselves_and_earlier_stages():
    backwards = []
    for stage_index, stage in enumerate(STAGES):
        for path in (PACKAGE / stage).rglob("*.py"):
            for name in imported_modules(path):
                parts = name.split(".")
                if parts[0] != "wand_assets" or len(parts) < 2 or parts[1] not in STAGES:
                    continue
                if STAGES.index(parts[1]) > stage_index:
                    backwards.append(f"{relative(path)} imports {name}")
    core_up = [
        f"{relative(p)} imports {n}"
        for p in (PACKAGE / "core").rglob("*.py")
        for n in imported_modules(p)
        if n.split(".")[:2][-1] in STAGES and n.startswith("wand_assets.")
    ]
    assert backwards == [] and core_up == []


def test_target_strings_are_spelled_only_in_the_registry():
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if relative(path) == "core/targets.py":
            continue
        text = path.read_text()
        if any(s in text for s in ("+zve32f", "generic-rv32", "ilp32f", "vext_spec")):
            spelled.append(relative(path))
    assert spelled == []
