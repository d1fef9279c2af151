"""Past one machine, measured on this one: augmentation and attack shards on the thread runner and on 1 and 2
Dask workers, and DDP training with 2 processes against 1.

    .venv/bin/python benchmarks/scaleout.py [--repeats 3] [--only augment attack ddp]

- ``augment``: the augment stage's shards (``augment-shard`` tasks through ``flows.runners.map_shards``, as
  the flow maps them) of EDA then WordNet synonyms (ratio 1 each) over a seeded sample of SST-2 training
  sentences (40,000), 1,000 rows a shard, on: ``thread-1`` (the anchor: one shard at a time), ``thread-2``,
  ``dask-1`` and ``dask-2`` (a ``LocalCluster`` of 1 or 2 worker processes started for the stage, as
  the flow does; its start is part of the wall time and is also reported alone). Sentences per second =
  source rows / wall seconds. The rows of every runner must equal the anchor's (checked).
- ``attack``: the evaluate stage's attack shards (``flows.attacking.attack_parts``) of the word attack
  (deletion importance, WordNet + embedding neighbours) against a BiGRU-attention classifier trained
  here on TREC-6's training carve (3 epochs), on 2,000 training rows (the generate stage's default; a
  throughput measure: no test row is read), 250 rows a shard; the same runners. Examples per second = rows / wall seconds; the
  examples must equal the anchor's (checked).
- ``ddp``: ``lowlm run trec`` with the BiGRU (dropout 0, 3 epochs, batch 64), augmentation, attacks
  and few-shot off: the train stage in its own process (2 torch threads), against
  ``train.distributed.procs_per_node=2`` (torchrun, gloo, 1 thread each). Reported: the stage's
  training seconds (from the trainer, launch excluded) and wall seconds of the stage (launch and
  process start included, from MLflow's run times), the final epoch's training loss of each, and the
  validation accuracy.
- ``registry``: 30 registrations one after another as the register stage makes them (a model version, a
  tag, the champion alias) through ``MlflowClient``: the MLflow server on PostgreSQL (``flows.team.up``,
  all on 127.0.0.1) against a local SQLite store.

Medians over ``--repeats`` (ddp: over 2). Each run is saved as it finishes (results/scaleout_runs.jsonl)
and skipped on a rerun; the table goes to results/scaleout.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()  # OMP_WAIT_POLICY=PASSIVE, NLTK_DATA, before torch loads

SHARED = Path(os.environ.get("LOWLM_SHARED", ROOT.parent / "shared")).resolve()
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache" / "scaleout"
RUNS = RESULTS / "scaleout_runs.jsonl"
RUNNERS = {"thread-1": {"runner": "thread", "workers": 1}, "thread-2": {"runner": "thread", "workers": 2},
           "dask-1": {"runner": "dask", "workers": 1}, "dask-2": {"runner": "dask", "workers": 2}}
AUGMENT_ROWS, ATTACK_ROWS = 40000, 2000


def saved() -> dict:
    done = {}
    if RUNS.exists():
        for line in RUNS.read_text().splitlines():
            row = json.loads(line)
            done[(row["job"], row["runner"], row["repeat"])] = row
    return done


def save(row: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    with RUNS.open("a") as out:
        out.write(json.dumps(row) + "\n")


# -- augmentation and attack shards, in one Prefect flow each ---------------------------------------------
def sst2_split(n: int) -> Path:
    path = CACHE / f"sst2-{n}.parquet"
    if not path.exists():
        import pandas as pd

        frame = pd.read_csv(SHARED / "data" / "sst2" / "train.tsv", sep="\t", quoting=3)
        rows = random.Random(0).sample(range(len(frame)), n)
        pd.DataFrame({"text": frame["sentence"].iloc[rows].tolist(), "label": frame["label"].iloc[rows].astype(str)
                      .tolist()}).to_parquet(path, index=False)
    return path


def trec_victim() -> tuple[dict, Path]:
    """A BiGRU-attention classifier on TREC-6's training carve (saved once), and a split of training rows."""
    import pandas as pd

    from lowlm.config import CorpusConfig, RNNAttentionConfig, TrainConfig
    from lowlm.data.corpus import load_corpus
    from lowlm.inference.classifier import TextClassifier
    from lowlm.models.kinds import build_model
    from lowlm.text.batching import Batches
    from lowlm.text.tokenizer import Tokenizer
    from lowlm.training.objectives import train_classifier
    from lowlm.training.trainer import seed_everything

    folder, split = CACHE / "trec-bigru", CACHE / "trec-train.parquet"
    corpus = load_corpus(CorpusConfig(**_trec_corpus()))
    train = corpus.splits["train"]
    if not (folder / "bundle.json").exists():
        tok = Tokenizer.train(train["text"])
        batches = Batches(tok.encode_batch(train["text"]), train["label"], batch_size=64, shuffle=True, seed=1)
        val = corpus.splits["validation"]
        seed_everything(13)
        net = build_model(RNNAttentionConfig(embedding_dim=64, hidden_dim=64, attention_dim=64), vocab_size=tok.vocab_size,
                          num_labels=len(corpus.labels), words=tok.tokens())
        train_classifier(net, batches, Batches(tok.encode_batch(val["text"]), val["label"], batch_size=256),
                         len(corpus.labels), TrainConfig(epochs=3, lr=3e-3, progress=False))
        TextClassifier(net, tok, corpus.labels).save(folder)
    pd.DataFrame({"text": list(train["text"]), "label": [corpus.labels[int(y)] for y in train["label"]]}) \
        .to_parquet(split, index=False)
    return {"model_dir": str(folder), "digest": "trec-bigru"}, split


def _trec_corpus() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "configs" / "trec.yaml").read_text())["corpus"]


def shard_job(job: str, runner: str, repeat: int) -> dict:
    from prefect import flow, task

    @task(name="noop")
    def noop() -> None:
        return None

    from flows.attacking import attack_parts
    from flows.augmenting import _shard_parameters
    from flows.runners import map_shards, task_runner
    from lowlm.config.attack import AttackConfig
    from lowlm.config.augment import AugmentConfig, EdaAugmenter, NoiseAugmenter
    from lowlm.robustness.augment import augmenter_names
    from tasks._cache import WorkFolder
    from tasks.adversarial import merged
    from tasks.augment import augment_shard

    import pandas as pd

    work = WorkFolder(str(CACHE / "work" / f"{job}-{runner}-{repeat}"))  # its own folder: no cached shard
    settings = RUNNERS[runner]

    @flow(name=f"scaleout-{job}")
    def measured() -> dict:
        if settings["runner"] == "dask":  # the cluster's start alone (up to a first task's result), as every stage pays it
            begin = time.perf_counter()
            with task_runner(AugmentConfig(**settings)) as started:
                started.submit(noop, {}).result()
            start_seconds = time.perf_counter() - begin
        else:
            start_seconds = 0.0
        begin = time.perf_counter()
        if job == "augment":
            config = AugmentConfig(shard_rows=1000, seed=3, augmenters=[EdaAugmenter(ratio=1),
                                                                       NoiseAugmenter(kind="synonym", ratio=1)],
                                   **settings)
            named = list(zip(augmenter_names(config.augmenters), config.augmenters))
            parts = map_shards(work(augment_shard), _shard_parameters(
                str(sst2_split(AUGMENT_ROWS)), f"sst2-{AUGMENT_ROWS}", "text", AUGMENT_ROWS, named, config, {}, work),
                config, what="augment")
            wall = time.perf_counter() - begin
            frames = [pd.read_parquet(p["path"]) for p in sorted(parts, key=lambda p: p["shard"])]
            rows = pd.concat(frames, ignore_index=True)
            return {"items": AUGMENT_ROWS, "made": len(rows), "wall_seconds": wall, "start_seconds": start_seconds,
                    "fingerprint": str(pd.util.hash_pandas_object(rows, index=False).sum())}
        model, split = trec_victim()
        config = AttackConfig(method="word", shard_rows=250, **settings)
        parts = attack_parts(model, {"train": (str(split), "trec-train", ATTACK_ROWS)}, config, work)["train"]
        wall = time.perf_counter() - begin
        run, _ = merged(parts)
        s = run.summary()
        return {"items": s["examples"], "success_rate": s["success_rate"], "wall_seconds": wall,
                "start_seconds": start_seconds, "fingerprint": str(pd.util.hash_pandas_object(run.table(),
                                                                                              index=False).sum())}

    if job == "augment":  # WordNet and nlpaug loaded once, untimed, as a long-running worker has them
        from lowlm.robustness.augment import augment_texts

        augment_texts(["a warm up sentence with some words"], [EdaAugmenter(ratio=1)], seed=0)
    row = measured()
    row["per_second"] = row["items"] / row["wall_seconds"]
    return row


# -- DDP: two runs of the train stage through the CLI ------------------------------------------------------
def ddp_job(runner: str, repeat: int) -> dict:
    from mlflow import MlflowClient

    store = CACHE / "ddp" / f"{runner}-{repeat}"
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    settings = {"model.kind": "rnn_attention", "model.dropout": 0.0, "model.char_dim": 0, "train.epochs": 3,
                "train.batch_size": 64, "train.patience": 0, "train.progress": False, "augment.enabled": False,
                "attack.enabled": False, "attack.generate.enabled": False, "work_dir": str(store / "work"),
                "registry.model_name": "trec6-ddp"}
    if runner == "ddp-2":
        settings["train.distributed.procs_per_node"] = 2
    else:
        settings["train.threads"] = 2
    command = [str(ROOT / ".venv" / "bin" / "lowlm"), "run", "trec",
               *[a for k, v in settings.items() for a in ("--set", f"{k}={v}")]]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)
    with (store / "run.log").open("w") as out:
        code = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"ddp {runner}: exit {code}; see {store / 'run.log'}")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("lowlm-trec")
    (train,) = client.search_runs([experiment.experiment_id], filter_string="tags.`lowlm.stage` = 'train'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    losses = sorted(client.get_metric_history(train.info.run_id, "train_loss"), key=lambda m: m.step)
    m = train.data.metrics
    return {"items": 1, "train_seconds": m["train_seconds"],
            "stage_seconds": (train.info.end_time - train.info.start_time) / 1000,
            "final_train_loss": losses[-1].value, "losses": [x.value for x in losses],
            "val_accuracy": m["best_val_accuracy"], "processes": int(m.get("distributed_processes", 1))}


# -- registry writes: the MLflow server on PostgreSQL against the local SQLite store ----------------------
REGISTRY_WRITES = 30


def registry_job(runner: str, repeat: int) -> dict:
    """``REGISTRY_WRITES`` registrations as the register stage makes them (a version, a tag, the alias), one
    after another, through MlflowClient: against the team set-up (``flows.team.up``: PostgreSQL, the MLflow
    server on 127.0.0.1) or a SQLite file store."""
    import shutil
    import tempfile

    from mlflow import MlflowClient

    from flows.servers import free_port
    from flows.team import down, up

    folder = Path(tempfile.mkdtemp(prefix="lowlm-scaleout-"))
    folder.chmod(0o755)  # the postgres user enters it
    try:
        if runner == "postgres-server":
            state = up(folder, free_port(), free_port(), free_port())
            uri = state["environment"]["MLFLOW_TRACKING_URI"]
        else:
            uri = f"sqlite:///{folder / 'mlflow.db'}"
        try:
            client = MlflowClient(uri)
            experiment = client.create_experiment(f"registry-{repeat}")
            run = client.create_run(experiment)
            name = f"writes-{repeat}"
            client.create_registered_model(name)
            begin = time.perf_counter()
            for i in range(REGISTRY_WRITES):
                version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
                client.set_model_version_tag(name, version.version, "lowlm.model_digest", f"{i:016d}")
                client.set_registered_model_alias(name, "champion", version.version)
            wall = time.perf_counter() - begin
        finally:
            if runner == "postgres-server":
                down(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"items": REGISTRY_WRITES, "wall_seconds": wall, "per_second": REGISTRY_WRITES / wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=["augment", "attack", "ddp", "registry"])
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    done = saved()
    plan = [(job, runner, r) for job in ("augment", "attack") if job in args.only for runner in RUNNERS
            for r in range(args.repeats)]
    plan += [("ddp", runner, r) for runner in ("one-process", "ddp-2") if "ddp" in args.only for r in range(2)]
    plan += [("registry", runner, r) for runner in ("sqlite", "postgres-server") if "registry" in args.only
             for r in range(args.repeats)]
    for job, runner, repeat in plan:
        if (job, runner, repeat) in done:
            continue
        print(f"{job} {runner} #{repeat} ...", flush=True)
        jobs = {"ddp": ddp_job, "registry": registry_job}
        row = jobs[job](runner, repeat) if job in jobs else shard_job(job, runner, repeat)
        row.update(job=job, runner=runner, repeat=repeat)
        save(row)
        done[(job, runner, repeat)] = row
    report(done)
    return 0


def report(done: dict) -> None:
    def median(job, runner, key):
        values = [r[key] for (j, n, _), r in done.items() if j == job and n == runner]
        return statistics.median(values) if values else None

    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "shards": {}, "ddp": {}}
    lines = ["| work | runner | items | wall s (median) | of which cluster start s | items/s | x thread-1 | "
             "items/s after the start | same output |", "|---|---|---|---|---|---|---|---|---|"]
    for job, unit in (("augment", "sentences"), ("attack", "examples")):
        anchor = median(job, "thread-1", "per_second")
        prints = {r["fingerprint"] for (j, n, _), r in done.items() if j == job and n == "thread-1"}
        for runner in RUNNERS:
            rate = median(job, runner, "per_second")
            if rate is None:
                continue
            same = {r["fingerprint"] for (j, n, _), r in done.items() if j == job and n == runner} == prints
            entry = {"items": median(job, runner, "items"), "wall_seconds": median(job, runner, "wall_seconds"),
                     "start_seconds": median(job, runner, "start_seconds"), "per_second": rate,
                     "vs_thread_1": rate / anchor if anchor else None, "same_output_as_thread_1": same}
            entry["per_second_after_start"] = entry["items"] / (entry["wall_seconds"] - entry["start_seconds"])
            result["shards"].setdefault(job, {})[runner] = entry
            lines.append(f"| {job} ({unit}) | {runner} | {entry['items']:.0f} | {entry['wall_seconds']:.1f} | "
                         f"{entry['start_seconds']:.1f} | {rate:.1f} | {entry['vs_thread_1']:.2f} | "
                         f"{entry['per_second_after_start']:.1f} | {'yes' if same else 'NO'} |")
    ddp_lines = ["| training | processes | train s (median) | stage s | x one process | final train loss | val acc |",
                 "|---|---|---|---|---|---|---|"]
    base = median("ddp", "one-process", "train_seconds")
    for runner in ("one-process", "ddp-2"):
        seconds = median("ddp", runner, "train_seconds")
        if seconds is None:
            continue
        entry = {"train_seconds": seconds, "stage_seconds": median("ddp", runner, "stage_seconds"),
                 "final_train_loss": median("ddp", runner, "final_train_loss"),
                 "val_accuracy": median("ddp", runner, "val_accuracy"), "vs_one_process": seconds / base}
        result["ddp"][runner] = entry
        ddp_lines.append(f"| {runner} | {2 if runner == 'ddp-2' else 1} | {seconds:.1f} | {entry['stage_seconds']:.1f} | "
                         f"{entry['vs_one_process']:.2f} | {entry['final_train_loss']:.5f} | "
                         f"{100 * entry['val_accuracy']:.2f} |")
    registry_lines = ["| registry | writes (version + tag + alias) | seconds (median) | writes/s |", "|---|---|---|---|"]
    for runner in ("sqlite", "postgres-server"):
        rate = median("registry", runner, "per_second")
        if rate is None:
            continue
        result.setdefault("registry", {})[runner] = {"writes": REGISTRY_WRITES, "per_second": rate,
                                                     "wall_seconds": median("registry", runner, "wall_seconds")}
        registry_lines.append(f"| {runner} | {REGISTRY_WRITES} | {median('registry', runner, 'wall_seconds'):.2f} | "
                              f"{rate:.1f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaleout.json").write_text(json.dumps(result, indent=1))
    text = "\n\n".join("\n".join(t) for t in (lines, ddp_lines, registry_lines)) + "\n"
    (RESULTS / "scaleout.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
