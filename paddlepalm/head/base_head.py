"""Base class of task heads.

A head is a ``paddle.nn.Layer`` whose ``forward(reader_inputs, backbone_outputs)``
returns a dict: with ``loss`` (a scalar tensor) in training, with prediction
tensors otherwise. Prediction results are gathered batch by batch with
:meth:`batch_postprocess` and turned into per-example results by
:meth:`epoch_postprocess`, always in input order (``example_ids``).
"""
import os
from typing import Any, Dict, List, Optional

import numpy as np
import paddle
from paddle import nn

from paddlepalm.backbone.base_backbone import Attrs
from paddlepalm.utils.fileio import write_json_lines


class Head(nn.Layer):
    def __init__(self, phase: str = "train"):
        super().__init__()
        if phase not in ("train", "predict", "eval"):
            raise ValueError(f"phase must be 'train', 'eval' or 'predict', got {phase!r}")
        self.phase = phase
        self._results: List[Dict[str, Any]] = []

    @property
    def inputs_attrs(self) -> Dict[str, Attrs]:
        """What the head reads: ``{'reader': {...}, 'backbone': {...}}``."""
        raise NotImplementedError

    @property
    def outputs_attr(self) -> Attrs:
        raise NotImplementedError

    def prepare_inputs(self, reader_inputs: Dict[str, paddle.Tensor], backbone: nn.Layer) -> Dict[str, paddle.Tensor]:
        """The arrays the backbone runs on. Most heads leave the reader's arrays as they are;
        ELECTRA's head replaces masked tokens by generator samples here."""
        return reader_inputs

    def forward(self, reader_inputs: Dict[str, paddle.Tensor],
                backbone_outputs: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        raise NotImplementedError

    def set_label_names(self, names: Optional[List[str]]) -> None:
        """Names of class/tag ids, given by the reader when it has them."""
        self.label_names = names

    # ----------------------------------------------------------- prediction
    def batch_postprocess(self, outputs: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Turn one batch of outputs into per-example results and keep them for the epoch."""
        results = self.batch_results(outputs)
        self._results.extend(results)
        return results

    def batch_results(self, outputs: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Per-example results of one batch of outputs (nothing kept)."""
        arrays = {k: (v.numpy() if isinstance(v, paddle.Tensor) else np.asarray(v)) for k, v in outputs.items()}
        return self._batch_results(arrays)

    def _batch_results(self, arrays: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def describe_input(self, result: Dict[str, Any], feature: Dict[str, Any]) -> Dict[str, Any]:
        """``result`` of a raw input (``reader.features_of``) with what the head can say about that
        input in the input's own terms (a tagger: its tokens and entity spans as character offsets
        into the raw text). Nothing by default."""
        return result

    def epoch_postprocess(self, post_inputs: Any = None, output_dir: Optional[str] = None) -> List[Dict[str, Any]]:
        """All results of the pass in input order; written to ``output_dir/predictions.json``."""
        results = sorted(self._results, key=lambda r: r["index"])
        if output_dir is not None:
            write_json_lines(os.path.join(output_dir, "predictions.json"), results)
        return results

    def reset(self) -> None:
        """Forget the results gathered so far (PALM's reset() did not)."""
        self._results = []
