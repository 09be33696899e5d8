"""The prediction loop, one for every way of predicting: ``Trainer.predict`` (a reader's data or raw
inputs), evaluation during training and the ``Predictor`` of an exported model.

A pass feeds batches to a runner, hands each task's outputs to its head
(``Head.batch_postprocess``) and ends with ``Head.epoch_postprocess`` given the reader's post
inputs (MRC: the questions and windows that the answers are decoded from). Callers differ only in
how a batch runs: :func:`model_runner` runs the dynamic-graph model; the ``Predictor`` runs an
exported model. Results come back in input order (``index``); :func:`describe_inputs` turns the
results of raw inputs into the records that ``Trainer.predict(inputs=...)`` and the ``Predictor``
give.
"""
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import paddle

from paddlepalm import distributed
from paddlepalm.head.base_head import Head
from paddlepalm.model import MultiTaskModel, to_tensors

Batch = Dict[str, np.ndarray]
Outputs = Mapping[str, Any]
Results = List[Dict[str, Any]]
# one step of a pass: each task's batch in, each task's outputs (arrays or tensors) out
Runner = Callable[[Mapping[str, Batch]], Mapping[str, Outputs]]


def predict_tasks(heads: Mapping[str, Head], readers: Mapping[str, Any], batches: Iterable[Mapping[str, Batch]],
                  run: Runner, output_dirs: Optional[Mapping[str, Optional[str]]] = None,
                  gather: bool = False) -> Dict[str, Results]:
    """One pass over ``batches`` (``{task: batch}`` each) for every task of ``heads``; returns
    ``{task: results}``, each task's head post-processing its outputs and ending with its reader's
    post inputs. ``output_dirs``: where each head writes its files (``predictions.json``).
    ``gather``: under data parallelism, every rank's results (each rank ran its shard)."""
    for head in heads.values():
        head.reset()
    try:
        for batch in batches:
            outputs = run(batch)
            for task, head in heads.items():
                head.batch_postprocess(outputs[task])
        if gather and distributed.world_size() > 1:
            for head in heads.values():
                head.gather_results(distributed.gather_objects)
        return {task: head.epoch_postprocess(post_inputs(readers[task]), (output_dirs or {}).get(task))
                for task, head in heads.items()}
    finally:
        for head in heads.values():
            head.reset()


def predict_pass(head: Head, reader: Any, batches: Iterable[Batch], run: Callable[[Batch], Outputs],
                 output_dir: Optional[str] = None, gather: bool = False) -> Results:
    """:func:`predict_tasks` for one task: ``run(batch)`` gives the head's outputs."""
    results = predict_tasks({_ONE: head}, {_ONE: reader}, ({_ONE: batch} for batch in batches),
                            lambda batch: {_ONE: run(batch[_ONE])}, {_ONE: output_dir}, gather)
    return results[_ONE]


_ONE = "task"  # the key of predict_pass's one task


def post_inputs(reader: Any) -> Any:
    """What a head's ``epoch_postprocess`` needs of the pass's reader (None for most readers)."""
    return reader.get_epoch_outputs() if hasattr(reader, "get_epoch_outputs") else None


def model_runner(model: MultiTaskModel, task: str) -> Callable[[Batch], Dict[str, paddle.Tensor]]:
    """``task``'s prediction outputs of a batch on the dynamic-graph ``model``, without gradients;
    puts the model in eval mode (dropout off)."""
    model.eval()

    def run(batch: Batch) -> Dict[str, paddle.Tensor]:
        with paddle.no_grad():
            return model(task, to_tensors(batch))
    return run


def length_order(features: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Feature positions sorted by length (stable): batches of raw inputs with little padding."""
    return np.argsort([len(f["token_ids"]) for f in features], kind="stable")


def chunks(order: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``size`` positions (the last one may be shorter)."""
    for start in range(0, len(order), size):
        yield order[start:start + size]


def describe_inputs(head: Head, reader: Any, features: Sequence[Mapping[str, Any]], results: Results) -> Results:
    """The results of raw inputs as records: without ``index``, with ``truncated`` (an input that
    was cut, in any of its features) and the head's description of the input (``describe_input``,
    given the input's first feature)."""
    first: Dict[int, Mapping[str, Any]] = {}
    truncated: Dict[int, bool] = {}
    for feature in features:
        index = reader.input_index(feature)
        first.setdefault(index, feature)
        truncated[index] = truncated.get(index, False) or bool(feature.get("truncated", False))
    for result in results:
        index = result.pop("index", None)
        result["truncated"] = truncated.get(index, False)
        head.describe_input(result, first.get(index, {}))
    return results


def logged(batches: Iterable[Batch], task: str, total: int, every: int,
           log: Callable[[str], None]) -> Iterator[Batch]:
    """``batches``, with a line every ``every`` batches (0: none)."""
    for number, batch in enumerate(batches, start=1):
        yield batch
        if every > 0 and number % every == 0:
            log(f"{task}: predicted batch {number}/{total}")
