import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.optimizer.base_optimizer import no_decay_names


def test_warmup_schedualer_warms_up_then_stays():
    sched = palm.lr_sched.WarmupSchedualer(4).build(0.1)
    lrs = []
    for _ in range(8):
        lrs.append(sched())
        sched.step()
    np.testing.assert_allclose(lrs, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_triangular_schedualer_shape_and_stretch():
    spec = palm.lr_sched.TriangularSchedualer(2, 6)
    assert [spec.multiplier(s) for s in range(7)] == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0])
    assert spec.cover(10) and spec.num_train_steps == 10 and spec.multiplier(6) > 0
    assert not spec.cover(8)


def test_weight_decay_skips_layer_norm_and_bias():
    backbone = palm.backbone.ERNIE.from_config({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                                "vocab_size": 20})
    exempt = no_decay_names(backbone)
    named = dict(backbone.named_parameters())
    assert named["model.encoder.layers.0.norm1.weight"].name in exempt
    assert named["model.encoder.layers.0.linear1.bias"].name in exempt
    assert named["model.encoder.layers.0.linear1.weight"].name not in exempt
    assert named["model.embeddings.word_embeddings.weight"].name not in exempt


def test_decay_applies_only_where_allowed():
    layer = paddle.nn.Sequential(paddle.nn.Linear(3, 3), paddle.nn.LayerNorm(3))
    opt = palm.optimizer.AdamW(layer, 0.1).build(layer, weight_decay=0.5)
    before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    for p in layer.parameters():  # zero gradient: only decay can move a parameter
        p.grad = paddle.zeros_like(p)
    opt.step()
    after = {k: v.numpy() for k, v in layer.state_dict().items()}
    assert not np.allclose(before["0.weight"], after["0.weight"])
    for k in ("0.bias", "1.weight", "1.bias"):
        np.testing.assert_allclose(before[k], after[k])
