import paddle

from paddlepalm.optimizer.base_optimizer import Optimizer, no_decay_names


class LAMB(Optimizer):
    """LAMB (layer-wise adaptive moments, for large-batch pretraining) via ``paddle.optimizer.Lamb``.

    Weight decay (0.01 unless ``build_backward`` says otherwise) skips bias and
    layer-norm parameters, as in BERT/ALBERT pretraining.
    """

    default_weight_decay = 0.01

    def _make(self, model, weight_decay: float) -> paddle.optimizer.Optimizer:
        exempt = no_decay_names(model)
        return paddle.optimizer.Lamb(
            learning_rate=self._learning_rate(), lamb_weight_decay=weight_decay, parameters=self._parameters(model),
            grad_clip=self._grad_clip(), epsilon=1e-6,
            exclude_from_weight_decay_fn=lambda param: param.name in exempt)
