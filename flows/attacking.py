"""The attack stages in a flow: rows planned, shards mapped over the task runner, then merged.

    adversarial (before train):  plan a sample of training rows ─> attack-shard x N ─> adversarial
    evaluate-attack (after):     plan validation and test rows  ─> attack-shard x N ─> evaluate-attack

The runner is ``attack.runner`` (``thread``: Prefect's thread pool with ``attack.workers`` threads;
``dask``: Dask workers, see ``flows.runners``). The validation and test shards go to the runner
together. Example i of a sample is seeded by ``attack.seed`` and i, whichever shard holds it, so the
examples and the digest of the rows they add do not depend on the runner or on the workers.
"""

from __future__ import annotations

import pandas as pd

from lowlm.config.attack import AttackConfig
from lowlm.inference.bundle import read_meta
from flows.runners import map_shards
from tasks._cache import WorkFolder
from tasks.adversarial import adversarial, attack_plan, attack_shard, robustness


def attack_parts(model: dict, samples: dict[str, tuple[str, str, int]], config: AttackConfig, work: WorkFolder,
                 attackable_only: bool = False, what: str = "attack") -> dict[str, list[dict]]:
    """Attack ``model`` (a handle with ``model_dir`` and ``digest``) on every sample ``{name: (split file, its
    digest, rows wanted)}``, all shards on one runner; ``{name: [shard result, ...]}`` in shard order."""
    labels = read_meta(model["model_dir"])["labels"]  # bundle.json: the weights load in the shards
    handle = {"model_dir": model["model_dir"], "digest": model["digest"]}
    recipe, size = config.placeless(), config.shard_rows
    parameters, owners = [], []  # owners[i]: the sample shard i belongs to
    for name, (split, digest, limit) in samples.items():
        rows = attack_plan(labels, pd.read_parquet(split, columns=["text", "label"]), config, limit, config.seed,
                           attackable_only)
        for at in range(0, len(rows), size):
            parameters.append({"model": handle, "split": split, "split_digest": digest, "rows": rows[at: at + size],
                               "first": at, "config": recipe, "shard": len(parameters), "work_dir": work.path})
            owners.append(name)
    results = map_shards(work(attack_shard), parameters, config, what=what)
    out: dict[str, list[dict]] = {name: [] for name in samples}
    for name, result in zip(owners, results):
        out[name].append(result)
    return out


def adversarial_split(corpus: dict, train_split: dict, victim: dict, config: AttackConfig, work: WorkFolder,
                      tracking) -> dict:
    """The training split plus the rows that fooled ``victim``: a sample of training rows in shards, then the merge."""
    sample = {"train": (train_split["train"], train_split["digest"], config.generate.sample_rows)}
    parts = attack_parts(victim, sample, config, work, attackable_only=True, what="adversarial")["train"]
    return work(adversarial)(corpus, train_split, victim, config, parts, work.path, tracking)


def robustness_of(corpus: dict, trained: dict, config: AttackConfig, work: WorkFolder, tracking,
                  run_name: str | None = None) -> dict:
    """The new model under attack on validation and test rows (shards of both on one runner), then the merge."""
    parts = {}
    if config.enabled:
        parts = attack_parts(trained, {split: (corpus["splits"][split], corpus["digests"][split], config.max_examples)
                                       for split in ("validation", "test")}, config, work, what="evaluate-attack")
    return work(robustness)(corpus, trained, config, parts, tracking, run_name)
