"""The registered model over REST (lowlm's server: MLflow's scoring app behind a request front, on
127.0.0.1) agrees with Python:
the same answers for good requests, a 4xx naming the problem for bad ones, and flat memory under load."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

import httpx
import mlflow
import pandas as pd
import psutil
import pytest
from mlflow.exceptions import MlflowException

from flows.servers import free_port, start_model_server
from lowlm.serving.pyfunc import InputError, InputTypeError, load, log_pyfunc

NAME = "rest-test"
LIMITS = {"LOWLM_MAX_ROWS": "64", "LOWLM_MAX_CHARS": "2000", "LOWLM_MAX_BODY_BYTES": str(1 << 20)}  # small, so an oversized request stays small
TEXTS = ["my card was declined again", "I want my money back for the broken kettle",
         "I cannot log in to my account", "send money to my landlord's bank account"]


@pytest.fixture(scope="module")
def rest(trained_sample, tmp_path_factory, tracking_uri):
    """One model server for the module, for a version registered in the test store, and the same
    version loaded in Python with the same limits; the server is stopped at the end."""
    tmp = tmp_path_factory.mktemp("rest")
    folder = trained_sample["classifier"].save(tmp / "clf")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(NAME)
    with mlflow.start_run():
        log_pyfunc(folder, input_example=TEXTS[:1], registered_model_name=NAME)
    uri = f"models:/{NAME}/1"
    server = start_model_server(uri, free_port(), tmp / "logs", tracking_uri, env=LIMITS)
    try:
        server.wait(180)
        with pytest.MonkeyPatch.context() as env:
            for name, value in LIMITS.items():
                env.setenv(name, value)
            model = mlflow.pyfunc.load_model(uri)
        yield {"server": server, "model": model, "classifier": trained_sample["classifier"]}
    finally:
        server.stop()
    assert server.process.poll() is not None


def post(server, body) -> tuple[int, dict]:
    request = urllib.request.Request(f"{server.url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_list_of_strings_gets_the_python_answer(rest):
    status, body = post(rest["server"], {"inputs": TEXTS})
    assert status == 200
    python = rest["model"].predict(pd.DataFrame({"text": TEXTS}))
    assert [p["label"] for p in body["predictions"]] == python["label"].tolist()
    assert [p["score"] for p in body["predictions"]] == pytest.approx(python["score"].tolist(), abs=1e-6)


def test_records_with_an_id_column_are_classified_on_text(rest):
    clf = rest["classifier"]
    expected = [p["label"] for p in clf.predict(TEXTS)]
    assert expected != [p["label"] for p in clf.predict(TEXTS[::-1])]  # the decoy column would be seen
    records = [{"id": decoy, "text": text} for decoy, text in zip(TEXTS[::-1], TEXTS)]
    status, body = post(rest["server"], {"dataframe_records": records})
    assert status == 200
    assert [p["label"] for p in body["predictions"]] == expected
    assert rest["model"].predict(pd.DataFrame(records))["label"].tolist() == expected


def test_a_frame_without_text_is_a_4xx_naming_its_columns(rest):
    split = {"columns": ["id", "sentence"], "data": [[1, TEXTS[0]], [2, TEXTS[1]]]}
    status, body = post(rest["server"], {"dataframe_split": split})
    assert 400 <= status < 500
    assert "missing inputs ['text']" in body["message"]
    assert "'id'" in body["message"] and "'sentence'" in body["message"]
    with pytest.raises(MlflowException, match=r"missing inputs \['text'\]"):
        rest["model"].predict(pd.DataFrame(split["data"], columns=split["columns"]))


@pytest.mark.parametrize("rows, message", [
    ([{"text": "ok"}, {"text": 1}, {"text": 2.5}], "input 1: expected a string, got int (1)"),
    ([{"text": "ok"}, {"text": None}], "input 1: expected a string, got NaN (a missing value)"),
    ([{"text": "ok"}, {"text": ["a", "b"]}], "input 1: expected a string, got list (['a', 'b'])"),
], ids=["numbers", "null", "list"])
def test_non_strings_and_nulls_in_records_are_a_4xx_naming_the_position(rest, rows, message):
    status, body = post(rest["server"], {"dataframe_records": rows})
    assert status == 400 and message in body["message"], body
    with pytest.raises(InputTypeError, match=re.escape(message)):
        rest["model"].predict(pd.DataFrame(rows))


@pytest.mark.parametrize("inputs", [[1, 2.5], ["ok", None]], ids=["numbers", "null"])
def test_python_refuses_non_strings_and_nulls_as_a_list_or_a_column(rest, inputs):
    with pytest.raises(MlflowException):
        rest["model"].predict(inputs)  # MLflow: "Model is missing inputs ['text']" (a list has column 0)
    with pytest.raises(MlflowException, match=r"Incompatible input types for column text|input 1: expected a string"):
        rest["model"].predict(pd.DataFrame({"text": inputs}))


@pytest.mark.parametrize("inputs, message", [
    ([1, 2.5], "inputs[0]: expected a string, got a number (1)"),
    (["ok", None], "inputs[1]: expected a string, got null"),
], ids=["numbers", "null"])
def test_non_strings_and_nulls_in_inputs_are_a_4xx(rest, inputs, message):
    """MLflow's parser would cast these to strings ("1", "None") and answer 200; lowlm's front refuses
    them as Python does."""
    status, body = post(rest["server"], {"inputs": inputs})
    assert status == 400 and body["message"] == message, body
    with pytest.raises(InputTypeError):
        load(f"models:/{NAME}/1").predict(inputs)


def test_a_body_over_the_size_limit_is_refused_unread(rest):
    """The answer comes from the declared length: it arrives before a byte of the 2 MB body is sent (a
    client that sent it all first could meet a closed socket: the server reads none of it)."""
    import http.client
    from urllib.parse import urlparse

    url = urlparse(rest["server"].url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2 * 1024 * 1024))  # 2 MB, over the 1 MB set here
    conn.endheaders()
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413 and "over the limit of 1048576" in body["message"], body


def test_an_oversized_request_is_a_4xx_naming_the_limit(rest):
    too_many = ["ok"] * 65
    status, body = post(rest["server"], {"inputs": too_many})
    assert status == 400 and "65 rows in one request; this model answers at most 64 (LOWLM_MAX_ROWS)" in body["message"]
    with pytest.raises(InputError, match=r"65 rows in one request; this model answers at most 64"):
        rest["model"].predict(pd.DataFrame({"text": too_many}))
    too_long = ["ok", "x" * 2001]
    status, body = post(rest["server"], {"dataframe_split": {"columns": ["text"], "data": [[t] for t in too_long]}})
    assert status == 400 and "input 1: 2001 characters; this model takes at most 2000" in body["message"]
    with pytest.raises(InputError, match=r"input 1: 2001 characters; this model takes at most 2000 per text"):
        rest["model"].predict(pd.DataFrame({"text": too_long}))
    assert post(rest["server"], {"inputs": ["ok"] * 64})[0] == 200  # at the limits is fine
    assert post(rest["server"], {"inputs": ["x" * 2000]})[0] == 200


def _server_rss(server) -> int:
    """RSS of the uvicorn worker that `mlflow models serve` starts (its child), else of the whole tree."""
    root = psutil.Process(server.process.pid)
    tree = [root, *root.children(recursive=True)]
    workers = [p for p in tree if any("uvicorn" in part for part in p.cmdline())]
    return sum(p.memory_info().rss for p in (workers or tree))


async def _hammer(url: str, requests: int, clients: int) -> list[int]:
    bodies = [{"inputs": [TEXTS[i % 4], f"request {i}: {TEXTS[(i + 1) % 4]}"]} for i in range(requests)]
    statuses: list[int] = []

    async def client(chunk):
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for body in chunk:
                response = await http.post("/invocations", json=body)
                statuses.append(response.status_code)
                assert len(response.json()["predictions"]) == 2

    await asyncio.gather(*(client(bodies[i::clients]) for i in range(clients)))
    return statuses


@pytest.mark.slow  # about 30-60 s: run by `make bench` (make test stays under 10 minutes)
def test_memory_stays_flat_under_2000_requests_from_8_clients(rest):
    server = rest["server"]
    start = time.monotonic()
    assert asyncio.run(_hammer(server.url, 200, 8)) == [200] * 200
    warm = _server_rss(server)
    statuses = asyncio.run(_hammer(server.url, 2000, 8))
    after = _server_rss(server)
    assert statuses == [200] * 2000
    assert after <= 1.5 * warm + 50 * 2**20, f"RSS grew from {warm / 2**20:.0f} MB to {after / 2**20:.0f} MB"
    assert time.monotonic() - start < 120  # a hung or crawling server, not a latency target


def test_lowlm_serve_model_serves_the_projects_store_and_stops_on_sigterm(rest, tracking_uri, tmp_path):
    """`lowlm serve-model` (what the README says to run): the project's store, no stray ./mlflow.db."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    port = free_port()
    lowlm = Path(sys.executable).parent / "lowlm"
    process = subprocess.Popen([str(lowlm), "serve-model", f"models:/{NAME}/1", "--port", str(port)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        assert process.poll() is None, process.stdout.read()
        status, body = post(type("S", (), {"url": f"http://127.0.0.1:{port}"}), {"inputs": TEXTS[:2]})
        assert status == 200 and len(body["predictions"]) == 2
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert "not verified" in output or "digests verified" in output, output
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not (tmp_path / "mlflow.db").exists()
