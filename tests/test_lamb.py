"""LAMB: decays weights but not biases or layer-norm parameters."""
import numpy as np
import paddle
from paddle import nn

import paddlepalm as palm


class Tiny(nn.Layer):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(self.linear(x))


def test_lamb_skips_decay_on_bias_and_layer_norm():
    paddle.seed(0)
    model = Tiny()
    model.linear.bias.set_value(paddle.ones([4]))  # non-zero, so decay would move it
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    optimizer = palm.optimizer.LAMB(model, 0.1, grad_clip_norm=None).build(model, weight_decay=0.5)
    assert isinstance(optimizer, paddle.optimizer.Lamb)
    # zero gradients: only weight decay can move a parameter
    loss = (model(paddle.ones([2, 4])) * 0).sum()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    assert not np.allclose(after["linear.weight"].numpy(), before["linear.weight"])
    for name in ("linear.bias", "norm.weight", "norm.bias"):
        np.testing.assert_allclose(after[name].numpy(), before[name], err_msg=name)
