"""Tiny models written in each released format, for the loading and download tests."""
import json
import os
import tarfile
from typing import Dict

import numpy as np
import paddle

import paddlepalm as palm
from conftest import tiny_config
from paddlepalm.backbone.base_backbone import Backbone
from paddlepalm.pretrained import fluid_names
from paddlepalm.pretrained.lod_tensor import write_params_dir

VOCAB = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] + [f"w{i}" for i in range(35)]


def ernie_config() -> dict:
    config = tiny_config(len(VOCAB), hidden=16)
    config.update(use_task_id=True, task_type_vocab_size=3, hidden_act="relu", sent_type_vocab_size=2)
    return config


def make_backbone(kind: str, seed: int, phase: str = "predict"):
    paddle.seed(seed)
    cls = palm.backbone.ERNIE if kind == "ernie" else palm.backbone.BERT
    config = ernie_config() if kind == "ernie" else tiny_config(len(VOCAB), hidden=16)
    return cls.from_config(config, phase=phase), config


def batch(seed: int = 0, with_task_ids: bool = True) -> Dict[str, paddle.Tensor]:
    rng = np.random.RandomState(seed)
    b, length = 3, 9
    mask = np.ones((b, length, 1), dtype="float32")
    mask[1, 6:] = 0
    out = {
        "token_ids": rng.randint(5, len(VOCAB), size=(b, length)).astype("int64"),
        "position_ids": np.tile(np.arange(length, dtype="int64"), (b, 1)),
        "segment_ids": (np.arange(length) >= 5).astype("int64")[None].repeat(b, 0),
        "input_mask": mask,
    }
    if with_task_ids:
        out["task_ids"] = np.full((b, length), 1, dtype="int64")
    return {k: paddle.to_tensor(v) for k, v in out.items()}


def outputs(backbone, seed: int = 0) -> Dict[str, np.ndarray]:
    with paddle.no_grad():
        out = backbone(batch(seed, with_task_ids=getattr(backbone, "uses_task_ids", False)))
    return {k: v.numpy() for k, v in out.items()}


def write_fluid_release(backbone, config: dict, directory: str, config_name: str = "ernie_config.json") -> str:
    """A PALM/ERNIE-style release: params/ (old per-variable format) + config + vocab.txt,
    with a few pretraining-head variables as real releases have."""
    released = {}
    for name, value in backbone.state_dict().items():
        fluid = fluid_names.ours_to_fluid(name)
        assert fluid is not None, name
        released[fluid] = value.numpy()
    hidden = config["hidden_size"]
    released["mask_lm_trans_fc.w_0"] = np.ones((hidden, hidden), "float32")
    released["next_sent_fc.b_0"] = np.zeros((2,), "float32")
    write_params_dir(os.path.join(directory, "params"), released)
    with open(os.path.join(directory, config_name), "w") as f:
        json.dump(config, f)
    write_vocab(directory)
    return directory


def write_paddlenlp_release(backbone, config: dict, directory: str) -> str:
    """A paddlenlp release: model_state.pdparams with paddlenlp's own names (``ernie.*``)."""
    os.makedirs(directory, exist_ok=True)
    state = {"ernie." + k[len("model."):]: v for k, v in backbone.state_dict().items()}
    paddle.save(state, os.path.join(directory, "model_state.pdparams"))
    with open(os.path.join(directory, "model_config.json"), "w") as f:
        json.dump(config, f)
    write_vocab(directory)
    return directory


def write_vocab(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")


def tar_directory(directory: str, archive: str, top: str = None) -> str:
    """Pack ``directory``'s content, under one top folder ``top`` when given (as BERT releases are)."""
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(os.listdir(directory)):
            tar.add(os.path.join(directory, name), arcname=os.path.join(top, name) if top else name)
    return archive


# ---- ELMo stand-ins ----

E, H, V = 4, 6, 12  # projection/embedding size, cells, vocabulary


def released_elmo(seed=0):
    rng = np.random.RandomState(seed)
    out = {"embedding_para": rng.randn(V, E).astype("float32"),
           "softmax_weight": rng.randn(V, E).astype("float32"), "softmax_bias": rng.randn(V).astype("float32")}
    for k, (direction, layer) in enumerate([("fw", 1), ("fw", 2), ("bw", 1), ("bw", 2)]):
        out[f"{direction}_layer{layer}_gate_w"] = rng.randn(E, 4 * H).astype("float32") * 0.5
        out[f"lstmp_{k}.w_0"] = rng.randn(E, 4 * H).astype("float32") * 0.5
        out[f"lstmp_{k}.w_1"] = rng.randn(H, E).astype("float32") * 0.5
        out[f"lstmp_{k}.b_0"] = rng.randn(1, 4 * H).astype("float32") * 0.5
    return out


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstmp_reference(x, gate_w, w_0, w_1, b_0):
    """Paddle's ``dynamic_lstmp`` (no peepholes, tanh, identity projection) on the released layout:
    gate blocks (c, i, f, o), weights [in, 4H]."""
    r, c, outs = np.zeros(E), np.zeros(H), []
    for x_t in x:
        gates = x_t @ gate_w + r @ w_0 + b_0.reshape(-1)
        cand, i, f, o = np.split(gates, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cand)
        h = _sigmoid(o) * np.tanh(c)
        r = h @ w_1
        outs.append(r)
    return np.stack(outs)


class TinyELMo(Backbone):
    """Stands in for our ELMo backbone: paddle LSTMs with projection, one per direction and layer."""
    kind = "elmo"
    released_elmo_names = {
        "word_embedding": "embedding.weight",
        "{direction}.{layer}.weight_ih": "{direction}{layer}.weight_ih_l0",
        "{direction}.{layer}.weight_hh": "{direction}{layer}.weight_hh_l0",
        "{direction}.{layer}.bias_ih": "{direction}{layer}.bias_ih_l0",
        "{direction}.{layer}.bias_hh": "{direction}{layer}.bias_hh_l0",
        "{direction}.{layer}.weight_ho": "{direction}{layer}.0.cell.weight_ho",
    }

    def __init__(self):
        super().__init__("predict")
        self.embedding = paddle.nn.Embedding(V, E)
        for name in ("fw0", "fw1", "bw0", "bw1"):
            setattr(self, name, paddle.nn.LSTM(E, H, proj_size=E))

    def forward(self, inputs):
        x = self.embedding(inputs["token_ids"])
        return {"fw0": self.fw0(x)[0], "fw1": self.fw1(self.fw0(x)[0])[0]}
