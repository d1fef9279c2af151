"""Faults a long run meets, each left in a clean state: a store that is down, SIGTERM, kill -9 and resume.

Every run here is the installed `lowlm` in its own process, as a user starts it, against this
session's MLflow store; the signals are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow import MlflowClient

from flows.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
LOWLM = Path(sys.executable).parent / "lowlm"


def small_preset(folder: Path, name: str, epochs: int = 8) -> Path:
    """The sample preset, smaller: no augmentation, attack or few-shot; a fixed number of epochs."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((ROOT / "configs" / "sample.yaml").read_text())
    raw.update(name=name, experiment=f"lowlm-{name}", work_dir=str(folder / "work"))
    raw["corpus"]["path"] = str(ROOT / "data" / "sample" / "intents.csv")
    raw["augment"]["enabled"] = raw["attack"]["enabled"] = raw["fewshot"]["enabled"] = False
    raw["model"].update(embedding_dim=32, hidden_dim=32, attention_dim=32, char_dim=16)
    raw["train"].update(epochs=epochs, patience=0, progress=False)
    raw["registry"]["model_name"] = name
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(LOWLM), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})}, start_new_session=True)


def wait_for(path_glob: str, folder: Path, process: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(path_glob))
        if found:
            return found[0]
        if process.poll() is not None:
            pytest.fail(f"the run ended ({process.returncode}) before {path_glob} appeared:\n{process.stdout.read()}")
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"no {path_glob} under {folder} within {timeout} s")


def runs_of(tracking_uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=100) if found else []


def test_a_store_that_is_down_fails_fast_with_one_masked_line():
    port = free_port()  # nothing listens there
    uri = f"http://lowlm:s3cret-pw@127.0.0.1:{port}"
    for args in (["models"], ["predict", "models:/intents@champion", "hello"], ["run", "sample"]):
        began = time.monotonic()
        done = subprocess.run([str(LOWLM), *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "MLFLOW_TRACKING_URI": uri, "LOWLM_STORE_TIMEOUT": "3"})
        seconds = time.monotonic() - began
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "cannot be reached" in errors[0], output
        assert "s3cret-pw" not in output and "lowlm:***@" in errors[0]
        assert "Traceback" not in output
        assert seconds < 60, f"{args}: {seconds:.0f} s to fail"  # was about 4.5 minutes


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, prefect_server, tracking_uri) -> dict:
    """One run of the small preset, start to end, in a process of its own."""
    folder = tmp_path_factory.mktemp("whole")
    done = subprocess.run([str(LOWLM), "run", str(small_preset(folder, "fault-resume"))], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = runs_of(tracking_uri, "lowlm-fault-resume")
    train = next(r for r in runs if r.info.run_name == "train")
    evaluate = next(r for r in runs if r.info.run_name == "evaluate")
    return {"digest": train.data.tags["lowlm.model_digest"], "test_accuracy": evaluate.data.metrics["test_accuracy"]}


@pytest.mark.slow  # two fresh-process flow runs, ~90 s idle and 3 min on busy cores: run by `make bench`
def test_the_same_preset_in_a_fresh_process_gives_the_same_model(uninterrupted, tmp_path, tracking_uri):
    """Seeds are set before any model is built: two fresh processes train the same weights, so the
    gate compares models, not seeds."""
    again = subprocess.run([str(LOWLM), "run", str(small_preset(tmp_path, "fault-resume"))], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"test accuracy {uninterrupted['test_accuracy']:.4f}" in again.stdout
    assert f"model digest {uninterrupted['digest']} is already version" in again.stdout


@pytest.mark.slow  # about 30-60 s: run by `make bench` (make test stays under 10 minutes)
def test_kill_9_mid_training_then_resume_gives_the_uninterrupted_model(uninterrupted, tmp_path, tracking_uri):
    """kill -9 leaves runs RUNNING: the next start marks them FAILED and says so; `--resume` continues
    the training from its last checkpoint to the model an uninterrupted run trains."""
    digest = uninterrupted["digest"]

    killed = small_preset(tmp_path / "killed", "fault-resume")
    process = start("run", str(killed))
    checkpoint = wait_for("work/train/*/checkpoint.pt", tmp_path / "killed", process)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    running = [r for r in runs_of(tracking_uri, "lowlm-fault-resume") if r.info.status == "RUNNING"]
    assert {r.info.run_name for r in running} >= {"fault-resume", "train"}  # the debris kill -9 leaves
    assert checkpoint.exists()

    resumed = subprocess.run([str(LOWLM), "run", str(killed), "--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert f"marked {len(running)} MLflow run(s) FAILED that a killed lowlm process left RUNNING" in output
    assert "resuming training from the checkpoint" in output
    client = MlflowClient(tracking_uri)
    for run in running:
        after = client.get_run(run.info.run_id)
        assert after.info.status == "FAILED" and "killed" in after.data.tags["lowlm.failed_reason"]
    train_runs = [r for r in runs_of(tracking_uri, "lowlm-fault-resume") if r.info.run_name == "train"
                  and r.info.status == "FINISHED"]
    resumed_run = next(r for r in train_runs if "resumed_from" in r.data.tags)
    assert resumed_run.data.tags["lowlm.model_digest"] == digest  # the same weights as the uninterrupted run
    assert f"is already version" in output  # ... so the registry already holds it
    assert not checkpoint.exists()  # the finished bundle replaced it


@pytest.mark.slow  # about 30-60 s: run by `make bench` (make test stays under 10 minutes)
def test_sigterm_ends_the_runs_failed_and_stops_the_temporary_prefect_server(tmp_path, tracking_uri):
    """No PREFECT_API_URL: the run starts Prefect's temporary server; SIGTERM during training ends every
    MLflow run FAILED, stops that server, and exits with one error line."""
    preset = small_preset(tmp_path, "fault-sigterm", epochs=200)
    env = {"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "LOWLM_PREFECT_PORT": str(free_port())}  # never a `lowlm ui` someone left running on 4200
    process = start("run", str(preset), env=env)
    wait_for("work/train/*/checkpoint.pt", tmp_path, process, timeout=300)
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "expected the temporary Prefect server as a child process"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "SIGTERM" in errors[0] and "--resume" in errors[0], output
    runs = runs_of(tracking_uri, "lowlm-fault-sigterm")
    assert runs and all(r.info.status != "RUNNING" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    assert {r.info.status for r in runs if r.info.run_name in ("fault-sigterm", "train")} == {"FAILED"}
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"


def test_api_paths_are_checked_against_the_allowed_roots(tmp_path):
    from flows.runtime import PathNotAllowed, check_api_paths, config_paths
    from lowlm.config import load_pipeline_config

    config = load_pipeline_config("sample", {"corpus.path": str(tmp_path / "x.csv"), "work_dir": "/tmp/w"})
    paths = config_paths(config.model_dump(mode="json"))
    assert paths["config.corpus.path"] == str(tmp_path / "x.csv") and paths["config.work_dir"] == "/tmp/w"
    assert "config.fewshot.corpus.path" in paths
    check_api_paths({"config.corpus.path": str(tmp_path / "x.csv")}, [tmp_path])
    for sneaky in (str(tmp_path / ".." / "etc"), "/etc/passwd", str(tmp_path) + "-sibling/x"):
        with pytest.raises(PathNotAllowed, match="outside the folders this deployment allows"):
            check_api_paths({"config.corpus.path": sneaky}, [tmp_path])
    link = tmp_path / "link"
    link.symlink_to("/etc")
    with pytest.raises(PathNotAllowed, match="resolves to /etc"):
        check_api_paths({"incoming_dir": str(link)}, [tmp_path])


@pytest.fixture()
def small_disk(tmp_path):
    """A 600 KB tmpfs (root and mount(8) needed; skipped with the reason where the test cannot make one)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.strip() or made.returncode}); the disk-full "
                    f"fault needs one")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_full_disk_names_the_cause_and_leaves_no_partial_files(small_disk, tmp_path, tracking_uri, prefect_server):
    import torch

    from lowlm.files import DiskFull, atomic_folder, save_tensors

    big = {"w": torch.zeros(400_000)}  # 1.6 MB: more than the disk holds
    with pytest.raises(DiskFull, match=r"no space left on device writing .*/disk/x/weights.pt"):
        save_tensors(big, small_disk / "x" / "weights.pt")
    with pytest.raises(DiskFull, match=r"no space left on device writing .*/disk/bundle"):
        with atomic_folder(small_disk / "bundle") as partial:
            torch.save(big, partial / "weights.pt")
    assert [p.name for p in small_disk.rglob("*") if p.is_file()] == [], "nothing half-written stays"

    # a whole run whose work folder fills up: one error line with the cause, runs FAILED, no debris
    preset = small_preset(tmp_path, "fault-full", epochs=2)
    raw = yaml.safe_load(preset.read_text())
    raw["work_dir"] = str(small_disk / "work")
    preset.write_text(yaml.safe_dump(raw))
    done = subprocess.run([str(LOWLM), "run", str(preset)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the disk is full: no space left on device writing" in errors[0], output
    assert str(small_disk / "work") in errors[0]
    runs = runs_of(tracking_uri, "lowlm-fault-full")
    assert runs and not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    leftovers = [p for p in small_disk.rglob("*") if "partial" in p.name or p.suffix == ".tmp"]
    assert not leftovers, leftovers
    assert not MlflowClient(tracking_uri).search_registered_models(filter_string="name = 'fault-full'")


@pytest.mark.usefixtures("prefect_server")
def test_a_bad_few_shot_corpus_fails_before_any_training(tmp_path, tracking_uri):
    preset = small_preset(tmp_path, "fault-fewshot", epochs=2)
    raw = yaml.safe_load(preset.read_text())
    bad = tmp_path / "fewshot.csv"
    bad.write_text("text,label\ngreat film,pos\n,neg\n")
    raw["fewshot"] = {"enabled": True, "corpus": {"path": str(bad)}}
    preset.write_text(yaml.safe_dump(raw))
    done = subprocess.run([str(LOWLM), "run", str(preset)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fewshot.csv, row 2: empty or missing text" in errors[0], output
    assert "Traceback" not in output
    stages = {r.info.run_name for r in runs_of(tracking_uri, "lowlm-fault-fewshot")}
    assert "ingest-fewshot" in stages and "train" not in stages, stages
