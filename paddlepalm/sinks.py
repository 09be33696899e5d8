"""Where training records go: a progress bar, a metrics file, VisualDL scalars.

The training session (``session.Session``) and the evaluation loop (``evaluation.py``) hand
every *sink* a record with ``sink.log(step, record)``; ``record["event"]`` is one of

- ``start``: ``{start_step, total_steps}``, once before the first update (after a resume,
  ``start_step`` is the step resumed);
- ``update``: after every update (nothing else in it: reading a loss would sync a GPU);
- ``train``: with each PALM log line (every ``print_steps``): ``lr``, ``steps_per_s``,
  ``samples_per_s`` and per task ``loss`` (mean since the last line), ``updates``/``share``
  (the realized sampling proportion of the window), ``epoch``, ``batch``, ``steps_per_epoch``;
- ``eval``: after each evaluation: per task its metrics, the ``score`` that picks the best
  checkpoint, ``best_score``, ``best_step``, ``improved``.

A sink may also have ``wrap(iterable, total, description)`` (returns the evaluation batches,
e.g. through a bar) and ``close()``. ``Trainer.train(sinks=[...], progress=True)`` takes them.
"""
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence


class Sinks:
    """Several sinks as one."""

    def __init__(self, sinks: Sequence = ()):
        self.sinks = [s for s in sinks if s is not None]

    def log(self, step: int, record: Dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log(step, record)

    def wrap(self, iterable: Iterable, total: Optional[int], description: str) -> Iterable:
        for sink in self.sinks:
            if hasattr(sink, "wrap"):
                iterable = sink.wrap(iterable, total, description)
        return iterable

    def close(self) -> None:
        for sink in self.sinks:
            if hasattr(sink, "close"):
                sink.close()


def sinks_for(progress: bool, sinks: Optional[Sequence]) -> Sinks:
    """``train(progress=..., sinks=...)``'s sinks: a :class:`ProgressBar` first when ``progress``."""
    return Sinks(([ProgressBar()] if progress else []) + list(sinks or []))


def writer_of(sinks: Sinks) -> Optional[Callable[[str], None]]:
    """The log-line writer of the first sink that has one (a progress bar), or None."""
    return next((sink.write for sink in sinks.sinks if hasattr(sink, "write")), None)


class ProgressBar:
    """A tqdm bar over the global steps (per-task loss and examples/s in its postfix, updated with
    each log line) and a bar per evaluation pass. While it is shown, the session's log lines go
    through :meth:`write`, above the bar, unchanged."""

    def __init__(self, file=None):
        self.file = file or sys.stderr
        self.bar = None

    def write(self, message: str) -> None:
        """A log line above the bar while it is shown (else as ``logs.log`` prints it)."""
        from paddlepalm import distributed

        if not distributed.is_main():
            return
        if self.bar is None:
            print(message, file=sys.stderr, flush=True)
            return
        from tqdm.auto import tqdm

        tqdm.write(message, file=self.file)

    def log(self, step: int, record: Dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        from paddlepalm import distributed

        event = record["event"]
        if event == "start" and self.bar is None and distributed.is_main():
            self.bar = tqdm(total=record["total_steps"], initial=record["start_step"], desc="train", unit="step",
                            file=self.file, dynamic_ncols=True)
        elif self.bar is None:
            return
        elif event == "update":
            self.bar.update(1)
        elif event == "train":
            postfix = {name: f"{task['loss']:.3f}" for name, task in record["tasks"].items()
                       if task["loss"] is not None}
            postfix["ex/s"] = f"{record['samples_per_s']:.1f}"
            self.bar.set_postfix(postfix, refresh=False)

    def wrap(self, iterable: Iterable, total: Optional[int], description: str) -> Iterable:
        from tqdm.auto import tqdm

        if self.bar is None:
            return iterable
        return tqdm(iterable, total=total, desc=description, unit="batch", leave=False, file=self.file,
                    dynamic_ncols=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsFile:
    """``train`` and ``eval`` records as JSON lines (``metrics.jsonl``), each with the wall time;
    appended and flushed line by line, so a killed run keeps what it logged."""

    def __init__(self, path: str):
        self.path = path
        self._file = None

    def log(self, step: int, record: Dict[str, Any]) -> None:
        from paddlepalm import distributed

        if record["event"] not in ("train", "eval", "affinity") or not distributed.is_main():
            return
        if self._file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(dict(record, time=round(time.time(), 3)), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class VisualDLWriter:
    """VisualDL scalars (``visualdl --logdir DIR --disable-telemetry`` shows them):
    ``train/<task>/loss``, ``train/<task>/share`` (sampling share), ``lr``, ``train/samples_per_s``,
    ``eval/<task>/<metric>``, ``eval/score``."""

    def __init__(self, logdir: str):
        from visualdl import LogWriter

        from paddlepalm import distributed

        self.writer = LogWriter(logdir=logdir) if distributed.is_main() else None

    def log(self, step: int, record: Dict[str, Any]) -> None:
        if self.writer is None:
            return
        scalars: Dict[str, float] = {}
        if record["event"] == "train":
            scalars["lr"] = record["lr"]
            scalars["train/samples_per_s"] = record["samples_per_s"]
            for name, task in record["tasks"].items():
                if task["loss"] is not None:
                    scalars[f"train/{name}/loss"] = task["loss"]
                scalars[f"train/{name}/share"] = task["share"]
        elif record["event"] == "eval":
            scalars["eval/score"] = record["score"]
            for name, metrics in record["tasks"].items():
                for metric, value in metrics.items():
                    scalars[f"eval/{name}/{metric}"] = value
        for tag, value in scalars.items():
            self.writer.add_scalar(tag=tag, step=step, value=float(value))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
