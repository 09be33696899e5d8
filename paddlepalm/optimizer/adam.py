import paddle

from paddlepalm.optimizer.base_optimizer import Optimizer


class Adam(Optimizer):
    """Adam; with ``weight_decay`` it decays weights decoupled (as PALM did), skipping
    bias and layer-norm parameters."""

    def _make(self, model, weight_decay: float) -> paddle.optimizer.Optimizer:
        return paddle.optimizer.AdamW(
            learning_rate=self._learning_rate(), parameters=self._parameters(model),
            weight_decay=weight_decay, apply_decay_param_fun=self._decay_filter(model),
            grad_clip=self._grad_clip(), epsilon=1e-6)


class AdamW(Adam):
    """Adam with decoupled weight decay, 0.01 unless ``build_backward`` says otherwise."""

    default_weight_decay = 0.01
