"""Seq2seq training loop and the Translator bundle on a word-level reversal 'language'."""

from __future__ import annotations

import random

import pandas as pd
import pytest
import torch

from lowlm.config import Seq2SeqModelConfig, Seq2SeqTrainConfig
from lowlm.models.seq2seq import Seq2Seq
from lowlm.text.tokenizer import Tokenizer
from lowlm.text.batching import PairBatches
from lowlm.training.objectives import train_translator
from lowlm.training.trainer import EpochMetrics
from lowlm.inference.bundle import BundleError
from lowlm.inference.translator import Translator

WORDS = "red blue green cat dog bird runs sleeps eats big small old".split()


def sentences(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        pairs.append((" ".join(src), " ".join(w.upper() for w in reversed(src))))
    return pairs


@pytest.fixture(scope="module")
def trained():
    train, val = sentences(1500, 1), sentences(100, 2)
    src_tok = Tokenizer.train([s for s, _ in train], kind="word")
    tgt_tok = Tokenizer.train([t for _, t in train], kind="word", lowercase=False)
    config = Seq2SeqModelConfig(embedding_dim=32, hidden_dim=64, attention_dim=64, dropout=0.0)
    model = Seq2Seq(config, src_tok.vocab_size, tgt_tok.vocab_size)
    translator = Translator(model, src_tok, tgt_tok)
    batches = PairBatches(src_tok.encode_batch([s for s, _ in train]),
                          tgt_tok.encode_target_batch([t for _, t in train]), batch_size=32, shuffle=True)
    val_batches = PairBatches(src_tok.encode_batch([s for s, _ in val]), tgt_tok.encode_target_batch([t for _, t in val]))
    epochs = []
    cfg = Seq2SeqTrainConfig(epochs=6, lr=3e-3, patience=0, progress=False, label_smoothing=0.1, max_length=10)
    result = train_translator(translator, batches, val_batches, [s for s, _ in val], [t for _, t in val], cfg,
                              callbacks=[EpochMetrics(lambda e, m: epochs.append(m))])
    return translator, result, epochs, val


def test_learns_and_reports_bleu_and_throughput(trained):
    translator, result, epochs, val = trained
    assert result.best_metric == max(m["val_bleu"] for m in epochs) >= 80
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert result.throughput > 0 and all(m["tokens_per_second"] > 0 for m in epochs)
    out = translator.translate([s for s, _ in val[:20]], beam_size=4, max_length=10)
    assert sum(o == t for o, (_, t) in zip(out, val[:20])) >= 16  # plain text, detokenised


def test_save_load_round_trip(trained, tmp_path):
    translator = trained[0]
    texts = ["red cat runs", "small old dog sleeps", "bird"]
    folder = translator.save(tmp_path / "t")
    loaded = Translator.load(folder)
    assert loaded.translate(texts, beam_size=3) == translator.translate(texts, beam_size=3)
    assert loaded.digest() == translator.digest()
    with pytest.raises(BundleError, match="no bundle.json"):
        Translator.load(tmp_path)
    (folder / "weights.pt").unlink()
    with pytest.raises(BundleError, match="missing weights.pt for a 'translator' bundle"):
        Translator.load(folder)


def test_attention_matrix_for_one_sentence(trained):
    src_tokens, out_tokens, weights = trained[0].attention("red cat runs")
    assert src_tokens == ["red", "cat", "runs"]
    assert out_tokens[:3] == ["RUNS", "CAT", "RED"]
    assert weights.shape == (len(out_tokens), 3)
    assert torch.allclose(weights.sum(dim=1), torch.ones(len(out_tokens)))
    assert weights[0].argmax() == 2  # "RUNS" looks at "runs"


def test_empty_and_unknown_input_do_not_crash(trained):
    out = trained[0].translate(["", "zebra giraffe"], max_length=5)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    with pytest.raises(TypeError, match="list of strings"):
        trained[0].translate("red cat")


def test_registered_pyfunc_generates_text_with_decoding_params(trained, tmp_path, tracking_uri):
    import mlflow

    from lowlm.serving.pyfunc import log_pyfunc

    translator = trained[0]
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("translator-test")
    with mlflow.start_run():
        log_pyfunc(translator.save(tmp_path / "t"), input_example=["red cat runs"], registered_model_name="rev")
    model = mlflow.pyfunc.load_model("models:/rev/1")
    texts = ["red cat runs", "small dog eats"]
    out = model.predict(pd.DataFrame({"text": texts}), params={"beam_size": 3, "max_length": 10})
    assert out["generated"].tolist() == translator.translate(texts, beam_size=3, max_length=10)
    short = model.predict(pd.DataFrame({"text": texts}), params={"beam_size": 1, "max_length": 1})["generated"].tolist()
    assert all(len(s.split()) <= 1 for s in short)
    assert {p.name for p in model.metadata.signature.params.params} == {"beam_size", "max_length", "length_penalty"}
