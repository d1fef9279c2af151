"""The character-level (DeepWordBug) attack: which search recipe, measured on the undefended models.

The undefended BiGRU-attention models of ``benchmarks/adversarial.py`` (same corpora, settings and seed;
the same weights, from its cache when it has them) are attacked with the library's character attack
(every single edit inside a word, one candidate per distinct input the model reads, at most ceil(20%)
of a text's words, stop words kept, 2,000 queries) under several search recipes:

- ``deletion``: words in order of the true-class probability lost when each is deleted (the default);
- ``gradient``: in order of gradient x input saliency;
- ``pwws``: PWWS's order, softmax(deletion importance) x the probability each word's best single edit
  removes (every candidate of every word scored once, in one batch).

Every recipe attacks every validation row; the recipe with the best validation success rate is then run
once on test, beside the default (``deletion``), for the table. Runs go to
``benchmarks/results/char_attack_runs.jsonl`` as each finishes and are skipped on a restart (records made
with other settings or library code are ignored). Results: ``char_attack_{sst2,trec}.json`` and
``char_attack.md``.

    .venv/bin/python benchmarks/char_attack.py            # both corpora; resumable
    .venv/bin/python benchmarks/char_attack.py sst2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import adversarial as adv  # noqa: E402  (prepares the environment before torch loads)
import torch  # noqa: E402

from lowlm.config.attack import AttackConfig  # noqa: E402

DEFAULT = "deletion"
RECIPES = {
    "deletion": {"importance": "deletion", "ranking": "importance"},
    "gradient": {"importance": "gradient", "ranking": "importance"},
    "pwws": {"importance": "deletion", "ranking": "pwws"},
}


def char_attack(recipe: str) -> AttackConfig:
    return AttackConfig(method="char", **RECIPES[recipe])


def settings(data: adv.Data, recipe: str, split: str) -> dict:
    return {**data.settings(), "recipe": recipe, "split": split,
            "char_attack_config": char_attack(recipe).model_dump(mode="json", exclude={"generate", "refresh", "word"})}


class CharBench:
    def __init__(self, out: Path, quick: bool):
        self.out = out
        self.runs_path = out.parent / f"{out.name}_runs.jsonl"
        # the adversarial benchmark's cache: the undefended weights are the same model
        self.models = adv.Bench(out.parent / "adversarial", quick)

    def records(self) -> list[dict]:
        if not self.runs_path.exists():
            return []
        return [json.loads(line) for line in self.runs_path.read_text().splitlines() if line.strip()]

    def run(self, data: adv.Data, model, recipe: str, split: str) -> dict:
        want = adv.comparable(settings(data, recipe, split))
        for r in self.records():
            if r["dataset"] == data.name and adv.comparable(r["settings"]) == want:
                adv.log(f"[{data.name}] {recipe} on {split}: done before, skipped")
                return r
        adv.log(f"[{data.name}] char attack, {recipe}, on {split}")
        result = data.attack(model, split, char_attack(recipe))
        record = {"dataset": data.name, "recipe": recipe, "split": split, "settings": settings(data, recipe, split),
                  "summary": adv.summarise(result), "examples": adv.examples_of(result)}
        s = result.summary()
        adv.log(f"  {s['examples']} rows in {result.seconds:.0f} s: success {s['success_rate']:.4f}, attacked "
                f"{s['attacked_accuracy']:.4f}, words {s['words_perturbed']:.3f}, queries {s['queries']:.1f}")
        self.runs_path.parent.mkdir(parents=True, exist_ok=True)
        with self.runs_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return record

    def dataset(self, name: str) -> dict:
        data = self.models.get(name)
        model, train = self.models.undefended_model(data)
        validation = {r: self.run(data, model, r, "validation") for r in RECIPES}
        chosen = max(RECIPES, key=lambda r: (validation[r]["summary"]["success_rate"], r == DEFAULT))
        adv.log(f"[{name}] chosen on validation: {chosen}")
        test = {r: self.run(data, model, r, "test") for r in dict.fromkeys([DEFAULT, chosen])}
        return {"chosen": chosen, "chosen_by": "validation success rate",
                "test": {r: adv.pick(test[r]["summary"]) for r in test},
                "validation": {r: adv.pick(validation[r]["summary"]) for r in RECIPES},
                "seconds": {f"{r}_{s}": round(rec["summary"]["seconds"], 1)
                            for s, recs in (("validation", validation), ("test", test)) for r, rec in recs.items()},
                "examples": test[chosen]["examples"], "model_train": train, "settings": data.settings()}


def markdown(results: dict[str, dict]) -> str:
    pct = adv.pct
    lines = ["| corpus | recipe | split | clean acc. | acc. under attack | success rate | words perturbed | queries |",
             "|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for split in ("validation", "test"):
            for recipe, s in res[split].items():
                label = f"**{recipe}**" if recipe == res["chosen"] else recipe
                lines.append(f"| {name} | {label} | {split} | {pct(s['clean_accuracy'])} | {pct(s['attacked_accuracy'])}"
                             f" | {pct(s['success_rate'])} | {pct(s['words_perturbed'])} | {s['queries']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", help=f"any of {', '.join(adv.DATASETS)} (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke test: slices of every split, 2 epochs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "char_attack"))
    args = parser.parse_args(argv)
    unknown = [d for d in args.datasets if d not in adv.DATASETS]
    if unknown:
        parser.error(f"unknown data sets {unknown}: choose from {list(adv.DATASETS)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    bench = CharBench(out, args.quick)
    for name in args.datasets or list(adv.DATASETS):
        result = bench.dataset(name)
        path = out.parent / f"{out.name}_{name}.json"
        path.write_text(json.dumps(result, indent=1))
        adv.log(f"[{name}] wrote {path}")
    results = {n: json.loads(p.read_text()) for n in adv.DATASETS
               if (p := out.parent / f"{out.name}_{n}.json").exists()}
    table = markdown(results)
    print(table, flush=True)
    out.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
