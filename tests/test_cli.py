"""The one `lowlm` command: `ui` starts and stops both servers, `deploy` registers every deployment with
a work pool, `data add`/`data list` show what waits, and `python -m flows.X` is `lowlm ...`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import alias, app
from flows.servers import free_port, http_ok

ROOT = Path(__file__).resolve().parent.parent
LOWLM = Path(sys.executable).parent / "lowlm"


def test_ui_serves_both_uis_and_stops_both(tmp_path):
    prefect_port, mlflow_port = free_port(), free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'ui.db'}"}
    log = open(tmp_path / "ui.log", "w")
    process = subprocess.Popen([str(LOWLM), "ui", "--prefect-port", str(prefect_port), "--mlflow-port",
                                str(mlflow_port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "Ctrl-C stops both" not in (tmp_path / "ui.log").read_text():
            assert process.poll() is None, (tmp_path / "ui.log").read_text()
            time.sleep(1)
        assert http_ok(f"http://127.0.0.1:{prefect_port}/api/health")
        assert http_ok(f"http://127.0.0.1:{mlflow_port}/health")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "ui.log").read_text()
    assert f"export PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api" in output and "stopped." in output
    assert not http_ok(f"http://127.0.0.1:{prefect_port}/api/health")
    assert not http_ok(f"http://127.0.0.1:{mlflow_port}/health")


def test_deploy_registers_every_deployment_with_the_pool(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="cli-test-pool", type="process"), overwrite=True)
    names = {"classification/sample", "seq2seq/translate-sample", "sweep/sample", "retrain/sample"}
    try:
        result = CliRunner().invoke(app, ["deploy", "--pool", "cli-test-pool", "--cron", "0 4 * * *"])
        assert result.exit_code == 0, result.output
        assert "prefect worker start --pool cli-test-pool" in result.output
        with get_client(sync_client=True) as client:
            deployments = {name: client.read_deployment_by_name(name) for name in names}
        assert {d.work_pool_name for d in deployments.values()} == {"cli-test-pool"}
        assert [s.schedule.cron for s in deployments["retrain/sample"].schedules] == ["0 4 * * *"]
        swept = deployments["sweep/sample"].parameters  # a form in the UI: the pipeline and the sweep settings
        assert swept["settings"]["trials"] == 8 and swept["config"]["model"]["kind"] == "bag_of_ngrams"
        assert {"config", "settings"} <= set(deployments["sweep/sample"].parameter_openapi_schema["properties"])
    finally:  # the session's server is shared: `lowlm serve` in other tests serves these names itself
        with get_client(sync_client=True) as client:
            for name in names:
                try:
                    client.delete_deployment(client.read_deployment_by_name(name).id)
                except Exception:
                    pass


def test_data_add_then_list_shows_what_waits(tmp_path):
    incoming = tmp_path / "incoming"
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"text": ["my card got stuck in the machine"], "label": ["card_problem"]}).to_csv(rows, index=False)
    runner = CliRunner()
    added = runner.invoke(app, ["data", "add", str(rows), "--incoming", str(incoming), "--no-event"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["data", "list", "--incoming", str(incoming)])
    assert listed.exit_code == 0
    assert "waiting: 1" in listed.output and "rows.csv" in listed.output and "rejected: 0" in listed.output
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n,card_problem\n")
    refused = runner.invoke(app, ["data", "add", str(bad), "--incoming", str(incoming), "--no-event"])
    assert refused.exit_code == 2 and "bad.csv, row 1: empty or missing text" in refused.output
    assert "waiting: 1" in runner.invoke(app, ["data", "list", "--incoming", str(incoming)]).output
    # labels the corpus does not have: refused, naming them and the file, unless admitted
    foreign = tmp_path / "foreign.csv"
    pd.DataFrame({"text": [f"totally new question number {i}" for i in range(4)],
                  "label": ["wow", "wow", "wow", "pos"]}).to_csv(foreign, index=False)
    refused = runner.invoke(app, ["data", "add", str(foreign), "--incoming", str(incoming), "--no-event"])
    assert refused.exit_code == 2 and "foreign.csv: label(s) ['pos', 'wow'] are not among" in refused.output
    assert "waiting: 1" in runner.invoke(app, ["data", "list", "--incoming", str(incoming)]).output
    refused = runner.invoke(app, ["data", "add", str(foreign), "--incoming", str(incoming), "--no-event",
                                  "--allow-new-labels"])
    assert refused.exit_code == 2 and "new label(s) ['pos'] have fewer than 3 rows" in refused.output
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\nmy card was swallowed at the caf\xe9,card_problem\n".encode("latin-1"))
    refused = runner.invoke(app, ["data", "add", str(latin), "--incoming", str(incoming), "--no-event"])
    assert refused.exit_code == 2 and "latin.csv" in refused.output and "latin-1" in refused.output, refused.output
    added = runner.invoke(app, ["data", "add", str(latin), "--incoming", str(incoming), "--no-event",
                                "--encoding", "latin-1"])
    assert added.exit_code == 0, added.output
    copy = next(incoming.glob("*-latin.csv"))
    assert "café" in copy.read_text(encoding="utf-8")  # queued as UTF-8, as the merge reads it
    # the sample corpus's own folder as the incoming folder: retraining would move the corpus away
    for command in (["data", "add", str(rows)], ["retrain", "sample"]):
        refused = runner.invoke(app, [*command, "--incoming", str(ROOT / "data" / "sample")])
        assert refused.exit_code == 2 and "holds the base corpus" in refused.output, refused.output
    assert (ROOT / "data" / "sample" / "intents.csv").is_file()


@pytest.mark.parametrize("argv, code, message", [
    (["no-such-preset"], 2, "no config file 'no-such-preset'"),
    (["sample", "--set", "train.epochs=zero"], 2, "train.epochs"),
    (["sample", "--no-such-option"], 2, "No such option"),
])
def test_module_entry_points_are_the_one_cli(argv, code, message, capsys):
    assert alias(["run"], argv, default="sample") == code
    captured = capsys.readouterr()
    assert message in captured.err + captured.out
