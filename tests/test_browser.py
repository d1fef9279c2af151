"""Both UIs in a real browser (Debian's Chromium driven by Playwright), against real servers.

    make ui-check      installs Chromium and Playwright if missing, runs this, saves the screenshots

A classification flow runs on the session's Prefect server and registers a model; the deployments
are registered with their schedule; an MLflow server shows the store. Then the browser checks that
the MLflow UI shows the model with its `champion` alias and the nested stage runs with their plots,
and that the Prefect UI shows the completed flow run and the retrain deployment with its schedule.
Screenshots go to LOWLM_SCREENSHOTS (default docs/screenshots).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flows.servers import free_port, start_mlflow

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("LOWLM_SCREENSHOTS", ROOT / "docs" / "screenshots"))
CHROMIUM = os.environ.get("LOWLM_CHROMIUM", "/usr/bin/chromium")
MODEL = "browser-intents"
# flags for a closed network (see README): no background calls home, no GPU
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def stores(prefect_server, tracking_uri, tmp_path_factory):
    from flows.classification import classification
    from flows.deployments import runner_deployments
    from lowlm.config import load_pipeline_config

    work = tmp_path_factory.mktemp("browser")
    config = load_pipeline_config("sample", {
        "name": "browser-check", "experiment": "lowlm-browser", "work_dir": str(work / "work"),
        "train.epochs": 3, "fewshot.enabled": False, "attack.max_examples": 20,
        "registry.model_name": MODEL})
    state = classification(config, return_state=True)
    assert state.is_completed(), state
    result = state.result()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run_name = client.read_flow_run(state.state_details.flow_run_id).name
    for deployment in runner_deployments(cron="0 3 * * *"):
        deployment.apply()
    mlflow_server = start_mlflow(free_port(), tracking_uri, work / "logs").wait(120)
    yield {"result": result, "mlflow": mlflow_server.url, "prefect": prefect_server.url,
           "flow_run_name": flow_run_name}
    mlflow_server.stop()


@pytest.fixture(scope="module")
def page():
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make ui-check` (installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make ui-check`")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        yield context.new_page()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_mlflow_ui_shows_the_champion_and_the_nested_stage_runs_with_plots(stores, page):
    from playwright.sync_api import expect

    base, result = stores["mlflow"], stores["result"]
    page.goto(f"{base}/#/models/{MODEL}")
    expect(page.get_by_text("champion").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Version 1").first).to_be_visible()
    shot(page, "mlflow-registered-model")

    experiment = result["experiment_id"]
    page.goto(f"{base}/#/experiments/{experiment}/runs")
    parent = page.get_by_role("gridcell").filter(has_text="browser-check").first
    expect(parent).to_be_visible(timeout=60_000)
    close = page.locator("button[aria-label*='Close']")  # the assistant side panel, if it is open
    if close.count():
        close.first.click()
    parent.get_by_role("button").first.click()  # unfold the parent run's nested stage runs
    for stage in ("ingest", "train", "evaluate", "register"):
        expect(page.get_by_text(stage, exact=True).first).to_be_visible(timeout=30_000)
    shot(page, "mlflow-nested-stage-runs")

    from mlflow import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    evaluate = client.search_runs([experiment], f"tags.lowlm.stage = 'evaluate' and "
                                               f"tags.mlflow.parentRunId = '{result['mlflow_run_id']}'")[0]
    plots = [a.path for a in client.list_artifacts(evaluate.info.run_id, "plots")]
    assert "plots/confusion_matrix.png" in plots and "plots/attention.png" in plots
    page.goto(f"{base}/#/experiments/{experiment}/runs/{evaluate.info.run_id}/artifacts/plots/confusion_matrix.png")
    expect(page.get_by_text("plots/confusion_matrix.png").first).to_be_visible(timeout=60_000)
    # the plot itself has loaded and been drawn (a broken image has no natural width)
    page.wait_for_function("() => [...document.images].some(i => i.complete && i.naturalWidth > 300)",
                           timeout=60_000)
    shot(page, "mlflow-stage-plot")


def test_prefect_ui_shows_the_completed_run_and_the_scheduled_deployment(stores, page):
    from playwright.sync_api import expect

    base = stores["prefect"]
    page.goto(f"{base}/runs")
    run = page.get_by_text(stores["flow_run_name"], exact=True).first
    expect(run).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Completed").first).to_be_visible()
    shot(page, "prefect-flow-runs")

    page.goto(f"{base}/deployments")
    expect(page.get_by_text("At 03:00 AM every day").first).to_be_visible(timeout=60_000)
    for name in ("classification", "seq2seq", "retrain"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    shot(page, "prefect-deployments")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        retrain = client.read_deployment_by_name("retrain/sample")
    page.goto(f"{base}/deployments/deployment/{retrain.id}")
    expect(page.get_by_text("At 03:00 AM").first).to_be_visible(timeout=60_000)
    shot(page, "prefect-retrain-deployment")
