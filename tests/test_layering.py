import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "wand_assets"
DAGSTER_LAYER = {"definitions.py", "__main__.py"}


def test_plain_libraries_do_not_import_dagster():
    offenders = []
    for path in PACKAGE.glob("*.py"):
        if path.name in DAGSTER_LAYER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "dagster" or n.startswith(("dagster.", "wand_assets.defs")) for n in names):
                offenders.append(path.name)
    assert offenders == []


def test_target_strings_are_spelled_only_in_the_registry():
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "targets.py":
            continue
        text = path.read_text()
        if any(s in text for s in ("+zve32f", "generic-rv32", "ilp32f", "vext_spec")):
            spelled.append(path.name)
    assert spelled == []
