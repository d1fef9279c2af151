"""REST latency of a registered model: lowlm's server (MLflow's scoring app behind lowlm's request
front) against the anchor, a bare `mlflow models serve` of the same version, side by side.

    .venv/bin/python benchmarks/rest_latency.py --model models:/intents@champion --repeats 3

Both servers run on 127.0.0.1 with one worker, at the same time, and are asked in alternation, so
machine noise hits both alike. Per repeat and batch size (1 and 64 texts a request): p50 and p95 of
`requests` sequential requests after a warm-up. Each finished repeat is saved to
benchmarks/results/rest_latency.json at once; a rerun resumes from what is there. The table shows
medians over repeats and the ratio ours / anchor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()

from flows.servers import BIN, HOST, Server, _start, free_port, start_model_server  # noqa: E402
from tasks._stage import tracking_uri  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "rest_latency.json"
TEXTS = ["my card was declined at the till", "how do I reset my password", "I want a refund for the kettle",
         "send money to my landlord", "my card has not arrived yet", "why was I charged twice"]


def anchor_server(model_uri: str, port: int, log_dir: Path, uri: str, env: dict | None = None) -> Server:
    """A bare ``mlflow models serve`` of ``model_uri`` on 127.0.0.1:``port``, one worker (``env`` added)."""
    url = f"http://{HOST}:{port}"
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local", "--host", HOST,
               "--port", str(port), "--workers", "1"]
    return _start("anchor model server", command, url, f"{url}/ping", log_dir / f"anchor-{port}.log",
                  {"MLFLOW_TRACKING_URI": uri, **(env or {})})


def timed(url: str, body: bytes) -> float:
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models:/intents@champion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    uri = tracking_uri()
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    key = {"model": args.model, "requests": args.requests}
    runs = [r for r in saved["runs"] if r["key"] == key]
    logs = Path(tempfile.mkdtemp(prefix="lowlm-bench-"))
    servers = {}
    try:
        servers = {"lowlm": start_model_server(args.model, free_port(), logs, uri),
                   "anchor": anchor_server(args.model, free_port(), logs, uri)}
        for server in servers.values():
            server.wait(240)
        for repeat in range(len(runs), args.repeats):
            result = {"key": key, "repeat": repeat}
            for batch in (1, 64):
                body = json.dumps({"inputs": [TEXTS[i % len(TEXTS)] for i in range(batch)]}).encode()
                for server in servers.values():  # warm-up
                    for _ in range(20):
                        timed(server.url, body)
                times = {name: [] for name in servers}
                for _ in range(args.requests):
                    for name, server in servers.items():  # alternate: noise hits both
                        times[name].append(timed(server.url, body))
                for name, values in times.items():
                    result[f"{name}_b{batch}_p50_ms"] = 1000 * statistics.median(values)
                    result[f"{name}_b{batch}_p95_ms"] = 1000 * percentile(values, 0.95)
            runs.append(result)
            saved["runs"] = [r for r in saved["runs"] if r["key"] != key] + runs
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(saved, indent=1))
            print(f"repeat {repeat} saved to {RESULTS}")
    finally:
        for server in servers.values():
            server.stop()
    print(f"\n{args.model}, {args.requests} requests per cell, medians over {len(runs)} repeats (ms)")
    print(f"{'batch':>5}  {'stat':>4}  {'lowlm':>8}  {'anchor':>8}  {'ratio':>6}")
    for batch in (1, 64):
        for stat in ("p50", "p95"):
            ours = statistics.median(r[f"lowlm_b{batch}_{stat}_ms"] for r in runs)
            anchor = statistics.median(r[f"anchor_b{batch}_{stat}_ms"] for r in runs)
            print(f"{batch:>5}  {stat:>4}  {ours:8.2f}  {anchor:8.2f}  {ours / anchor:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
