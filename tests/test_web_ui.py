"""The web UI as users meet it: ``dagster-webserver`` on the project's ``workspace.yaml``, checked over
GraphQL and in Debian's headless Chromium (driven by Playwright; no browser downloads).

The expected assets and lineage edges come from ``wand_assets.definitions.defs``, so the test follows
the pipeline as assets are added.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("WAND_CHROMIUM", "/usr/bin/chromium")
# Debian's Chromium as root in a closed network: no sandbox, no GPU, no calls home (see PLATFORM_FACTS).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 120
UI_TIMEOUT_MS = 45_000
VIEWPORT = {"width": 1600, "height": 1000}

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------------------- expectations
@pytest.fixture(scope="module")
def lineage() -> dict[str, set[str]]:
    """Every asset of the code location, by its key as the UI writes it, with its upstream keys."""
    from wand_assets.definitions import defs

    specs = defs.resolve_all_asset_specs()
    assert specs, "wand_assets.definitions.defs defines no assets"
    return {spec.key.to_user_string(): {dep.asset_key.to_user_string() for dep in spec.deps} for spec in specs}


# ---------------------------------------------------------------------------------------- webserver
class Webserver:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            return f"(no webserver log: {exc})"
        return f"--- last lines of {self.log} ---\n" + "\n".join(text)

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}\n{self.log_tail()}"
        return body["data"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _webserver_command() -> list[str]:
    script = Path(sys.executable).with_name("dagster-webserver")
    if script.exists():
        return [str(script)]
    found = shutil.which("dagster-webserver")
    return [found] if found else [sys.executable, "-m", "dagster_webserver"]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (webserver + its code server), SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # also reaps a code server that outlived the webserver
    proc.wait(timeout=15)


@pytest.fixture(scope="module")
def webserver(tmp_path_factory) -> Iterator[Webserver]:
    root = tmp_path_factory.mktemp("webui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = root / "webserver.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DAGSTER_HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [*_webserver_command(), "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, so teardown reaches the code server too
        )
    server = Webserver(proc, url, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {proc.returncode}: {command}\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver gave no /server_info within {STARTUP_TIMEOUT_S} s\n{server.log_tail()}")
            time.sleep(0.5)
        # The code location must have loaded, not merely the server.
        entries = server.graphql(
            "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus"
            " locationOrLoadError { __typename ... on PythonError { message stack } } } } } }"
        )["workspaceOrError"]["locationEntries"]
        assert entries, f"workspace.yaml gave no code location\n{server.log_tail()}"
        for entry in entries:
            error = entry["locationOrLoadError"]
            assert error and error["__typename"] == "RepositoryLocation", (
                f"code location {entry['name']} failed to load: {json.dumps(error, indent=1)}\n{server.log_tail()}"
            )
        yield server
    finally:
        _stop(proc)


# ------------------------------------------------------------------------------------------ GraphQL
def test_graphql_lineage_matches_definitions(webserver, lineage):
    nodes = webserver.graphql("{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]
    shown = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    assert shown.keys() == lineage.keys(), (
        f"assets missing from the UI: {sorted(lineage.keys() - shown.keys())}; "
        f"unexpected: {sorted(shown.keys() - lineage.keys())}"
    )
    wrong = {key: (sorted(shown[key]), sorted(deps)) for key, deps in lineage.items() if shown[key] != deps}
    assert not wrong, f"lineage edges differ (UI, definitions): {wrong}"
    assert any(lineage.values()), "the lineage has no edges at all"


# ------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (scripts/setup.sh does)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the Python package playwright is missing: pip install -e '.[dev]'"
    )
    with sync_api.sync_playwright() as playwright:
        # Playwright gives every launch a fresh, empty profile directory.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _dismiss_community_dialog(page, webserver) -> None:
    """The first visit on localhost shows a "Join the Dagster community" dialog over the page: skip it."""
    skip = page.get_by_role("button", name="Skip", exact=True)
    if webserver.graphql("{ shouldShowNux }")["shouldShowNux"]:
        skip.click(timeout=30_000)  # it opens about a second after the page loads
    elif skip.is_visible():
        skip.click()
    page.get_by_text("Join the Dagster community").wait_for(state="hidden")


def _settle(page) -> None:
    # The UI may keep polling, so the network never idles; a screenshot of the drawn page is still what we want.
    with contextlib.suppress(Exception):
        page.wait_for_load_state("networkidle", timeout=15_000)


def _group_names() -> list[str]:
    from wand_assets.definitions import defs

    return sorted({spec.group_name or "default" for spec in defs.resolve_all_asset_specs()})


def test_asset_graph_shows_every_asset(webserver, lineage, page, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # Global lineage with every group opened (the UI's own "expanded" query parameter), so asset
    # nodes are drawn rather than collapsed group boxes.
    expanded = ",".join(f"global@global:{group}" for group in _group_names())
    page.goto(f"{webserver.url}/asset-groups?expanded={expanded}", wait_until="domcontentloaded")
    _dismiss_community_dialog(page, webserver)
    page.get_by_text("Global asset lineage").first.wait_for()

    labels = {key: page.get_by_text(key, exact=True).first for key in lineage}
    first = labels[min(lineage)]
    try:
        first.wait_for(timeout=20_000)
    except PlaywrightTimeout:
        page.keyboard.press("Alt+KeyE")  # fallback: the UI's "Expand all groups" shortcut
    missing: list[str] = []
    for key, label in labels.items():
        try:
            label.wait_for(state="visible", timeout=UI_TIMEOUT_MS if not missing else 2_000)
        except PlaywrightTimeout:
            missing.append(key)
    _settle(page)
    screenshot = tmp_path / "asset-graph.png"
    page.screenshot(path=str(screenshot))
    assert not missing, f"asset graph at {page.url} does not show {missing}; screenshot: {screenshot}\n{webserver.log_tail()}"
    assert page.get_by_text("Join the Dagster community").count() == 0, f"dialog still open; screenshot: {screenshot}"
    print(f"asset graph screenshot: {screenshot}")


def _plain_text_of(description: str) -> str:
    """The longest run of the description's first paragraph outside Markdown code spans."""
    first = description.strip().split("\n\n")[0].replace("\n", " ")
    plain = [part.strip(" *_.,:;()[]") for i, part in enumerate(first.split("`")) if i % 2 == 0]
    return max(plain, key=len)


def test_asset_page_shows_description(webserver, lineage, page, tmp_path):
    from wand_assets.definitions import defs

    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    key = "trained_model" if specs.get("trained_model") and specs["trained_model"].description else None
    key = key or next((k for k, s in sorted(specs.items()) if s.description), None)
    if key is None:
        pytest.skip("no asset has a description")
    description = specs[key].description
    assert description  # the key was chosen for having one
    text = _plain_text_of(description)

    page.goto(f"{webserver.url}/assets/{key}", wait_until="domcontentloaded")
    _dismiss_community_dialog(page, webserver)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    shown = page.get_by_text(text).first
    with contextlib.suppress(PlaywrightTimeout):
        shown.wait_for(state="visible")
    _settle(page)
    screenshot = tmp_path / f"{key}.png"
    page.screenshot(path=str(screenshot))
    assert shown.is_visible(), f"{key}'s page at {page.url} does not show {text!r}; screenshot: {screenshot}"
