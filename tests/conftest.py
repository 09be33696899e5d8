"""Shared fixtures. Real data is read from the shared data root, never copied here:
``PALM_DATA_ROOT`` (default: ``../shared/data`` beside the repository)."""
import os
import sys

import pytest

import paddlepalm  # noqa: F401  (sets threads/quiet flags before paddle loads)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.environ.get("PALM_DATA_ROOT", os.path.join(os.path.dirname(REPO), "shared", "data"))
sys.path.insert(0, os.path.join(REPO, "examples", "multi-task"))


def tiny_config(vocab_size: int, hidden: int = 32) -> dict:
    """An ERNIE/BERT config small enough for unit tests."""
    return {"hidden_size": hidden, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 2 * hidden,
            "vocab_size": vocab_size, "max_position_embeddings": 128, "type_vocab_size": 2, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}


@pytest.fixture(scope="session")
def data_root():
    if not os.path.isdir(DATA_ROOT):
        pytest.skip(f"shared data root {DATA_ROOT} not found (set PALM_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def joint_data(tmp_path_factory):
    """The multi-task example's generated sample, converted to PALM TSV files."""
    import prepare_data
    from make_sample import make_sample

    root = tmp_path_factory.mktemp("joint")
    raw = make_sample(str(root / "raw"), seed=3, sizes=(192, 32, 48))
    sizes = prepare_data.convert(raw, str(root / "data"))
    return {"dir": str(root / "data"), **sizes}
