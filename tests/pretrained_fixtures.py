"""Tiny models written in each released format, for the loading and download tests."""
import json
import os
import tarfile
from typing import Dict

import numpy as np
import paddle

import paddlepalm as palm
from conftest import tiny_config
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
