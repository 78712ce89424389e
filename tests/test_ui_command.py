"""The README's UI command (`bash scripts/ui.sh`) serves the runs and files of the command line:
the same DAGSTER_HOME, the same artifact root, on 127.0.0.1, with no network."""

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from test_web_ui import REPO, _free_port, _stop

from wand_assets.data.resources import DatasetSource
from wand_assets.definitions import ASSETS, RESOURCES

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 180


def readme_ui_command() -> str:
    """The UI command as the README gives it (the line in a code block that runs scripts/ui.sh)."""
    commands = re.findall(r"^(\S*bash scripts/ui\.sh.*)$", (REPO / "README.md").read_text(), re.MULTILINE)
    assert commands, "README.md shows no `bash scripts/ui.sh` command"
    return commands[0]


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert not body.get("errors"), body["errors"]
    return body["data"]


def test_readme_ui_command_shows_what_the_command_line_materialized(tmp_path, monkeypatch, dataset_dir):
    assert readme_ui_command() == "bash scripts/ui.sh"
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("WAND_ARTIFACT_ROOT", raising=False)
    # As the CLI does it: the instance at DAGSTER_HOME, the default artifact root.
    result = dg.materialize(
        [*ASSETS],
        selection=["magic_wand_archive"],
        instance=dg.DagsterInstance.get(),
        resources={**RESOURCES, "source": DatasetSource(location=str(dataset_dir))},
    )
    path = result.asset_materializations_for_node("magic_wand_archive")[0].metadata["path"]
    assert isinstance(path, dg.PathMetadataValue)
    written = Path(path.path)
    assert written.is_relative_to(home / "wand-artifacts")

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    env = dict(os.environ, DAGSTER_HOME=str(home), WAND_UI_PORT=str(port))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/ui.sh"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"scripts/ui.sh exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"no UI on {url} within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
        asset = graphql(
            url,
            '{ assetOrError(assetKey: {path: ["magic_wand_archive"]}) { ... on Asset { assetMaterializations(limit: 1) '
            "{ runId metadataEntries { label ... on PathMetadataEntry { path } } } } } }",
        )["assetOrError"]
        (shown,) = asset["assetMaterializations"]
        assert shown["runId"] == result.run_id
        paths = {e["label"]: e.get("path") for e in shown["metadataEntries"]}
        assert paths["path"] == str(written)
    finally:
        _stop(proc)
    listening = log.read_text()
    assert f"http://127.0.0.1:{port}" in listening
