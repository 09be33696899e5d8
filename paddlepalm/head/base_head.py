"""Base class of task heads.

A head is a ``paddle.nn.Layer`` whose ``forward(reader_inputs, backbone_outputs)``
returns a dict: with ``loss`` (a scalar tensor) in training, with prediction
tensors otherwise. Prediction results are gathered batch by batch with
:meth:`batch_postprocess` and turned into per-example results by
:meth:`epoch_postprocess`, always in input order (``example_ids``).

A head also declares what the rest of paddlepalm needs to know about its kind, so
that no code outside ``paddlepalm/head/`` switches on head class names: its default
metrics (:attr:`Head.default_metrics`, :attr:`Head.target_metric`), whether the
``Predictor`` serves it (:attr:`Head.servable`, :meth:`Head.export_args`), what an export
holds besides its weights (:meth:`Head.export_extras`, :meth:`Head.exporting`) and how
an exported model's outputs are completed (:meth:`Head.from_export`,
:meth:`Head.complete_outputs`).
"""
import contextlib
import os
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import paddle
from paddle import nn

from paddlepalm.backbone.base_backbone import Attrs
from paddlepalm.utils.fileio import write_json_lines


class Head(nn.Layer):
    # metrics evaluation uses when none are given (names of paddlepalm.evaluation.METRICS), and
    # the score among theirs that picks the best checkpoint; none: evaluation needs metrics=...
    default_metrics: ClassVar[Tuple[str, ...]] = ()
    target_metric: ClassVar[Optional[str]] = None
    # the Predictor serves an export of it: export_args rebuild its post-processing
    servable: ClassVar[bool] = False
    # its inputs are its own (MRC: windows of a (question, context) pair): exported without other tasks
    exported_alone: ClassVar[bool] = False
    # its reader knows its label names (a tagger's tag map); otherwise an export takes them from the
    # task's label map (a classifier's reader reads class ids only)
    labels_named_by_reader: ClassVar[bool] = False

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

    def gather_results(self, gather: Callable[[List[Dict[str, Any]]], List[List[Dict[str, Any]]]]) -> None:
        """Keep every rank's results: ``gather(mine)`` gives one list per rank (data parallelism:
        each rank predicted its shard)."""
        self._results = [r for part in gather(self._results) for r in part]

    def reset(self) -> None:
        """Forget the results gathered so far (PALM's reset() did not)."""
        self._results = []

    # ---------------------------------------------------------------- export
    def export_args(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this head's post-processing without its weights
        (recorded in ``palm_meta.json``); only for a :attr:`servable` head."""
        raise NotImplementedError(f"{type(self).__name__} is not served by the Predictor")

    def export_extras(self) -> Dict[str, Any]:
        """Entries for the task's record in ``palm_meta.json`` that post-processing needs besides
        :meth:`export_args` (a CRF's transitions, decoded outside the graph)."""
        return {}

    @contextlib.contextmanager
    def exporting(self) -> Iterator[None]:
        """The head's prediction outputs as exported: without what stays outside the graph."""
        yield

    @classmethod
    def from_export(cls, entry: Mapping[str, Any]) -> "Head":
        """The post-processing head of an exported task (its ``palm_meta.json`` record)."""
        head = cls(phase="predict", **entry["head"]["args"])
        head.set_label_names(entry.get("label_names"))
        return head

    def complete_outputs(self, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """An exported model's outputs (over its batch's arrays) with what :meth:`exporting` left
        out of the graph, ready for :meth:`batch_postprocess`."""
        return arrays
