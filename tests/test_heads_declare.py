"""Heads declare what they are; nothing outside paddlepalm/head/ switches on a head's type, and the
reader's text arrays are declared once (issue 24).

The source checks parse the package with ``ast`` (no data, no model): a string constant equal to a
head class name in a comparison or a literal container (``kind == "MRC"``, ``{"Classify": ...}``),
``type(x).__name__`` in a comparison, or ``isinstance(x, SomeHead)`` is a head-type switch.
"""
import ast
import os
from typing import List, Set

import pytest

import paddlepalm.head as heads
from paddlepalm import evaluation
from paddlepalm.head.base_head import Head
from paddlepalm.reader.base_reader import CONTENT_ARRAYS, TEXT_ARRAYS, TOKEN_ARRAYS

PACKAGE = os.path.dirname(os.path.abspath(heads.__file__ + "/.."))
HEAD_DIR = os.path.join(PACKAGE, "head")


def _head_classes() -> List[type]:
    found, todo = [], [Head]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith("paddlepalm.head")]


HEAD_NAMES: Set[str] = {c.__name__ for c in _head_classes()} - {"Head"}


def _sources(root: str, skip: str):
    for folder, _, files in os.walk(root):
        if os.path.abspath(folder).startswith(os.path.abspath(skip)):
            continue
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    yield os.path.relpath(path, root), ast.parse(handle.read(), path)


def _is_head_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in HEAD_NAMES


def _is_type_name(node: ast.AST) -> bool:
    """``type(x).__name__`` (or ``x.__class__.__name__``)."""
    if not (isinstance(node, ast.Attribute) and node.attr == "__name__"):
        return False
    inner = node.value
    return (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "type") or \
        (isinstance(inner, ast.Attribute) and inner.attr == "__class__")


def _names_a_head_class(node: ast.AST) -> bool:
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    names = [p.id if isinstance(p, ast.Name) else p.attr if isinstance(p, ast.Attribute) else None for p in parts]
    return any(name in HEAD_NAMES for name in names)


def head_switches(root: str = PACKAGE, skip: str = HEAD_DIR) -> List[str]:
    """``file:line: what`` of every head-type switch under ``root`` outside ``skip``."""
    found = []
    for path, tree in _sources(root, skip):
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                inside = [e for s in sides if isinstance(s, (ast.Tuple, ast.List, ast.Set)) for e in s.elts]
                if any(_is_head_name(s) for s in sides + inside):
                    what = "compares with a head class name"
                elif any(_is_type_name(s) for s in sides):
                    what = "compares type(...).__name__"
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_is_head_name(e) for e in node.elts):
                what = "lists a head class name"
            elif isinstance(node, ast.Dict) and any(k is not None and _is_head_name(k) for k in node.keys):
                what = "keys a dict by a head class name"
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2
                  and _names_a_head_class(node.args[1])):
                what = f"{node.func.id}(..., a head class)"
            if what:
                found.append(f"{path}:{node.lineno}: {what}")
    return found


def test_no_head_type_switch_outside_the_heads():
    assert HEAD_NAMES >= {"Classify", "Match", "SequenceLabel", "MRC", "MaskLM"}
    assert head_switches() == []


def test_the_check_finds_switches(tmp_path):
    (tmp_path / "head").mkdir()
    (tmp_path / "bad.py").write_text(
        'DEFAULTS = {"Classify": 1}\n'
        'def f(head, kind, kinds):\n'
        '    if type(head).__name__ == "SequenceLabel" or kind in ("Match", "X") or "MRC" in kinds:\n'
        '        return isinstance(head, heads.MRC)\n'
        '    return head.__class__.__name__ != kind\n')
    (tmp_path / "head" / "ok.py").write_text('KINDS = ("Classify",)\n')
    found = head_switches(str(tmp_path), str(tmp_path / "head"))
    assert sorted(line.split(":", 1)[1] for line in found) == [
        "1: keys a dict by a head class name", "3: compares with a head class name",
        "3: compares with a head class name", "3: compares with a head class name", "3: lists a head class name",
        "4: isinstance(..., a head class)", "5: compares type(...).__name__"], found


def test_array_names_are_declared_once():
    """Only reader/base_reader.py lists text array names (tuples, lists or sets of them)."""
    names = set(TEXT_ARRAYS)
    declared = os.path.join(PACKAGE, "reader", "base_reader.py")
    lists = []
    for path, tree in _sources(PACKAGE, os.path.join(PACKAGE, "__none__")):
        if os.path.join(PACKAGE, path) == declared:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len(values) >= 2 and set(values) <= names:
                    lists.append(f"{path}:{node.lineno}: {values}")
    assert lists == []
    assert set(TOKEN_ARRAYS) == {"token_ids", "position_ids", "segment_ids", "input_mask", "task_ids", "char_ids"}
    assert set(CONTENT_ARRAYS) == {"token_ids", "segment_ids", "seq_lens", "char_ids"}


SERVED = [heads.Classify(3, 8), heads.Match(2, 8), heads.Match(2, 8, learning_strategy="pairwise"),
          heads.SequenceLabel(5, 8), heads.MRC(16, 8, with_negative=True, max_ans_len=7)]


@pytest.mark.parametrize("head", SERVED, ids=lambda h: type(h).__name__)
def test_served_heads_rebuild_from_their_export(head):
    entry = {"head": {"class": type(head).__name__, "args": head.export_args()}, "label_names": ["a", "b", "c"],
             **head.export_extras()}
    rebuilt = type(head).from_export(entry)
    assert rebuilt.phase == "predict" and rebuilt.export_args() == head.export_args()
    assert rebuilt.export_extras() == head.export_extras()
    assert rebuilt.label_names == ["a", "b", "c"]


def test_every_head_declares_known_metrics_and_whether_it_is_served():
    for cls in _head_classes():
        unknown = [m for m in cls.default_metrics if m not in evaluation.METRICS]
        assert not unknown, (cls.__name__, unknown)
        if cls.default_metrics:
            assert cls.target_metric in evaluation.score_names(None, cls), cls.__name__
        if cls.servable:
            assert cls.export_args is not Head.export_args, cls.__name__
    assert {c.__name__ for c in _head_classes() if c.servable} == {"Classify", "Match", "SequenceLabel", "MRC"}
    assert [c.__name__ for c in _head_classes() if c.exported_alone] == ["MRC"]


def test_a_tagger_exports_without_its_decoder_and_decodes_the_exported_emissions():
    import numpy as np

    head = heads.SequenceLabel(4, 8, phase="predict")
    head.set_label_names(["O", "B-x", "I-x"])
    with head.exporting():
        assert head.decode is False
    assert head.decode is True
    rebuilt = type(head).from_export({"head": {"args": head.export_args()}, "label_names": head.label_names,
                                      **head.export_extras()})
    logits = np.random.RandomState(0).randn(2, 5, 4).astype("float32")
    arrays = {"logits": logits, "word_counts": np.array([5, 3]), "num_words": np.array([5, 4]),
              "example_ids": np.array([0, 1])}
    completed = rebuilt.complete_outputs(arrays)
    from paddlepalm.utils.crf import viterbi_decode_numpy
    expected = viterbi_decode_numpy(logits, np.array([5, 3]), head.transitions.numpy(), 3)
    assert np.array_equal(completed["tags"], expected)
    assert rebuilt.complete_outputs(completed) is completed  # a graph that decoded: nothing to add
