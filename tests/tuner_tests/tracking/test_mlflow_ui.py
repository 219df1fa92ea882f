"""MLflow in a browser: a real ``tune`` run's tracking store, served by ``mlflow server``, seen in Chromium.

The test tunes the built-in demo (cheap backends), starts ``mlflow server --workers 1`` on
loopback over the store that run wrote, opens the experiment's runs page in headless Chromium
(Debian's ``chromium``, driven by Playwright with ``executable_path``; no browser download),
expands the study's parent run, adds the latency and objective columns, and checks that every
trial is listed with its figures. The screenshot goes to the test's tmp folder; with
``MLFLOW_UI_SCREENSHOT=experiments/results/mlflow-ui.png`` it also refreshes the one in the README.
"""

from __future__ import annotations

import json
import os
import re
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

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TRIALS = 4
#: Metric columns shown next to the run names.
COLUMNS = ("median_latency_ms", "objective_ms", "speedup_vs_eager")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install -y -q chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL built here
        return json.loads(response.read())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output dir of a real ``tune`` run on the demo: study.db, mlflow.db, mlruns/."""
    out = tmp_path_factory.mktemp("ui") / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tuner.api.cli", "--backends", "eager,torchscript", "--trials", str(TRIALS),
         "--device", "cpu", "--repeats", "3", "--output-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[str]:
    """``mlflow server --workers 1`` on a free loopback port over the run's store; stopped afterwards."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (store.parent / "mlflow-server.log").open("w")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--default-artifact-root", str(store / "mlruns")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (store.parent / "mlflow-server.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "mlflow server did not answer /health in 120 s"
                time.sleep(0.5)
        yield url
    finally:
        # The server runs uvicorn under its own process group: stop the group, then wait.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_the_trials_and_their_metrics_are_listed_in_the_mlflow_ui(store, server, tmp_path):
    from playwright.sync_api import sync_playwright

    experiment = get_json(f"{server}/api/2.0/mlflow/experiments/get-by-name?experiment_name=demo")["experiment"]
    runs = [f"trial-{i:04d}" for i in range(TRIALS)]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            # Wide: the grid renders only the columns in view.
            page = browser.new_page(viewport={"width": 2000, "height": 640})
            # MLflow 3 opens experiments in its GenAI view; the runs table is the "machine learning" one.
            page.goto(f"{server}/#/experiments/{experiment['experiment_id']}/runs?workflowType=machine_learning",
                      wait_until="domcontentloaded")
            page.get_by_text(f"{TRIALS + 1} matching runs").wait_for(timeout=90_000)
            close_assistant = page.get_by_role("button", name="Close")
            if close_assistant.count():
                close_assistant.first.click()  # the assistant panel would cover the metric columns
            # The trials are child runs of the study's run: expand it.
            page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
            for name in runs:
                page.get_by_role("link", name=name, exact=True).wait_for(timeout=30_000)
            page.get_by_role("button", name="Columns", exact=True).click()
            search = page.get_by_placeholder("Search columns")
            for column in COLUMNS:
                search.fill(column)
                title = page.locator(".du-bois-light-tree-title", has_text=re.compile(f"^{column}$"))
                page.locator(".du-bois-light-tree-treenode", has=title).locator(
                    ".du-bois-light-tree-checkbox").click()
            page.keyboard.press("Escape")
            headers = page.locator("[role=columnheader]")
            for column in COLUMNS:
                assert headers.filter(has_text=column).count() >= 1, f"no {column} column"
            # Each trial row shows a latency figure in ms.
            cells = page.locator("[role=gridcell][col-id='metrics.`median_latency_ms`']")
            values = [cells.nth(i).inner_text().strip() for i in range(cells.count())]
            figures = [float(v) for v in values if v not in ("", "-")]
            assert len(figures) >= TRIALS and all(f > 0 for f in figures), values
            shot = tmp_path / "mlflow-ui.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    wanted = os.environ.get("MLFLOW_UI_SCREENSHOT")
    if wanted:
        target = ROOT / wanted
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
