"""`lowlm`: run pipelines, predict with registered models, add data, serve deployments, open the UIs.

\b
    lowlm run sample --set train.epochs=3          run a preset (or a YAML file) in this process
    lowlm run sample --deployment                  ... or as a run of its served deployment
    lowlm run sample --resume                      continue an interrupted training from its checkpoint
    lowlm sweep trec --trials 16                   Optuna trials (TPE, median pruning); the best registered
    lowlm compare trec models:/trec6/1 models:/trec6@champion    several versions side by side
    lowlm predict models:/intents@champion "where is my card"    (digests verified first)
    lowlm serve-model models:/intents@champion     REST on 127.0.0.1:5001 (verified, inputs checked)
    lowlm data add new_rows.csv                    queue data for the next retrain (and tell Prefect)
    lowlm retrain sample                           merge new data; retrain when the data changed
    lowlm serve                                    serve every deployment (retrain on a cron schedule)
    lowlm ui                                       Prefect UI + MLflow UI on 127.0.0.1 until Ctrl-C
    lowlm models                                   registry versions with aliases and key metrics
    lowlm models promote intents 3 --reason "..."  make a version champion (rollback: the previous one)
    lowlm gc --dry-run                             stage outputs no version or recent cache entry needs

Run it from the project folder: presets, data paths and the MLflow store (sqlite:///mlruns/mlflow.db
unless MLFLOW_TRACKING_URI says otherwise) are relative to it. Exit codes: 0 done, 1 the job
failed, 2 bad arguments or input, 130 stopped (Ctrl-C, SIGTERM); one error line each, the full
traceback in .lowlm/logs/.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help=__doc__, no_args_is_help=True, rich_markup_mode=None, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Data for retraining: add files, list what is waiting.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DEFAULT_PREFECT_PORT = 4200
DEFAULT_MLFLOW_PORT = 5000
LOG_DIR = Path(".lowlm") / "logs"

Overrides = Annotated[list[str], typer.Option("--set", metavar="KEY=VALUE",
                                              help="override a setting, e.g. --set train.epochs=3 (repeatable)")]


def fail(message: str, code: int = 2) -> None:
    """One ``error:`` line (credentials masked), then exit ``code``: 2 bad input, 1 the job failed."""
    from flows.runtime import mask

    typer.echo(f"error: {mask(message)}", err=True)
    raise typer.Exit(code)


def _overrides(items: list[str]) -> dict:
    from lowlm.config import parse_override

    try:
        return dict(parse_override(o) for o in items)
    except ValueError as exc:
        fail(str(exc))


_CHECKED_STORES: set[str] = set()


def _tracking_uri(check: bool = True) -> str:
    """The MLflow store's URI; checked once per process to answer within a few seconds (else one
    ``error:`` line naming it, exit 1)."""
    from flows.runtime import StoreUnavailable, check_store
    from tasks._stage import tracking_uri

    uri = tracking_uri()
    if check and uri not in _CHECKED_STORES:
        try:
            check_store(uri)
        except StoreUnavailable as exc:
            fail(str(exc), 1)
        _CHECKED_STORES.add(uri)
    return uri


# ------------------------------------------------------------------------------------------- run


@app.command()
def run(preset: Annotated[str, typer.Argument(help="preset name under configs/ or a YAML path")],
        set_: Overrides = [],  # noqa: B006 (typer reads the default)
        deployment: Annotated[bool, typer.Option(
            "--deployment", "-d", help="run as a flow run of the served deployment (`lowlm serve`) and wait")] = False,
        deployment_name: Annotated[Optional[str], typer.Option(
            help="--deployment: which one (default classification/sample or seq2seq/translate-sample, by the "
                 "preset's kind)")] = None,
        timeout: Annotated[float, typer.Option(help="--deployment: seconds to wait for the run")] = 3600,
        resume: Annotated[bool, typer.Option(
            "--resume", help="continue an interrupted training from its last checkpoint (same result as an "
                             "uninterrupted run)")] = False) -> None:
    """Run the pipeline a preset describes (classification or seq2seq, as its `task` declares)."""
    from lowlm.config import load_pipeline_config

    try:
        config = load_pipeline_config(preset, _overrides(set_))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if deployment:
        name = deployment_name or DEFAULT_DEPLOYMENTS[config.task]
        raise typer.Exit(_run_deployment(name, {"config": config.model_dump(mode="json")}, timeout))
    raise typer.Exit(_run_here(config, resume))


DEFAULT_DEPLOYMENTS = {"classification": "classification/sample", "seq2seq": "seq2seq/translate-sample"}


@app.command()
def validate(preset: Annotated[str, typer.Argument(help="preset name under configs/ or a YAML path")],
             set_: Overrides = []) -> None:  # noqa: B006
    """Check a config and every corpus it names (read, checked, split) without training: exit 0 or 2."""
    from lowlm.config import load_pipeline_config

    try:
        config = load_pipeline_config(preset, _overrides(set_))
        typer.echo(f"config: {preset} is a valid {config.task} pipeline (digest {config.digest()})")
        if config.task == "lm":
            from lowlm.data.unlabelled import load_texts

            texts = load_texts(config.corpus)
            typer.echo("corpus: " + ", ".join(f"{name} {len(rows)} texts" for name, rows in texts.splits.items())
                       + f"; dropped {texts.dropped}")
        elif config.task == "qa":
            from lowlm.data.squad import load_qa

            data = load_qa(config.corpus)
            typer.echo("corpus: " + ", ".join(f"{name} {len(rows)} questions ({len(data.articles[name])} articles)"
                                              for name, rows in data.splits.items())
                       + (f"; skipped {dict(data.skipped)}" if data.skipped else ""))
        elif config.task == "seq2seq":
            from lowlm.data.pairs import load_pairs

            pairs = load_pairs(config.corpus)
            typer.echo("corpus: " + ", ".join(f"{name} {len(rows)} pairs" for name, rows in pairs.splits.items()))
            for name, dropped in pairs.filtered.items():
                if any(dropped.values()):
                    typer.echo(f"  {name}: dropped {dropped}")
        else:
            from lowlm.data.corpus import load_corpus

            corpora = [("corpus", config.corpus)]
            if config.fewshot.enabled:
                corpora.append(("fewshot.corpus", config.fewshot.corpus))
            for what, cfg in corpora:
                corpus = load_corpus(cfg)
                shown = ", ".join(corpus.labels[:8]) + (f", ... ({len(corpus.labels)} in all)"
                                                         if len(corpus.labels) > 8 else "")
                sizes = ", ".join(f"{name} {len(split)} rows" for name, split in corpus.splits.items())
                typer.echo(f"{what}: {sizes}; {len(corpus.labels)} labels: {shown}")
    except (FileNotFoundError, ValueError) as exc:  # CorpusError, PairCorpusError and config errors
        fail(str(exc))
    typer.echo("ok: nothing was trained or logged")


def _use_running_prefect(port: int | None = None) -> str | None:
    """With no PREFECT_API_URL, a Prefect server already answering on 127.0.0.1:PORT (`lowlm ui`,
    `lowlm serve`; PORT is LOWLM_PREFECT_PORT, default 4200) is used instead of a temporary one, which
    costs 10-30 s to start; returns its URL."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    port = port or int(os.environ.get("LOWLM_PREFECT_PORT") or DEFAULT_PREFECT_PORT)
    from flows.servers import http_ok

    url = f"http://127.0.0.1:{port}/api"
    if http_ok(f"{url}/health", timeout=1.0):
        os.environ["PREFECT_API_URL"] = url  # read when prefect loads its settings: before the flow imports
        return url
    return None


def _run_here(config, resume: bool = False) -> int:
    """Run the config's pipeline in this process; print the headline metrics and where the model went.

    Exit code 0 done, 2 when the run stopped on bad input (corpus, bundle, model URI), 1 when the job
    itself failed; either way one ``error:`` line, the full traceback in the run's log file."""
    from flows.pipelines import FLOWS

    result, uri = _run_flow(lambda: FLOWS[config.task](config, resume=resume, return_state=True))
    _report(config, result, uri)
    return 0


def _run_flow(start) -> tuple[dict, str]:
    """Start a flow in this process (``start()`` returns its final state) against the checked MLflow store
    and Prefect API; (its result, the store's URI), or one ``error:`` line and the exit code."""
    uri = _tracking_uri()
    _fail_stale_runs(uri)
    url = _use_running_prefect()
    if url:
        from flows.servers import http_ok

        if not http_ok(f"{url.rstrip('/')}/health", timeout=5):
            fail(f"the Prefect API at {url} (PREFECT_API_URL) does not answer; start it (`lowlm ui`) or unset "
                 f"PREFECT_API_URL to use a temporary one", 1)
        typer.echo(f"using the Prefect server at {url}")
    log = _log_tracebacks_to_file()

    try:
        state = start()
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the runs have ended FAILED on the way out
        fail(f"{exc or 'interrupted'}: the MLflow runs ended FAILED; `lowlm run --resume` continues the training "
             f"from its last checkpoint (log: {log})", 130)
    if not state.is_completed():
        try:
            state.result()
        except Exception as exc:  # the stage's own message names the file, row or field
            fail(f"the pipeline failed: {describe_failure(exc)} (full traceback in {log})", exit_code(exc))
        fail(f"the pipeline ended {state.name}: {state.message} (log: {log})", 1)
    return state.result(), uri


def _report(config, result: dict, uri: str) -> None:
    """The headline test metrics, the registered version and how to load and browse it."""
    from flows.pipelines import headline

    model = result["model"]
    typer.echo("\n" + "=" * 72)
    typer.echo(headline(config.task, result["metrics"]))
    typer.echo(f"registered model: {model['name']}  version {model['version']}  alias {model['alias']}")
    typer.echo(f"  ({model['reason']})")
    if result.get("fewshot_model"):
        few = result["fewshot_model"]
        typer.echo(f"few-shot model:   {few['name']}  version {few['version']}  alias {few['alias']}  "
                   f"(few-shot accuracy {result['metrics']['fewshot_accuracy']:.4f})")
    typer.echo(f"load it:  lowlm.serving.pyfunc.load('models:/{model['name']}@{model['alias']}').predict([...])")
    from flows.runtime import mask

    typer.echo(f"browse:   .venv/bin/mlflow ui --backend-store-uri {mask(uri)} --host 127.0.0.1 --port 5000")


@app.command()
def sweep(preset: Annotated[str, typer.Argument(help="classification preset name under configs/ or a YAML path")],
          trials: Annotated[Optional[int], typer.Option(help="finished trials the study should hold (default 16)")]
          = None,
          space: Annotated[Optional[Path], typer.Option(
              help="YAML: space (key -> {low, high, log, type} or {choices}) and sweep settings")] = None,
          workers: Annotated[Optional[int], typer.Option(help="trials at once (default 1)")] = None,
          runner: Annotated[Optional[str], typer.Option(help="thread (default) or dask")] = None,
          address: Annotated[Optional[str], typer.Option(help="dask: a running scheduler, tcp://host:8786")] = None,
          study: Annotated[Optional[str], typer.Option(help="Optuna study name (default: from preset and space)")]
          = None,
          storage: Annotated[Optional[str], typer.Option(
              envvar="LOWLM_SWEEP_STORAGE",
              help="Optuna database URL (default: beside the MLflow store; `lowlm team up` sets LOWLM_SWEEP_STORAGE)")]
          = None,
          set_: Overrides = []) -> None:  # noqa: B006
    """Search a preset's hyperparameters with Optuna (TPE, median pruning); register the best trial's model."""
    from lowlm.config import load_pipeline_config
    from lowlm.config.sweep import check_space, load_sweep_config, space_of

    try:
        config = load_pipeline_config(preset, _overrides(set_))
        settings = load_sweep_config(space, {"trials": trials, "workers": workers, "runner": runner,
                                             "address": address, "study": study, "storage": storage})
        check_space(config, space_of(settings, config))
    except (FileNotFoundError, ValueError) as exc:  # SweepSpaceError is a ValueError
        fail(str(exc))
    from flows.sweep import sweep as sweep_flow

    result, uri = _run_flow(lambda: sweep_flow(config, settings, return_state=True))
    _report(config, result, uri)
    done = result["sweep"]
    typer.echo(f"study {done['study']} ({done['storage']}): {done['trials_complete']} complete, "
               f"{done['trials_pruned']} pruned, {done['trials_fail']} failed; {done['ran']} ran now")
    typer.echo(f"best trial {done['best_trial']}: validation {result['metrics']['best_val']:.4f}  "
               + "  ".join(f"{k}={v}" for k, v in done["best_params"].items()))


@app.command()
def compare(preset: Annotated[str, typer.Argument(help="classification preset whose corpus (test split) scores them")],
            models: Annotated[list[str], typer.Argument(help="registered classifiers: models:/NAME/VERSION or "
                                                             "models:/NAME@alias")],
            workers: Annotated[int, typer.Option(help="models evaluated at once")] = 2,
            runner: Annotated[str, typer.Option(help="thread or dask")] = "thread",
            address: Annotated[Optional[str], typer.Option(help="dask: a running scheduler, tcp://host:8786")] = None,
            attack: Annotated[bool, typer.Option(help="also each under the preset's attack")] = True,
            set_: Overrides = []) -> None:  # noqa: B006
    """Evaluate several registered classifiers side by side on one preset's corpus (and under its attack)."""
    from lowlm.config import load_pipeline_config
    from lowlm.config.stages import CompareConfig

    try:
        config = load_pipeline_config(preset, _overrides(set_))
        settings = CompareConfig(models=models, workers=workers, runner=runner, address=address, attack=attack)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if config.task != "classification":
        fail(f"lowlm compare scores classifiers; {preset} is a {config.task} pipeline")
    from flows.compare import HEADLINE, compare as compare_flow

    result, _ = _run_flow(lambda: compare_flow(config, settings, return_state=True))
    shown = [k for k in HEADLINE if any(k in r for r in result["models"])]
    typer.echo("\n" + "  ".join(["model".ljust(32), *shown]))
    for row in result["models"]:
        typer.echo("  ".join([row["model"][:32].ljust(32), *(f"{row[k]:.4f}".ljust(len(k)) if k in row else
                                                              "-".ljust(len(k)) for k in shown)]))


def describe_failure(exc: BaseException) -> str:
    """``Type: message``; for a full disk the ``DiskFull`` in the chain (which names the path and the
    space left), or a plain "the disk is full" before what the writer said."""
    from lowlm.files import DiskFull, is_disk_full

    cause = exc
    while cause is not None and not isinstance(cause, DiskFull):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return f"the disk is full: {cause.strerror}"
    if is_disk_full(exc):
        return f"the disk is full (no space left on device): {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def exit_code(exc: BaseException) -> int:
    """2 when ``exc`` (or what caused it) is bad input: a corpus, a bundle, a config, a file or a model
    URI that does not exist; 1 for anything else (the job itself failed)."""
    from mlflow.exceptions import MlflowException
    from pydantic import ValidationError

    from lowlm.data.corpus import CorpusError
    from lowlm.inference.bundle import BundleError
    from lowlm.robustness.augment import WordNetMissing
    from lowlm.robustness.backtranslation import LanguageMismatch
    from lowlm.config.sweep import SweepSpaceError
    from lowlm.training.pretrained import PretrainedMismatch
    from tasks.registered import RegisteredRefError

    bad_input = (CorpusError, BundleError, ValidationError, FileNotFoundError, IsADirectoryError, LanguageMismatch,
                 RegisteredRefError, WordNetMissing, PretrainedMismatch, SweepSpaceError)
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, bad_input):
            return 2
        if isinstance(exc, MlflowException) and exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return 2
        exc = exc.__cause__ or exc.__context__
    return 1


def _fail_stale_runs(uri: str) -> None:
    """Runs left RUNNING by a lowlm process on this host that is gone (killed) are marked FAILED."""
    from flows.runtime import fail_stale_runs

    stale = fail_stale_runs(uri)
    if stale:
        typer.echo(f"marked {len(stale)} MLflow run(s) FAILED that a killed lowlm process left RUNNING: "
                   f"{', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}")


def _log_tracebacks_to_file() -> Path:
    """Prefect's log records go to ``.lowlm/logs/run-TIME-PID.log`` in full; the terminal gets them
    without tracebacks (the ``error:`` line at the end says what went wrong)."""
    import logging

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s - %(message)s"))
    names = [None, "prefect"] + [n for n in logging.Logger.manager.loggerDict if n.startswith("prefect.")]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                _without_tracebacks(handler)
    logging.getLogger().addHandler(file_handler)
    return path


def _without_tracebacks(handler) -> None:
    import logging

    if getattr(handler, "_lowlm_short", False):
        return
    original = handler.format

    def short(record):
        if record.exc_info or record.exc_text:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return original(record)

    handler.format, handler._lowlm_short = short, True


def _run_deployment(name: str, parameters: dict, timeout: float) -> int:
    from prefect.deployments import run_deployment

    _require_api()
    typer.echo(f"starting a run of deployment {name} ...")
    try:
        flow_run = run_deployment(name, parameters=parameters, timeout=timeout)
    except Exception as exc:  # unknown deployment, API errors
        fail(f"could not run deployment {name!r}: {exc}", 1)
    state = flow_run.state
    typer.echo(f"flow run {flow_run.name} ({flow_run.id}): {state.name if state else 'unknown'}")
    if state is None or not state.is_completed():
        if state is not None and not state.is_final():
            fail(f"the run is still {state.name} after {timeout:.0f} s (is `lowlm serve` running?)", 1)
        fail(f"the run ended {state.name if state else 'without a state'}: {state.message if state else ''}", 1)
    return 0


def _require_api() -> None:
    from prefect.settings import PREFECT_API_URL

    from flows.servers import http_ok

    url = PREFECT_API_URL.value()
    if not url:
        fail("no Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) and start one with "
             "`lowlm ui` or `lowlm serve`")
    if not http_ok(f"{url.rstrip('/')}/health"):
        fail(f"the Prefect API at {url} does not answer; start it with `lowlm ui` or `lowlm serve`", 1)


# --------------------------------------------------------------------------------------- predict


@app.command()
def predict(model_uri: Annotated[str, typer.Argument(help="e.g. models:/intents@champion or runs:/ID/model")],
            texts: Annotated[Optional[list[str]], typer.Argument(help="texts to classify or translate")] = None,
            file: Annotated[Optional[Path], typer.Option("--file", "-f", help="one text a line ('-' for stdin)")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
            beam_size: Annotated[Optional[int], typer.Option(help="seq2seq: beam size")] = None,
            max_length: Annotated[Optional[int], typer.Option(help="seq2seq: longest output, in tokens")] = None,
            context: Annotated[Optional[str], typer.Option(help="qa: the passage to answer from")] = None,
            question: Annotated[Optional[list[str]], typer.Option(help="qa: a question (repeatable)")] = None,
            encoding: Annotated[str, typer.Option(help="--file: its text encoding")] = "utf-8") -> None:
    """Predict with a registered (or logged) model: labels and scores, generated text, or answers."""
    if context is not None or question:
        _answer(model_uri, context, question or [], as_json)
        return
    inputs = list(texts or [])
    if file is not None:
        if str(file) == "-":
            inputs += [line.rstrip("\n") for line in sys.stdin if line.strip()]
        elif not file.is_file():
            fail(f"{file}: no such file")
        else:
            try:
                text = file.read_text(encoding=encoding)
            except UnicodeDecodeError as exc:
                line = exc.object[:exc.start].count(b"\n") + 1
                fail(f"{file}, line {line}: byte {exc.object[exc.start:exc.start + 1]!r} (offset {exc.start}) is not "
                     f"{encoding}; give --encoding (e.g. latin-1)")
            except LookupError:
                fail(f"--encoding {encoding!r}: not a text encoding Python knows")
            inputs += [line for line in text.splitlines() if line.strip()]
    if not inputs:
        fail("give texts as arguments or --file")
    import mlflow

    from tasks.register import load_registered

    from mlflow.exceptions import MlflowException

    uri = _tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = load_registered(model_uri)
    except Exception as exc:
        fail(f"cannot load {model_uri} from {uri}: {exc}", exit_code(exc))
    params = {k: v for k, v in (("beam_size", beam_size), ("max_length", max_length)) if v is not None}
    try:
        out = model.predict(inputs, params=params or None)
    except (TypeError, ValueError, MlflowException) as exc:  # inputs the model refuses (MLflow's check or ours)
        fail(f"{model_uri} refused the input: {exc}")
    for text, row in zip(inputs, out.to_dict("records")):
        if as_json:
            typer.echo(json.dumps({"text": text, **row}, ensure_ascii=False, default=float))
        elif "generated" in row:
            typer.echo(f"{text}\t{row['generated']}")
        else:
            typer.echo(f"{row['label']}\t{row['score']:.3f}\t{text}")


def _answer(model_uri: str, context: str | None, questions: list[str], as_json: bool) -> None:
    """``lowlm predict MODEL --context TEXT --question Q [--question Q2]``: a reader's answers."""
    if context is None or not questions:
        fail("a reader needs both --context and at least one --question")
    import mlflow
    from mlflow.exceptions import MlflowException

    from tasks.register import load_registered

    uri = _tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = load_registered(model_uri)
    except Exception as exc:
        fail(f"cannot load {model_uri} from {uri}: {exc}", exit_code(exc))
    columns = getattr(model.unwrap_python_model().bundle, "input_columns", ("text",))
    if columns != ("context", "question"):
        fail(f"{model_uri} takes {', '.join(columns)}, not --context/--question: give texts as arguments")
    try:
        out = model.predict([{"context": context, "question": q} for q in questions])
    except (TypeError, ValueError, MlflowException) as exc:
        fail(f"{model_uri} refused the input: {exc}")
    for q, row in zip(questions, out.to_dict("records")):
        if as_json:
            typer.echo(json.dumps({"question": q, **row}, ensure_ascii=False, default=float))
        else:
            typer.echo(f"{row['answer']}\t{row['score']:.3f}\t{q}")


@app.command()
def explain(model_uri: Annotated[str, typer.Argument(help="a classifier, e.g. models:/intents@champion")],
            text: Annotated[str, typer.Argument(help="the text to explain")],
            label: Annotated[Optional[str], typer.Option(help="explain this class (default: the predicted one)")] = None,
            method: Annotated[str, typer.Option(help="integrated_gradients, grad_input or occlusion")] = (
                "integrated_gradients"),
            html_file: Annotated[Optional[Path], typer.Option("--html", help="also write a highlighted page")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False) -> None:
    """Which tokens made a classifier answer what it did: attribution per token (and attention weight)."""
    import mlflow

    from lowlm.inference.classifier import TextClassifier
    from lowlm.inference.explain import METHODS, html, saliency
    from tasks.register import load_registered

    if method not in METHODS:
        fail(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    uri = _tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        bundle = load_registered(model_uri).unwrap_python_model().bundle
    except Exception as exc:
        fail(f"cannot load {model_uri} from {uri}: {exc}", exit_code(exc))
    if not isinstance(bundle, TextClassifier):
        fail(f"{model_uri} is a {bundle.kind} model: explain takes a classifier")
    try:
        got = saliency(bundle, text, label=label, method=method)
    except ValueError as exc:
        fail(str(exc))
    attention = bundle.attention(text)[1] if bundle.has_attention else None
    if as_json:
        typer.echo(json.dumps({**got, "attention": attention}, ensure_ascii=False))
    else:
        typer.echo(f"{got['label']} ({got['method']}; positive: toward the class)")
        for i, (token, score) in enumerate(zip(got["tokens"], got["scores"])):
            typer.echo(f"{score:+.4f}\t" + (f"{attention[i]:.3f}\t" if attention else "") + token)
    if html_file is not None:
        html_file.write_text(html([(got["tokens"], got["scores"], f"{got['label']} ({got['method']}): {text}")],
                                  title=f"{model_uri}: why {got['label']}"), encoding="utf-8")


# ------------------------------------------------------------------------------------------ data

Incoming = Annotated[str, typer.Option("--incoming", help="the folder new data waits in")]
Preset = Annotated[str, typer.Option("--preset", help="the preset whose corpus the data joins (its columns)")]


@data_app.command("add")
def data_add(files: Annotated[list[Path], typer.Argument(help="CSV/TSV/JSONL/Parquet/line files of labelled rows")],
             preset: Preset = "sample", incoming: Incoming = "data/incoming",
             event: Annotated[bool, typer.Option(help="emit a lowlm.data.added Prefect event (when an API is "
                                                      "set), which starts the retrain deployment")] = True,
             allow_new_labels: Annotated[bool, typer.Option(
                 "--allow-new-labels", help="admit labels the corpus does not have (refused by default)")] = False,
             encoding: Annotated[Optional[str], typer.Option(
                 help="text encoding of the files (default utf-8), e.g. latin-1")] = None) -> None:
    """Check files against the preset's corpus settings and queue them for the next retrain.

    All files are checked before any is queued: one bad file queues none. A file already added
    (same bytes) is skipped with a note.
    """
    from lowlm.config import PipelineConfig, load_pipeline_config
    from lowlm.data.corpus import CorpusError, load_corpus
    from lowlm.data.incoming import add_file, check_files, check_incoming_dir

    try:
        config = load_pipeline_config(preset, {}, PipelineConfig)
        check_incoming_dir(incoming, config.corpus)
        known = set(load_corpus(config.corpus).labels)
        checked = check_files(files, config.corpus, known, allow_new_labels or config.corpus.allow_new_labels,
                              encoding=encoding)
    except (FileNotFoundError, ValueError) as exc:  # CorpusError is a ValueError
        fail(str(exc))
    added = []
    for file, rows in checked.items():
        try:
            target = add_file(file, incoming, config.corpus, allow_new_labels=allow_new_labels, encoding=encoding,
                              known_labels=known)
        except CorpusError as exc:  # the same bytes are already waiting or merged
            typer.echo(f"skipped {file}: {exc}")
            continue
        new = sorted(set(rows["label"]) - known)
        typer.echo(f"added {file} -> {target} ({len(rows)} rows"
                   + (f"; new labels admitted: {', '.join(new)}" if new else "") + ")")
        added.append(str(target))
    if event and added:
        _emit_data_added(incoming, added)


def _emit_data_added(incoming: str, files: list[str]) -> None:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        typer.echo("no PREFECT_API_URL: no event sent; the next scheduled retrain picks the files up")
        return
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from flows.deployments import DATA_ADDED, incoming_resource

    event = emit_event(DATA_ADDED, resource={"prefect.resource.id": incoming_resource(incoming),
                                             "prefect.resource.name": incoming},
                       payload={"files": files})
    EventsWorker.drain_all(timeout=30)
    typer.echo(f"event {DATA_ADDED} sent ({event.id if event else 'not sent: events are off'})")


@data_app.command("list")
def data_list(incoming: Incoming = "data/incoming") -> None:
    """Files waiting, accepted and rejected (with the reason)."""
    from lowlm.data.incoming import ACCEPTED, REJECTED, pending

    folder = Path(incoming)
    for title, files in (("waiting", pending(folder)), ("accepted", pending(folder / ACCEPTED))):
        typer.echo(f"{title}: {len(files)}")
        for f in files:
            typer.echo(f"  {f}")
    rejected = sorted((folder / REJECTED).glob("*.error.txt")) if (folder / REJECTED).is_dir() else []
    typer.echo(f"rejected: {len(rejected)}")
    for note in rejected:
        typer.echo(f"  {note.with_suffix('').with_suffix('')}: {note.read_text().strip()}")


# --------------------------------------------------------------------------------------- retrain


@app.command()
def retrain(preset: Annotated[str, typer.Argument(help="preset or YAML path (classification or seq2seq)")] = "sample",
            incoming: Incoming = "data/incoming",
            force: Annotated[bool, typer.Option(help="retrain even when the data is unchanged")] = False,
            allow_new_labels: Annotated[bool, typer.Option(
                "--allow-new-labels", help="admit waiting files whose labels the corpus does not have")] = False,
            set_: Overrides = []) -> None:  # noqa: B006
    """Merge new data (labelled rows, or source<TAB>target pairs for seq2seq) into the corpus; retrain when it
    changed (the gate decides the champion)."""
    from lowlm.config import load_pipeline_config
    from lowlm.data.incoming import check_incoming_dir

    overrides = _overrides(set_)
    try:
        config = load_pipeline_config(preset, overrides)
        if allow_new_labels:
            if config.task != "classification":
                fail("--allow-new-labels: a seq2seq corpus has no labels")
            overrides["corpus.allow_new_labels"] = True
        check_incoming_dir(incoming, config.corpus)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    _fail_stale_runs(_tracking_uri())
    from flows.retrain import describe, retrain as retrain_flow

    log = _log_tracebacks_to_file()
    state = retrain_flow(preset, incoming, force, overrides, return_state=True)
    try:
        result = state.result()
    except Exception as exc:
        fail(f"the retrain failed: {type(exc).__name__}: {exc} (full traceback in {log})", exit_code(exc))
    typer.echo(describe(result))


# ------------------------------------------------------------------------------ serve, deploy, ui


@app.command()
def serve(cron: Annotated[str, typer.Option(help="retrain schedule, cron syntax ('' for none)")] = "0 3 * * *",
          timezone: Annotated[str, typer.Option(help="time zone of the schedule")] = "UTC",
          preset: Annotated[str, typer.Option(help="classification preset the retrain deployment uses")] = "sample",
          incoming: Incoming = "data/incoming",
          port: Annotated[int, typer.Option(help="port of the Prefect server started when PREFECT_API_URL is "
                                                 "unset")] = DEFAULT_PREFECT_PORT,
          limit: Annotated[int, typer.Option(help="flow runs at once")] = 1,
          allow_root: Annotated[list[Path], typer.Option(
              "--allow-root", help="a folder runs started through the API may read and write (repeatable; "
                                   "beside data/, configs/, .lowlm/, ../shared/data and the retrain preset's "
                                   "folders)")] = []) -> None:  # noqa: B006
    """Serve every deployment (runs from the UI, the CLI, the schedule and data events) until Ctrl-C.

    Uses the Prefect server in PREFECT_API_URL; with none set, starts one on 127.0.0.1:PORT (or uses
    the one `lowlm ui` started there) and stops what it started on exit. Runs started through the API
    may only name paths inside the allowed folders (LOWLM_ALLOWED_ROOTS, which this sets for them).
    """
    _check_cron(cron, timezone)
    _allow_roots(preset, incoming, allow_root)
    signal.signal(signal.SIGHUP, signal.default_int_handler)  # a closed terminal stops like Ctrl-C
    with _prefect_api(port) as url:
        typer.echo(f"serving deployments against {url}; Prefect UI: {url.removesuffix('/api')}")
        from flows.deployments import serve_all

        serve_all(limit=limit, cron=cron or None, timezone=timezone, retrain_preset=preset, incoming_dir=incoming)


@app.command("serve-model")
def serve_model(model_uri: Annotated[str, typer.Argument(help="e.g. models:/intents@champion")],
                port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 5001) -> None:
    """Serve a registered model over REST (MLflow's scoring server) after verifying its digests, until Ctrl-C."""
    from flows.servers import start_model_server
    from tasks.integrity import IntegrityError, verified_copy

    uri = _tracking_uri()
    try:
        local, note = verified_copy(model_uri, uri, LOG_DIR.parent / "serving" / f"{port}")
    except IntegrityError as exc:
        fail(str(exc), 1)
    except Exception as exc:
        fail(f"cannot load {model_uri} from {uri}: {exc}", exit_code(exc))
    typer.echo(note)
    server = start_model_server(str(local), port, LOG_DIR, tracking_uri=uri)
    try:
        server.wait(180)
        typer.echo(f"serving {model_uri} at {server.url}/invocations (log {server.log}); Ctrl-C stops it")
        while server.process.poll() is None:
            time.sleep(0.5)
        fail(f"the model server exited ({server.process.returncode}); see {server.log}", 1)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as exc:
        fail(str(exc), 1)
    finally:
        server.stop()


def _allow_roots(preset: str, incoming: str, extra: list[Path]) -> None:
    """LOWLM_ALLOWED_ROOTS for the served runs: the defaults, the retrain preset's file, corpus and work
    folders and the incoming folder (the operator chose them), and ``extra``."""
    from flows.runtime import ALLOWED_ROOTS_ENV, allowed_roots
    from lowlm.config import PipelineConfig, load_pipeline_config
    from lowlm.config.presets import read_preset

    roots = [] if os.environ.get(ALLOWED_ROOTS_ENV) else allowed_roots()
    roots += [Path(p) for p in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if p]
    try:
        path, _ = read_preset(preset)
        config = load_pipeline_config(preset, {}, PipelineConfig)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    corpus = config.corpus
    roots += [path.parent, Path(incoming), Path(config.work_dir),
              *(Path(f) if Path(f).is_dir() else Path(f).parent for f in (corpus.path, corpus.validation_file,
                                                                           corpus.test_file) if f),
              *extra]
    unique = list(dict.fromkeys(str(r.expanduser().resolve()) for r in roots))
    os.environ[ALLOWED_ROOTS_ENV] = os.pathsep.join(unique)


@app.command()
def deploy(pool: Annotated[str, typer.Option(help="process work pool to register the deployments with")],
           cron: Annotated[str, typer.Option(help="retrain schedule ('' for none)")] = "0 3 * * *",
           preset: Annotated[str, typer.Option(help="classification preset the retrain deployment uses")] = "sample",
           incoming: Incoming = "data/incoming") -> None:
    """Register the deployments with a work pool (the team way: `prefect worker start --pool POOL`)."""
    from flows.deployments import deploy_to_pool

    _check_cron(cron, "UTC")
    _require_api()
    for deployment_id in deploy_to_pool(pool, cron=cron or None, retrain_preset=preset, incoming_dir=incoming):
        typer.echo(f"deployment {deployment_id} -> work pool {pool}")
    typer.echo(f"now start a worker: prefect worker start --pool {pool}")


def _check_cron(cron: str, timezone: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    if cron:
        try:
            CronSchedule(cron=cron, timezone=timezone)
        except ValueError as exc:
            why = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
            fail(f"--cron {cron!r} / --timezone {timezone!r}: not a valid schedule ({why}); "
                 f"e.g. '0 3 * * *' is 03:00 every day")


class _prefect_api:
    """Context: the Prefect API URL to use, starting a local server when none is configured."""

    def __init__(self, port: int):
        self.port, self.server = port, None

    def __enter__(self) -> str:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.servers import http_ok, port_in_use, start_prefect

        url = PREFECT_API_URL.value()
        if url:
            if not http_ok(f"{url.rstrip('/')}/health"):
                fail(f"PREFECT_API_URL is {url} but nothing answers there", 1)
        else:
            url = f"http://127.0.0.1:{self.port}/api"
            if not http_ok(f"{url}/health"):
                if port_in_use(self.port):
                    fail(f"port {self.port} is taken by something that is not a Prefect server; use --port")
                typer.echo(f"starting a Prefect server on 127.0.0.1:{self.port} (log in {LOG_DIR})")
                self.server = start_prefect(self.port, LOG_DIR).wait()
        os.environ["PREFECT_API_URL"] = url  # flow-run subprocesses inherit it
        self.settings = temporary_settings({PREFECT_API_URL: url})
        self.settings.__enter__()
        return url

    def __exit__(self, *exc) -> None:
        self.settings.__exit__(*exc)
        if self.server is not None:
            self.server.stop()


@app.command()
def ui(prefect_port: Annotated[int, typer.Option(help="Prefect server port")] = DEFAULT_PREFECT_PORT,
       mlflow_port: Annotated[int, typer.Option(help="MLflow UI port")] = DEFAULT_MLFLOW_PORT,
       prefect: Annotated[bool, typer.Option(help="start the Prefect server too")] = True,
       database: Annotated[Optional[str], typer.Option(
           help="a PostgreSQL server, postgresql://user[:password]@host[:port][/NAME]: both servers keep their "
                "state there (databases NAME and NAME_prefect, NAME default lowlm), the team way (docs/team.md)")]
       = None,
       artifacts: Annotated[Optional[str], typer.Option(
           help="with --database: the artifact root the MLflow server proxies (a folder, or s3://...)")] = None) -> None:
    """Start the Prefect server and the MLflow UI on 127.0.0.1, print both URLs, stop both on Ctrl-C."""
    from flows.runtime import mask
    from flows.servers import port_in_use, start_mlflow, start_prefect

    ports = [p for p, wanted in ((prefect_port, prefect), (mlflow_port, True)) if wanted]
    taken = [p for p in ports if port_in_use(p)]
    if taken:
        fail(f"port(s) {', '.join(map(str, taken))} already in use; pick others with --prefect-port/--mlflow-port")
    if database is not None:
        from flows.team import TeamError, databases

        try:
            databases(database)
        except TeamError as exc:
            fail(str(exc))
    uri = _tracking_uri() if database is None else mask(database)
    servers = []
    stop = {"now": False}
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal or `kill` stops both servers too
        signal.signal(sig, lambda *_: stop.update(now=True))
    try:
        if database is None:
            servers.append(start_mlflow(mlflow_port, uri, LOG_DIR))
            if prefect:
                servers.append(start_prefect(prefect_port, LOG_DIR))
            for server in servers:
                server.wait()
        else:
            servers = _team_servers(database, mlflow_port, prefect_port, artifacts, prefect)
        typer.echo(f"MLflow UI:  {servers[0].url}   (store {uri})")
        if prefect:
            typer.echo(f"Prefect UI: {servers[1].url}")
            typer.echo(f"for the CLI and `lowlm serve` in another terminal: "
                       f"export PREFECT_API_URL={servers[1].url}/api")
        if database is not None:
            typer.echo(f"and: export MLFLOW_TRACKING_URI={servers[0].url}")
        typer.echo("Ctrl-C stops both.")
        while not stop["now"] and all(s.process.poll() is None for s in servers):
            time.sleep(0.5)
        for s in servers:
            if s.process.poll() is not None:
                typer.echo(f"{s.name} exited ({s.process.returncode}); see {s.log}", err=True)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as exc:
        fail(str(exc), 1)
    finally:
        for server in servers:
            server.stop()
        typer.echo("stopped.")


def _team_servers(database: str, mlflow_port: int, prefect_port: int, artifacts: str | None, prefect: bool) -> list:
    """Both servers on the PostgreSQL server ``database``; one that does not answer raises RuntimeError naming it."""
    import sqlalchemy.exc

    from flows.runtime import mask
    from flows.team import start_servers

    try:
        return start_servers(database, mlflow_port, prefect_port, artifacts or str(Path("mlruns/team-artifacts")
                                                                                   .resolve()), LOG_DIR, prefect)
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise RuntimeError(f"the PostgreSQL server {mask(database)} cannot be used: {mask(reason)}") from None


team_app = typer.Typer(help="A local PostgreSQL plus the MLflow and Prefect servers on it, in the background, for "
                            "trying the team set-up on one machine (make team-up / team-down).", no_args_is_help=True)
app.add_typer(team_app, name="team")
TEAM_DIR = Path(".lowlm/team")


@team_app.command("up")
def team_up(postgres_port: Annotated[int, typer.Option(help="PostgreSQL port on 127.0.0.1")] = 5433,
            mlflow_port: Annotated[int, typer.Option(help="MLflow server port")] = DEFAULT_MLFLOW_PORT,
            prefect_port: Annotated[int, typer.Option(help="Prefect server port")] = DEFAULT_PREFECT_PORT,
            folder: Annotated[Path, typer.Option(help="where the cluster, artifacts and logs live")] = TEAM_DIR) -> None:
    """Start PostgreSQL (as the postgres user when run as root), then both servers on it; print the exports."""
    from flows.postgres import PostgresUnavailable
    from flows.team import TeamError, up

    try:
        state = up(folder, postgres_port, mlflow_port, prefect_port)
    except (TeamError, PostgresUnavailable, RuntimeError, TimeoutError) as exc:
        fail(str(exc), 1)
    typer.echo(f"PostgreSQL {state['postgres']['url']} (data in {state['postgres']['folder']})")
    for server in state["servers"]:
        typer.echo(f"{server['name']}: {server['url']}  (log {server['log']})")
    typer.echo("use them from any shell (make team-down stops everything):")
    for key, value in state["environment"].items():
        typer.echo(f"export {key}={value}")


@team_app.command("down")
def team_down(folder: Annotated[Path, typer.Option(help="the folder `team up` used")] = TEAM_DIR) -> None:
    """Stop both servers and PostgreSQL (its data stays in the folder for the next `team up`)."""
    from flows.team import TeamError, down

    try:
        state = down(folder)
    except TeamError as exc:
        fail(str(exc))
    typer.echo(f"stopped {', '.join(s['name'] for s in state['servers'])} and PostgreSQL")


@app.command()
def gc(work_dir: Annotated[Path, typer.Option(help="the work folder to clean")] = Path(".lowlm"),
       keep_days: Annotated[float, typer.Option(help="keep cache entries (and checkpoints) younger than this")] = 14,
       dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would be removed")] = False) -> None:
    """Remove stage outputs and checkpoints that no registered version and no recent cache entry needs."""
    from tasks.gc import collect, registered_digests

    if not work_dir.is_dir():
        fail(f"{work_dir}: no such work folder")
    result = collect(work_dir, registered_digests(_tracking_uri()), keep_days, dry_run)
    for path in result.removed:
        typer.echo(f"{'would remove' if dry_run else 'removed'} {path}")
    typer.echo(f"{'would free' if dry_run else 'freed'} {result.freed_bytes / 1e6:.1f} MB; kept "
               f"{result.kept_records} cache entr{'y' if result.kept_records == 1 else 'ies'}, "
               f"{'would drop' if dry_run else 'dropped'} {result.removed_records}")


# ---------------------------------------------------------------------------------------- models


class _ModelsGroup(typer.core.TyperGroup):
    """``lowlm models [NAME] [--json]`` lists, ``lowlm models promote|rollback ...`` move the champion: a
    first word that names no subcommand is the NAME to list (``lowlm models list promote``: a model
    called "promote")."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands:
            return "list", self.commands["list"], args
        return super().resolve_command(ctx, args)


models_app = typer.Typer(cls=_ModelsGroup, invoke_without_command=True, no_args_is_help=False,
                         subcommand_metavar="[NAME] | COMMAND [ARGS]...")
app.add_typer(models_app, name="models")
AsJson = Annotated[bool, typer.Option("--json", help="JSON instead of a table")]
Reason = Annotated[str | None, typer.Option(help="why, recorded on the version (default: manual ... by $USER)")]


@models_app.callback()
def models(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Registry versions, newest first, with aliases, key test metrics and their data digest (`lowlm models
    NAME`: one model's); `promote` and `rollback` move a model's champion by hand."""
    if ctx.invoked_subcommand is None:
        _list_versions(None, as_json)


@models_app.command("list")
def models_list(ctx: typer.Context,
                name: Annotated[str | None, typer.Argument(help="one registered model (default: all)")] = None,
                as_json: AsJson = False) -> None:
    """Registry versions (what `lowlm models [NAME]` runs)."""
    _list_versions(name, as_json or bool(ctx.parent and ctx.parent.params.get("as_json")))


@models_app.command("promote")
def models_promote(name: Annotated[str, typer.Argument(help="registered model")],
                   version: Annotated[str, typer.Argument(help="the version to make champion")],
                   reason: Reason = None) -> None:
    """Make VERSION the champion of NAME; the old champion becomes challenger. Recorded as version tags
    (promoted_by, promote_reason, promoted_at, promoted_from) and in the model's champion history."""
    from tasks.champion import promote

    _move_champion(promote, name, version, reason=reason)


@models_app.command("rollback")
def models_rollback(name: Annotated[str, typer.Argument(help="registered model")], reason: Reason = None) -> None:
    """Bring back the champion before the current one, which becomes challenger. Recorded as tags of the
    restored version (rollback_by, rollback_reason, rollback_at, rollback_from) and in the history."""
    from tasks.champion import rollback

    _move_champion(rollback, name, reason=reason)


def _move_champion(move, name: str, *args: str, reason: str | None) -> None:
    from tasks.champion import UnknownModel

    try:
        out = move(_tracking_uri(), name, *args, reason=reason)
    except UnknownModel as exc:
        fail(str(exc))
    except (RuntimeError, TimeoutError) as exc:  # nothing to roll back to, a concurrent change, the lock
        fail(str(exc), 1)
    if not out["changed"]:
        typer.echo(out["reason"])
        return
    was = f" (was v{out['previous']}, now challenger)" if out["previous"] else ""
    typer.echo(f"models:/{name}@champion -> v{out['version']}{was}; reason: {out['reason']}")


def _list_versions(name: str | None, as_json: bool) -> None:
    from tasks.registry import registry_versions

    rows = registry_versions(_tracking_uri(), name)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        typer.echo(f"no registered versions{f' of {name!r}' if name else ''} in {_tracking_uri()}")
        raise typer.Exit(1 if name else 0)
    header = ("model", "version", "aliases", "metrics", "train data", "registered")
    table = [header] + [(
        r["name"], r["version"], ",".join(r["aliases"]) or "-",
        " ".join(f"{k.removeprefix('test_')}={v:.4g}" for k, v in sorted(r["metrics"].items())
                 if k.removeprefix("test_") in ("accuracy", "macro_f1", "bleu", "chrf", "rougeL")) or "-",
        r["tags"].get("data_digest.train", "-"),
        time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"] / 1000)),
    ) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def alias(command: list[str], argv: list[str] | None, default: str | None = None) -> int:
    """``python -m flows.X ARGS`` as ``lowlm COMMAND ARGS`` (``default``: the preset when ARGS name none);
    returns the exit code."""
    from typer.exceptions import TyperException  # usage errors of typer's own click

    args = list(sys.argv[1:] if argv is None else argv)
    if default is not None and (not args or args[0].startswith("-")):
        args.insert(0, default)
    _prepare()
    try:
        code = typer.main.get_command(app).main(args=command + args, prog_name="lowlm", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:
        if hasattr(exc, "show"):
            exc.show()
        else:
            typer.echo(f"error: {exc}", err=True)
        return getattr(exc, "exit_code", 2)
    return code or 0


def _prepare() -> None:
    """Before anything heavy loads: the environment defaults, credential masking in logs, SIGTERM as an
    exception (so runs end FAILED and servers stop)."""
    from flows.runtime import install_log_masking, prepare_environment, terminate_gracefully

    prepare_environment()
    install_log_masking()
    terminate_gracefully()


def main() -> None:
    _prepare()
    app()


if __name__ == "__main__":
    main()
