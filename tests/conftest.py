"""Test set-up: every service is real and local, and every store lives in a temporary folder.

Environment is set before anything imports prefect, mlflow or datasets: each session gets its own
PREFECT_HOME, HF_HOME and MLflow SQLite store, and no network.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from flows.servers import free_port, start_prefect

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LOWLM_SHARED", ROOT.parent / "shared")).resolve()
SESSION_DIR = Path(tempfile.mkdtemp(prefix="lowlm-tests-"))
PREFECT_PORT = free_port()

os.environ.update({
    "PREFECT_HOME": str(SESSION_DIR / "prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "HF_HOME": str(SESSION_DIR / "hf"),
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_TRACKING_URI": f"sqlite:///{SESSION_DIR / 'mlruns' / 'mlflow.db'}",
    # a real Prefect server, started once by the `prefect_server` fixture on a free port
    "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
})
os.environ.setdefault("NLTK_DATA", str(SHARED / "data" / "nltk_data"))
# before torch loads: idle OpenMP threads spin otherwise, and on 2 busy cores steps run 30-80x slower
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
(SESSION_DIR / "mlruns").mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.exists():
        pytest.fail(f"the shared corpora are expected at {path} (set LOWLM_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return ROOT / "data" / "sample" / "intents.csv"


@pytest.fixture(scope="session")
def fewshot_csv() -> Path:
    return ROOT / "data" / "fewshot" / "sentiment.csv"


@pytest.fixture(scope="session")
def prefect_server():
    """One real `prefect server start` on 127.0.0.1 (SQLite under the session's PREFECT_HOME) for the
    whole session; PREFECT_API_URL already points at it. Stopped at the end of the session."""
    server = start_prefect(PREFECT_PORT, SESSION_DIR / "logs").wait(180)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_harness(prefect_server):
    """The Prefect API the flow tests run against (the session's real server)."""
    yield prefect_server


@pytest.fixture(scope="session")
def tracking_uri() -> str:
    return os.environ["MLFLOW_TRACKING_URI"]


@pytest.fixture(scope="session")
def trained_sample(sample_csv):
    """A small BiGRU-attention classifier trained on the shipped sample corpus, shared by tests."""
    from lowlm.config import CorpusConfig, RNNAttentionConfig, TrainConfig
    from lowlm.data.corpus import load_corpus
    from lowlm.inference.classifier import TextClassifier
    from lowlm.models.kinds import build_model
    from lowlm.text.batching import Batches
    from lowlm.text.tokenizer import Tokenizer
    from lowlm.training.objectives import train_classifier
    from lowlm.training.trainer import seed_everything

    corpus = load_corpus(CorpusConfig(path=str(sample_csv)))
    tok = Tokenizer.train(corpus.splits["train"]["text"])
    enc = {s: tok.encode_batch(corpus.splits[s]["text"]) for s in corpus.splits}
    train = Batches(enc["train"], corpus.splits["train"]["label"], batch_size=16, shuffle=True, seed=1)
    val = Batches(enc["validation"], corpus.splits["validation"]["label"], batch_size=64)
    seed_everything(13)
    config = RNNAttentionConfig(embedding_dim=48, hidden_dim=48, attention_dim=48, char_dim=16)
    model = build_model(config, vocab_size=tok.vocab_size, num_labels=len(corpus.labels), words=tok.tokens())
    result = train_classifier(model, train, val, len(corpus.labels),
                              TrainConfig(epochs=15, lr=3e-3, progress=False, patience=5))
    return {"corpus": corpus, "classifier": TextClassifier(model, tok, corpus.labels), "result": result}
