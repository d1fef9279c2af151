"""Operating lowlm against real servers: `lowlm serve` serving the deployments on the session's Prefect
server, runs triggered from the CLI, retraining on new data (schedule, event trigger, gate), the
registry listing, prediction from the CLI, and the champion answering REST requests through
`mlflow models serve`.

The tests in this module build on each other, in order: one served process and one model name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.servers import free_port, start_model_server
from lowlm.evaluation.gate import decide
from tasks.registry import registry_versions

ROOT = Path(__file__).resolve().parent.parent
LOWLM = Path(sys.executable).parent / "lowlm"
MODEL = "ops-intents"
CRON = "0 3 29 2 *"  # 03:00 on 29 February: a real schedule that no test run ever reaches


def lowlm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed `lowlm` command, run from the project folder like a user would."""
    return subprocess.run([str(LOWLM), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ops(tmp_path_factory, prefect_server, tracking_uri):
    """A small classification preset of its own, and `lowlm serve` serving the deployments for it."""
    folder = tmp_path_factory.mktemp("ops")
    raw = yaml.safe_load((ROOT / "configs" / "sample.yaml").read_text())
    raw.update(name="ops", experiment="lowlm-ops", work_dir=str(folder / "work"))
    raw["corpus"]["path"] = str(ROOT / "data" / "sample" / "intents.csv")
    raw["augment"]["enabled"] = raw["attack"]["enabled"] = raw["fewshot"]["enabled"] = False
    raw["model"] = {"kind": "bag_of_ngrams", "embedding_dim": 32, "buckets": 1 << 16}  # ~86% in seconds
    raw["train"].update(epochs=10, lr=0.05, patience=3)
    raw["registry"]["model_name"] = MODEL
    preset = folder / "ops.yaml"
    preset.write_text(yaml.safe_dump(raw))
    incoming = folder / "incoming"
    log = open(folder / "serve.log", "w")
    served = subprocess.Popen([str(LOWLM), "serve", "--preset", str(preset), "--incoming", str(incoming),
                               "--cron", CRON], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        _wait_for_deployment("retrain/ops", served, folder / "serve.log")
        yield {"preset": preset, "incoming": incoming, "folder": folder, "tracking_uri": tracking_uri}
    finally:
        os.killpg(served.pid, 15)
        try:
            served.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(served.pid, 9)
        log.close()


def _wait_for_deployment(name: str, process: subprocess.Popen, log: Path, timeout: float = 180):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"lowlm serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                return client.read_deployment_by_name(name)
            except Exception:  # not registered yet
                time.sleep(1)
    pytest.fail(f"deployment {name} did not appear within {timeout} s:\n{log.read_text()[-3000:]}")


def _versions() -> list[dict]:
    return registry_versions(os.environ["MLFLOW_TRACKING_URI"], MODEL)


def test_1_deployments_are_served_with_typed_parameters_and_a_schedule(ops):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        classification = client.read_deployment_by_name("classification/sample")
        retrain = client.read_deployment_by_name("retrain/ops")
        seq2seq = client.read_deployment_by_name("seq2seq/translate-sample")
    # the pydantic config is the parameter: the UI draws a form from its JSON schema
    schema = classification.parameter_openapi_schema
    assert schema["properties"]["config"]["$ref"].endswith("PipelineConfig")
    assert "TrainConfig" in schema["definitions"] and "epochs" in schema["definitions"]["TrainConfig"]["properties"]
    assert classification.parameters["config"]["corpus"]["path"] == "data/sample/intents.csv"
    assert seq2seq.parameters["config"]["decode"]["beam_size"] >= 1
    assert [s.schedule.cron for s in retrain.schedules] == [CRON]
    assert retrain.parameters == {"preset": str(ops["preset"]), "incoming_dir": str(ops["incoming"]), "force": False}


def test_2_a_deployment_run_triggered_from_the_cli_registers_a_version(ops):
    assert _versions() == []
    done = lowlm("run", str(ops["preset"]), "--deployment", "--timeout", "400", timeout=450)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Completed" in done.stdout
    versions = _versions()
    assert [(v["version"], v["aliases"]) for v in versions] == [("1", ["champion"])]
    assert versions[0]["metrics"]["test_accuracy"] > 0.5


def test_2b_a_run_started_through_the_api_reads_only_where_its_deployment_allows(ops):
    """The deployment's parameters come from an unauthenticated API: a corpus outside the allowed roots
    is refused before anything is read, and nothing is registered."""
    for setting in ("corpus.path=/etc/passwd", "work_dir=/tmp/anywhere"):
        done = lowlm("run", str(ops["preset"]), "--deployment", "--set", setting, "--timeout", "300", timeout=350)
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "outside the folders this deployment allows" in output, output
        assert setting.split("=")[0] in output
    assert len(_versions()) == 1


def test_3_models_and_predict_read_the_registry(ops):
    runner = CliRunner()
    listed = runner.invoke(app, ["models", MODEL])
    assert listed.exit_code == 0, listed.output
    assert f"{MODEL}  1        champion  accuracy=" in listed.output
    labels = set(pd.read_csv(ROOT / "data" / "sample" / "intents.csv")["label"])
    out = runner.invoke(app, ["predict", f"models:/{MODEL}@champion", "I want my money back", "my card is blocked",
                              "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.strip().splitlines()]
    assert [r["text"] for r in rows] == ["I want my money back", "my card is blocked"]
    assert all(r["label"] in labels and 0 < r["score"] <= 1 for r in rows)
    missing = runner.invoke(app, ["predict", "models:/no-such-model@champion", "hello"])
    assert missing.exit_code == 2 and "cannot load models:/no-such-model@champion" in missing.output


def test_4_retrain_with_no_new_data_does_nothing(ops):
    done = lowlm("retrain", str(ops["preset"]), "--incoming", str(ops["incoming"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: data unchanged since champion v1" in done.stdout
    assert len(_versions()) == 1


def test_5_data_add_triggers_the_retrain_deployment_and_the_gate_decides(ops):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    new = ops["folder"] / "new_rows.csv"
    pd.DataFrame({"text": ["I was charged twice, refund one of them please", "my replacement card never came",
                           "reset my password, I am locked out", "send 200 pounds to my landlord today",
                           "I want my money back"],  # the last one is already in the corpus
                  "label": ["refund", "card_problem", "account_access", "transfer", "refund"]}).to_csv(new, index=False)
    added = lowlm("data", "add", str(new), "--preset", str(ops["preset"]), "--incoming", str(ops["incoming"]))
    assert added.returncode == 0, added.stdout + added.stderr
    assert "(5 rows)" in added.stdout and "event lowlm.data.added sent" in added.stdout

    # the event trigger starts a run of retrain/ops (the schedule's next run is years away)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain/ops")
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
            started = [r for r in runs if not r.state.is_scheduled()]
            if started and all(r.state.is_final() for r in started):
                break
            time.sleep(2)
    assert len(started) == 1 and started[0].state.is_completed(), (ops["folder"] / "serve.log").read_text()[-3000:]
    assert started[0].created_by is not None and started[0].created_by.type == "AUTOMATION"  # the event trigger

    versions = _versions()
    assert len(versions) == 2, (ops["folder"] / "serve.log").read_text()[-3000:]
    new_version = versions[0]
    assert new_version["version"] == "2"
    # the verdict is the gate's rule applied to the two scores it recorded (deterministic wins and losses
    # of the rule itself: tests/test_register.py)
    gate = new_version["tags"]["gate"]
    verdict = decide(float(new_version["tags"]["test_accuracy"]), float(gate.split("champion v1 ")[1]))
    assert new_version["aliases"] == [verdict.alias]
    assert versions[1]["aliases"] == (["challenger"] if verdict.promote else ["champion"])  # a beaten champion is the challenger
    assert new_version["tags"]["data_digest.train"] != versions[1]["tags"]["data_digest.train"]
    # new data: the adversarial rows came from attacking the model in service, v1 (v1's came from a probe)
    assert new_version["tags"]["adversarial_target_version"] == "1"
    assert versions[1]["tags"]["adversarial_target_version"] == "probe"
    accepted = list((ops["incoming"] / "accepted").iterdir())
    assert len(accepted) == 1 and accepted[0].name.endswith("-new_rows.csv")

    again = lowlm("retrain", str(ops["preset"]), "--incoming", str(ops["incoming"]))
    assert again.returncode == 0 and "skipped:" in again.stdout and len(_versions()) == 2


def test_6_the_champion_answers_rest_requests(ops, tmp_path):
    server = start_model_server(f"models:/{MODEL}@champion", free_port(), tmp_path,
                                os.environ["MLFLOW_TRACKING_URI"])
    try:
        server.wait(180)
        body = json.dumps({"inputs": ["please refund my order", "my card was stolen"]}).encode()
        request = urllib.request.Request(f"{server.url}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        server.stop()
    labels = set(pd.read_csv(ROOT / "data" / "sample" / "intents.csv")["label"])
    assert len(predictions) == 2 and all(p["label"] in labels for p in predictions)
    assert all(set(p["probabilities"]) == labels and abs(sum(p["probabilities"].values()) - 1) < 1e-4
               for p in predictions)


def test_7_a_sweep_runs_as_a_served_deployment_and_registers_its_best_trial(ops):
    from prefect.deployments import run_deployment

    from lowlm.config import load_pipeline_config

    config = load_pipeline_config(str(ops["preset"]), {"registry.model_name": "ops-sweep"})
    settings = {"trials": 2, "space": {"train.lr": {"low": 0.02, "high": 0.2, "log": True}}}
    run = run_deployment("sweep/sample", parameters={"config": config.model_dump(mode="json"), "settings": settings},
                         timeout=400)
    assert run.state.is_completed(), run.state.message
    versions = registry_versions(ops["tracking_uri"], "ops-sweep")
    assert [(v["version"], v["aliases"]) for v in versions] == [("1", ["champion"])]
