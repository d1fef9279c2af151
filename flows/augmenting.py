"""The augment stage in a flow: translators resolved first, then shards mapped over a task runner.

    resolve translators (registered URIs -> one version each; presets -> trained and registered first)
       ─> augment-shard x N (on the configured runner) ─> augment / augment-pairs (merge, log)

Translators are resolved when the flow starts, before any other work: a registered model that is
not a translator, or one whose languages do not chain from the corpus's language to the language
wanted, fails the run with a message naming both. A ``preset`` reference runs that seq2seq
pipeline first (its stages are cached like any other; it registers its model), then uses the
version it registered.

The runner is ``augment.runner`` (``thread``: Prefect's ``ThreadPoolTaskRunner`` with
``augment.workers`` threads; ``dask``: Dask workers, see ``flows.runners``). Shard i is seeded by
``augment.seed`` and i, so the rows and their digest do not depend on the runner or on how many
shards run at once.
"""

from __future__ import annotations

from lowlm.config import load_pipeline_config
from lowlm.config.augment import BackTranslationAugmenter, ModelRef, TaggedBackTranslation
from lowlm.data.corpus import files_fingerprint
from lowlm.robustness.augment import augmenter_names, shards
from lowlm.robustness.backtranslation import check_chain
from flows.runners import map_shards
from tasks._cache import WorkFolder
from tasks.augment import BT, augment, augment_pairs, augment_shard, ingest_monolingual
from tasks.translators import TranslatorRefError, fetch_translator


def _preset_config(ref: ModelRef):
    return load_pipeline_config(ref.preset, ref.overrides)


def _preset_translator(ref: ModelRef) -> str:
    """Train (or find cached) and register the seq2seq preset ``ref`` names; the URI of the version it registered."""
    from flows.seq2seq import seq2seq

    result = seq2seq(_preset_config(ref))
    model = result["model"]
    return f"models:/{model['name']}/{model['version']}"


def _preset_languages(ref: ModelRef, where: str) -> tuple[str | None, str | None]:
    config = _preset_config(ref)
    if getattr(config, "task", None) != "seq2seq":
        raise TranslatorRefError(f"{where}: preset {ref.preset} is a {config.task} pipeline, not a translator")
    return config.corpus.source_language, config.corpus.target_language


def resolve_translators(refs: dict[str, list[ModelRef]], languages: dict[str, tuple], work: WorkFolder,
                        tracking_uri: str) -> dict[str, list[dict]]:
    """``{augmenter name: [translator handle, ...]}`` for every translator the augment config names.

    ``languages[name]`` is (language read, language written) that augmenter's chain must go from and to.
    Every chain is checked before any preset trains: registered models by what they are (fetched and
    verified now), presets by their configs' languages; preset models are checked again once registered."""
    fetched: dict[str, list] = {}
    for name, chain in refs.items():
        fetched[name] = [fetch_translator(r.uri, work.path, tracking_uri) if r.uri else None for r in chain]
        declared = [tuple(h["languages"]) if h else _preset_languages(r, f"augment {name}")
                    for r, h in zip(chain, fetched[name])]
        check_chain(declared, *languages[name], [r.name for r in chain])
    handles: dict[str, list[dict]] = {}
    for name, chain in refs.items():
        handles[name] = []
        for ref, handle in zip(chain, fetched[name]):
            handle = handle or fetch_translator(_preset_translator(ref), work.path, tracking_uri)
            handle["ref"] = ref.name
            handles[name].append(handle)
        check_chain([tuple(h["languages"]) for h in handles[name]], *languages[name],
                    [f"{h['ref']} (version {h['version']})" for h in handles[name]])
    return handles


def classification_translators(config, work: WorkFolder, tracking_uri: str) -> dict:
    """Translators of the round-trip augmenters of a classification pipeline (from and to its corpus language)."""
    if not config.augment.enabled:
        return {}
    language = config.corpus.language
    named = zip(augmenter_names(config.augment.augmenters), config.augment.augmenters)
    refs = {name: cfg.models for name, cfg in named if isinstance(cfg, BackTranslationAugmenter)}
    return resolve_translators(refs, {name: (language, language) for name in refs}, work, tracking_uri)


def seq2seq_translators(config, work: WorkFolder, tracking_uri: str) -> dict:
    """The reverse model of a translation pipeline's back-translation: target language -> source language."""
    bt = config.augment.backtranslation
    if not config.augment.enabled or bt is None:
        return {}
    corpus = config.corpus
    return resolve_translators({BT: [bt.reverse]}, {BT: (corpus.target_language, corpus.source_language)}, work,
                               tracking_uri)


def _shard_parameters(split: str, digest: str, column: str, rows: int, named: list, config, translators: dict,
                      work: WorkFolder) -> list[dict]:
    return [dict(split=split, split_digest=digest, column=column, start=part.start, stop=part.stop,
                 augmenters=named, seed=config.seed, shard=i, translators=translators, work_dir=work.path)
            for i, part in enumerate(shards(rows, config.shard_rows))]


def augment_split(corpus: dict, config, work: WorkFolder, tracking, translators: dict) -> dict:
    """Labelled rows: the chain's shards, then the merge."""
    parts = []
    if config.enabled:
        named = list(zip(augmenter_names(config.augmenters), config.augmenters))
        parts = map_shards(work(augment_shard), _shard_parameters(
            corpus["splits"]["train"], corpus["digests"]["train"], "text", corpus["rows"]["train"], named, config,
            translators, work), config, what="augment")
    return work(augment)(corpus, config, parts, work.path, tracking, translators)


def augment_pair_split(corpus: dict, config, work: WorkFolder, tracking, translators: dict) -> dict:
    """Pairs: source-noise shards, back-translation shards over the monolingual text, then the merge."""
    parts, bt_parts, monolingual = [], [], None
    if config.enabled:
        named = list(zip(augmenter_names(config.augmenters), config.augmenters))
        parts = map_shards(work(augment_shard), _shard_parameters(
            corpus["splits"]["train"], corpus["digests"]["train"], "source", corpus["rows"]["train"], named, config,
            translators, work), config, what="augment")
        bt = config.backtranslation
        if bt is not None:
            monolingual = work(ingest_monolingual)(corpus, bt.monolingual, work.path,
                                                   fingerprint=files_fingerprint([bt.monolingual.path]))
            chain = [(BT, TaggedBackTranslation(ratio=1, models=[bt.reverse], generation=bt.generation, tag=bt.tag))]
            bt_parts = map_shards(work(augment_shard), _shard_parameters(
                monolingual["path"], monolingual["digest"], "target", monolingual["rows"], chain, config,
                translators, work), config, what="back-translation")
    return work(augment_pairs)(corpus, config, parts, work.path, tracking, monolingual, bt_parts, translators)
