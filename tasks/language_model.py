"""Train and evaluate a language model: perplexity per epoch on validation, then on the held-out test texts."""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.config.models import LanguageModelConfig
from lowlm.config.stages import LanguageModelTrainConfig
from lowlm.evaluation.plots import lm_curves_figure
from lowlm.inference.language_model import LanguageModelBundle
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.pretrain import pretrain
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_figure, log_table, output_dir, stage_run
from tasks.train import checkpointing, log_epochs, save_trained


@task(name="train-lm", **STAGE_OPTIONS)
def train_lm(corpus: dict, tokenizer: dict, model: LanguageModelConfig, config: LanguageModelTrainConfig,
             work_dir: str, tracking: Tracking, resume: bool = False) -> dict:
    with stage_run(tracking, "train") as run:
        mlflow.log_params({f"model.{k}": v for k, v in model.model_dump().items()})
        mlflow.log_params({f"train.{k}": v for k, v in config.model_dump().items()})
        tok = Tokenizer.load(tokenizer["path"])
        train = pd.read_parquet(corpus["splits"]["train"])["text"].tolist()
        validation = pd.read_parquet(corpus["splits"]["validation"])["text"].tolist()
        key = digest_of(model, config, corpus["digests"]["train"], corpus["digests"]["validation"], tokenizer["digest"])
        out = output_dir(work_dir, "train-lm", key)
        saves, start = checkpointing(out, resume)
        bundle, result = pretrain(model, tok, train, validation, config, callbacks=[log_epochs, *saves], resume=start)
        mlflow.log_metrics({"parameters": sum(p.numel() for p in bundle.model.parameters()),
                            "best_epoch": result.best_epoch, "best_val_perplexity": min(
                                h["val_perplexity"] for h in result.history),
                            "train_seconds": result.seconds, "tokens_per_second": result.throughput})
        log_figure(lm_curves_figure(result.history), "plots/training_curves.png")
        folder, digest = save_trained(bundle, out, "language_model")
        return {"model_dir": folder, "digest": digest, "run_id": run.info.run_id, "best_epoch": result.best_epoch,
                "best_val": result.best_metric, "tokens_per_second": result.throughput}


@task(name="evaluate-lm", **STAGE_OPTIONS)
def evaluate_lm(corpus: dict, trained: dict, tracking: Tracking, continuations: int = 10) -> dict:
    """Test perplexity (the forward model, per predicted token including the end of each text), and a
    table of greedy continuations of the first test texts' opening words."""
    with stage_run(tracking, "evaluate"):
        lm = LanguageModelBundle.load(trained["model_dir"])
        test = pd.read_parquet(corpus["splits"]["test"])["text"].tolist()
        metrics = {"test_perplexity": lm.perplexity(test)}
        mlflow.log_metrics(metrics)
        prompts = [" ".join(t.split()[:4]) for t in test[:continuations]]
        log_table(pd.DataFrame({"prompt": prompts, "continuation": lm.continue_text(prompts, 12)}),
                  "continuations.json")
        return {"metrics": metrics}
