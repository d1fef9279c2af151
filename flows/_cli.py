"""The command line shared by the flows: a preset or YAML path, ``--set key=value`` overrides."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from lowlm.config import load_pipeline_config, parse_override
from tasks._stage import tracking_uri


def run_flow_cli(flow, config_model, argv: list[str] | None, prog: str, doc: str, default_preset: str,
                 headline: Callable[[dict], str]) -> int:
    """Parse arguments, run ``flow`` on the validated config and print where the model went.

    Returns 2 for a bad preset or setting, 1 when the pipeline fails (with the stage's message).
    """
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", nargs="?", default=default_preset, help="preset name under configs/ or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set train.epochs=3 (repeatable)")
    args = parser.parse_args(argv)
    try:
        config = load_pipeline_config(args.preset, dict(parse_override(o) for o in args.overrides), config_model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = flow(config, return_state=True)
    if not state.is_completed():
        try:
            state.result()
        except Exception as exc:  # the stage's own message names the file, row or field
            print(f"error: the pipeline failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    result = state.result()
    model = result["model"]
    print("\n" + "=" * 72)
    print(headline(result["metrics"]))
    print(f"registered model: {model['name']}  version {model['version']}  alias {model['alias']}")
    print(f"  ({model['reason']})")
    print(f"load it:  mlflow.pyfunc.load_model('models:/{model['name']}@{model['alias']}')")
    print(f"browse:   .venv/bin/mlflow ui --backend-store-uri {tracking_uri()} --host 127.0.0.1 --port 5000")
    return 0
