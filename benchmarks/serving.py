"""Serving speed of the registered champions: the raw bundle, the pyfunc, and REST, beside fastText.

    .venv/bin/python benchmarks/serving.py                      # classifier, bag of n-grams, translator
    .venv/bin/python benchmarks/serving.py --models classifier --requests 100 --repeats 3

For each model (``--models``), in one process and at the same time:

- ``raw``: the bundle's own ``serve``, on the bundle the loaded pyfunc holds (what its ``predict`` calls);
- ``pyfunc``: ``mlflow.pyfunc.load_model(URI).predict`` on a ``text`` frame (MLflow's schema and
  parameter checks, our input checks, the output frame);
- ``rest``: lowlm's model server (``lowlm serve-model``: MLflow's scoring app behind our request front),
  one worker, ``{"inputs": [...]}`` over HTTP on 127.0.0.1;
- ``mlflow-serve``: a bare ``mlflow models serve`` of the same version, one worker (the REST anchor);
- ``fasttext`` (the bag of n-grams only): ``fasttext.train_supervised`` on the same training rows with
  the bag's settings (dim, word n-grams, buckets), timed in ``predict`` on the same texts as fastText
  reads them (lowercased, punctuation split: ``bag_vs_fasttext.fasttext_text``, not timed).

Every path runs torch with ``--threads`` intra-op threads (default 1: a client and two servers share
the cores; torch's default, one per core each, oversubscribes them). Each cell: ``requests`` calls of
1 text and of 64 texts (the corpus's test texts, cycled) after a warm-up, the paths asked in
alternation so that machine noise hits all alike; p50, p95 and throughput
(texts per second at the median). Medians over ``repeats``; each finished repeat is appended to
``benchmarks/results/serving_runs.jsonl`` and a rerun resumes. Results: ``serving.json`` (per model and
path: ``b1_p50_ms``, ``b1_p95_ms``, ``b64_p50_ms``, ``b64_p95_ms``, ``b64_texts_per_second``, and the
overhead of each path over ``raw``) and ``serving.md``.

Models: the registry's champions in the project's store (``MLFLOW_TRACKING_URI`` or mlruns/), trained
by the pipelines when missing: ``intents`` (``lowlm run sample``, the BiGRU-attention classifier),
``intents-bag`` (the same preset with ``model.kind=bag_of_ngrams``) and ``translate-sample``
(``lowlm run translate-sample``, the GRU encoder-decoder with attention).

Run it on quiet cores: with CPU-bound work beside it the scheduler favours the servers, which sleep
between requests, over the in-process paths, and REST comes out faster than the raw bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from flows.servers import BIN, free_port, start_model_server  # noqa: E402
from lowlm.config import load_pipeline_config  # noqa: E402
from rest_latency import anchor_server, percentile  # noqa: E402
from tasks._stage import tracking_uri  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = RESULTS / "serving_runs.jsonl"
BATCHES = (1, 64)
# name -> (registered model, how the pipeline makes it when the registry has no champion)
MODELS = {
    "classifier": ("intents", ["sample"]),
    "bag": ("intents-bag", ["sample", "--set", "model.kind=bag_of_ngrams", "--set", "registry.model_name=intents-bag"]),
    "translator": ("translate-sample", ["translate-sample"]),
}
# the files whose edits change what the pyfunc and servers do per request: a record made with others is stale
CODE = ["lowlm/serving/pyfunc.py", "lowlm/inference/bundle.py", "lowlm/inference/classifier.py",
        "lowlm/inference/translator.py", "flows/model_server.py", "lowlm/text/tokenizer.py",
        "lowlm/text/batching.py"]


def code_digest() -> str:
    h = hashlib.sha256()
    for f in CODE:
        h.update((ROOT / f).read_bytes())
    return h.hexdigest()[:12]


# -- the models -------------------------------------------------------------------------------------------

def champion(name: str, uri: str) -> str:
    """``models:/NAME/VERSION`` of the champion (trained by its pipeline first when there is none)."""
    registered, command = MODELS[name]
    client = mlflow.MlflowClient(uri)
    try:
        version = client.get_model_version_by_alias(registered, "champion").version
    except mlflow.exceptions.MlflowException:
        print(f"[{name}] no champion of {registered} in {uri}: lowlm run {' '.join(command)}", flush=True)
        subprocess.run([str(BIN / "lowlm"), "run", *command], cwd=ROOT, check=True,
                       env={**os.environ, "MLFLOW_TRACKING_URI": uri})
        version = client.get_model_version_by_alias(registered, "champion").version
    return f"models:/{registered}/{version}"


def test_texts(name: str) -> list[str]:
    """The test split's texts (sources for the translator) of the preset the model was trained on."""
    preset = load_pipeline_config(MODELS[name][1][0])
    if preset.task == "seq2seq":
        from lowlm.data.pairs import load_pairs

        return [s for s, _ in load_pairs(preset.corpus).splits["test"]]
    from lowlm.data.corpus import load_corpus

    return list(load_corpus(preset.corpus).splits["test"]["text"])


def fasttext_anchor(bundle, workdir: Path, preset: str):
    """fastText trained on the bag's own training rows (``preset``'s corpus) with its settings."""
    import fasttext
    from bag_vs_fasttext import FASTTEXT, fasttext_text
    from lowlm.data.corpus import load_corpus

    corpus = load_corpus(load_pipeline_config(preset).corpus)
    train = corpus.splits["train"].to_dict()
    path = workdir / "train.txt"
    with open(path, "w", encoding="utf-8") as fh:
        for text, label in zip(fasttext_text(train["text"]), train["label"]):
            fh.write(f"__label__{label} {text}\n")
    cfg = bundle.model.config
    model = fasttext.train_supervised(str(path), thread=1, seed=13, verbose=0, **(FASTTEXT | {
        "dim": cfg.embedding_dim, "wordNgrams": cfg.ngrams, "bucket": max(cfg.buckets, 1)}))
    return model, fasttext_text


# -- the paths --------------------------------------------------------------------------------------------

def rest_call(url: str):
    def call(texts: list[str]) -> None:
        body = json.dumps({"inputs": texts}).encode()
        request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: HTTP {response.status}")
    return call


def measure(name: str, model_uri: str, texts: list[str], uri: str, repeats: int, requests: int, key: dict) -> list[dict]:
    done = [r for r in records() if r["key"] == key]
    if len(done) >= repeats:
        print(f"[{name}] {len(done)} repeats on record", flush=True)
        return done
    workdir = Path(tempfile.mkdtemp(prefix="lowlm-serving-"))
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    schema = pyfunc.metadata.get_params_schema()
    params = {p.name: p.default for p in schema.params} if schema else {}  # what the pyfunc serves by default
    bundle = pyfunc.unwrap_python_model().bundle  # the very bundle the pyfunc calls
    paths = {"raw": lambda batch: bundle.serve(batch, params),
             "pyfunc": lambda batch: pyfunc.predict(pd.DataFrame({"text": batch}))}
    if getattr(getattr(bundle.model, "config", None), "kind", None) == "bag_of_ngrams":
        ft, prepare = fasttext_anchor(bundle, workdir, MODELS[name][1][0])
        prepared = dict(zip(texts, prepare(texts)))
        paths["fasttext"] = lambda batch: ft.predict([prepared[t] for t in batch])
    servers = []
    try:
        env = {"OMP_NUM_THREADS": str(key["threads"])}  # torch's intra-op threads in the servers, as in here
        servers = [start_model_server(model_uri, free_port(), workdir, uri, env=env),
                   anchor_server(model_uri, free_port(), workdir, uri, env)]
        for server in servers:
            server.wait(300)
        paths["rest"], paths["mlflow-serve"] = rest_call(servers[0].url), rest_call(servers[1].url)
        for repeat in range(len(done), repeats):
            record = {"key": key, "model": name, "repeat": repeat, "model_uri": model_uri}
            for size in BATCHES:
                batch = [texts[i % len(texts)] for i in range(size)]
                for call in paths.values():  # warm-up
                    for _ in range(10):
                        call(batch)
                times = {p: [] for p in paths}
                for i in range(requests):
                    batch = [texts[(i * size + j) % len(texts)] for j in range(size)]
                    for p, call in paths.items():  # in alternation: machine noise hits every path alike
                        start = time.perf_counter()
                        call(batch)
                        times[p].append(time.perf_counter() - start)
                for p, values in times.items():
                    record[f"{p}:b{size}_p50_ms"] = 1000 * statistics.median(values)
                    record[f"{p}:b{size}_p95_ms"] = 1000 * percentile(values, 0.95)
            save(record)
            done.append(record)
            print(f"[{name}] repeat {repeat} saved: " + ", ".join(
                f"{p} b1 {record[f'{p}:b1_p50_ms']:.2f} ms / b64 {record[f'{p}:b64_p50_ms']:.2f} ms" for p in paths),
                flush=True)
    finally:
        for server in servers:
            server.stop()
    return done


def records() -> list[dict]:
    return [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()] if RUNS.exists() else []


def save(record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with RUNS.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


# -- the report -------------------------------------------------------------------------------------------

def summarise(runs: list[dict]) -> dict:
    paths = sorted({k.split(":")[0] for r in runs for k in r if ":b" in k}, key=lambda p: (
        ["raw", "pyfunc", "rest", "mlflow-serve", "fasttext"].index(p), p))
    out = {"model_uri": runs[0]["model_uri"], "repeats": len(runs), "paths": {}}
    for p in paths:
        cell = {stat: statistics.median(r[f"{p}:{stat}"] for r in runs)
                for stat in ("b1_p50_ms", "b1_p95_ms", "b64_p50_ms", "b64_p95_ms")}
        cell["b64_texts_per_second"] = 64 / (cell["b64_p50_ms"] / 1000)
        out["paths"][p] = cell
    raw = out["paths"]["raw"]
    for p, cell in out["paths"].items():
        cell["b1_over_raw_ms"] = cell["b1_p50_ms"] - raw["b1_p50_ms"]
        cell["b64_over_raw_ms"] = cell["b64_p50_ms"] - raw["b64_p50_ms"]
    return out


def markdown(results: dict, settings: dict) -> str:
    lines = [f"Per cell: {settings['requests']} requests after 10 warm-up calls, paths in alternation; medians over "
             f"the repeats; torch threads {settings['threads']}; code {settings['code']}.", "",
             "| model | path | batch 1 p50 ms | batch 1 p95 ms | batch 64 p50 ms | batch 64 p95 ms | batch 64 texts/s "
             "| over raw, batch 1 ms | over raw, batch 64 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for p, c in res["paths"].items():
            lines.append(f"| {name} ({res['model_uri'].removeprefix('models:/')}) | {p} | {c['b1_p50_ms']:.2f} | "
                         f"{c['b1_p95_ms']:.2f} | {c['b64_p50_ms']:.2f} | {c['b64_p95_ms']:.2f} | "
                         f"{c['b64_texts_per_second']:.0f} | {c['b1_over_raw_ms']:+.2f} | {c['b64_over_raw_ms']:+.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch's threads, in this process and in each server (OMP_NUM_THREADS)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    settings = {"requests": args.requests, "threads": args.threads, "code": code_digest()}
    results = {}
    for name in args.models:
        model_uri = champion(name, uri)
        key = {"model_uri": model_uri, **settings}
        results[name] = summarise(measure(name, model_uri, test_texts(name), uri, args.repeats, args.requests, key))
    saved = json.loads((RESULTS / "serving.json").read_text()) if (RESULTS / "serving.json").exists() else {}
    saved = {**saved, **results, "settings": settings}
    (RESULTS / "serving.json").write_text(json.dumps(saved, indent=1))
    table = markdown({k: v for k, v in saved.items() if k != "settings"}, settings)
    (RESULTS / "serving.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
