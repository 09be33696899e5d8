"""Extractive machine reading comprehension reader (SQuAD-format JSON), PALM's ``MRCReader``.

Each question becomes one or more *windows*: ``[CLS] question [SEP] context
window [SEP]``. The question keeps at most ``max_query_len`` tokens; the context
is cut into windows of ``max_len - len(question) - 3`` tokens that start every
``doc_stride`` tokens. Every context token keeps its character span in the
original context, so an answer is rebuilt from the original characters
(exactly, also for Chinese) by :class:`paddlepalm.head.MRC`.

``num_examples`` counts windows (PALM's meaning); ``num_questions`` counts questions.

A training question whose answer cannot be found in its context (``answer_start``
pointing elsewhere, or at no context token) is skipped, as PALM did ("Could not
find answer"), and so is a training question that is empty: ``load_data`` prints
how many, and their ids are kept in ``skipped_questions``. ``strict=True`` makes
such a question an error. (Outside training an empty question is an error.)
"""
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np

from paddlepalm.reader.base_reader import Batch, Feature, Reader
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.tokenization import Lang
from paddlepalm.utils.fileio import FileFormatError, read_json


@dataclass
class MRCExample:
    """One question and its context; ``answers`` holds every gold answer text."""

    index: int
    qid: str
    question: str
    context: str
    answers: List[str] = field(default_factory=list)
    answer_start: Optional[int] = None  # character offset of the training answer
    skip_reason: Optional[str] = None  # why this training question cannot be used


class MRCReader(Reader):
    FILE_FORMATS = ("json", "tsv")  # SQuAD JSON either way: PALM scripts call load_data() with its default 'tsv'

    def __init__(self, vocab_path: str, max_len: int, max_query_len: int, doc_stride: int,
                 tokenizer: Literal["wordpiece"] = "wordpiece", lang: Lang = "en", seed: Optional[int] = None,
                 do_lower_case: bool = False, remove_noanswer: bool = True, phase: str = "train",
                 strict: bool = False):
        if tokenizer != "wordpiece":
            raise ValueError(f"MRCReader needs tokenizer='wordpiece' ([CLS] question [SEP] context windows, with the "
                             f"character offsets of every sub-word token), got {tokenizer!r}: the word-level "
                             "tokenizers are for ELMo, on which MRC does not run")
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase)
        if max_query_len < 1 or max_query_len > max_len - 4:
            raise ValueError(f"max_query_len must be in [1, max_len - 4], got {max_query_len} (max_len {max_len})")
        if doc_stride < 1:
            raise ValueError(f"doc_stride must be positive, got {doc_stride}")
        self.max_query_len = int(max_query_len)
        self.doc_stride = int(doc_stride)
        self.remove_noanswer = bool(remove_noanswer)
        self.strict = bool(strict)
        self.skipped_questions: List[str] = []
        self.examples: List[MRCExample] = []
        self.num_dropped_windows = 0

    @property
    def num_questions(self) -> int:
        return len(self.examples)

    def get_epoch_outputs(self) -> Dict[str, Any]:
        """What the MRC head needs to turn window logits into answer text."""
        return {"examples": self.examples, "features": self._features}

    # ------------------------------------------------------------------ parsing
    def _read_examples(self, input_file: str) -> List[Feature]:
        examples = parse_squad(input_file, training=self.phase == "train", need_answers=self.phase != "predict")
        cls_id, sep_id = self.tokenizer.convert_tokens_to_ids([self.tokenizer.cls_token, self.tokenizer.sep_token])
        features: List[Feature] = []
        self.examples, self.skipped_questions = [], []
        self.num_dropped_windows = 0
        context_cache: Dict[str, Tuple[List[int], List[Tuple[int, int]]]] = {}
        for example in examples:
            if example.context not in context_cache:
                context_cache = {example.context: self._tokenize_context(input_file, example)}
            doc_ids, doc_spans = context_cache[example.context]
            answer = None
            if self.phase == "train":
                answer = self._answer_tokens(example, doc_spans) if example.skip_reason is None else None
                if answer is None:
                    self._skip(input_file, example, example.skip_reason
                               or f"the answer {example.answers[0]!r} covers no context token")
                    continue
            example.index = len(self.examples)  # renumbered past skipped questions
            self.examples.append(example)
            self._add_windows(example, doc_ids, doc_spans, answer, features, cls_id, sep_id)
        if self.skipped_questions:
            skipped = self.skipped_questions
            shown = ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
            empty = sum(1 for e in examples if e.skip_reason == _EMPTY_QUESTION)
            kinds = f"{len(skipped) - empty} whose answer is not found in the context" + (
                f", {empty} with an empty question" if empty else "")
            print(f"MRCReader: {input_file}: skipped {len(skipped)} of {len(examples)} training questions, "
                  f"{kinds} (ids: {shown}; all in reader.skipped_questions; strict=True makes this an error)",
                  file=sys.stderr, flush=True)
        return features

    def _add_windows(self, example: MRCExample, doc_ids: List[int], doc_spans: List[Tuple[int, int]],
                     answer: Optional[Tuple[int, int]], features: List[Feature], cls_id: int, sep_id: int) -> None:
        """Append the windows of one question to ``features``."""
        question_tokens = self.tokenizer.tokenize(example.question)
        query_ids = self.tokenizer.convert_tokens_to_ids(question_tokens[:self.max_query_len])
        doc_budget = self.max_len - len(query_ids) - 3
        windows = _window_starts(len(doc_ids), doc_budget, self.doc_stride)
        for window_start in windows:
            length = min(doc_budget, len(doc_ids) - window_start)
            offset = len(query_ids) + 2  # position of the first context token
            feature = {
                "token_ids": [cls_id] + query_ids + [sep_id] + doc_ids[window_start:window_start + length] + [sep_id],
                "segment_ids": [0] * offset + [1] * (length + 1),
                "question_index": example.index,
                "doc_offset": offset,
                "token_spans": doc_spans[window_start:window_start + length],
                "max_context": [_is_max_context(windows, doc_budget, len(doc_ids), window_start, window_start + i)
                                for i in range(length)],
                "truncated": len(question_tokens) > self.max_query_len,
            }
            if answer is not None:
                inside = window_start <= answer[0] and answer[1] < window_start + length
                if not inside and self.remove_noanswer:
                    self.num_dropped_windows += 1
                    continue
                feature["start"] = answer[0] - window_start + offset if inside else 0
                feature["end"] = answer[1] - window_start + offset if inside else 0
            feature["example_id"] = len(features)
            features.append(feature)

    def _extra_settings(self) -> Dict[str, Any]:
        return {"max_query_len": self.max_query_len, "doc_stride": self.doc_stride}

    def features_of(self, inputs: Sequence[Any], pretokenized: bool = False) -> List[Feature]:
        """``inputs``: ``(question, context)`` pairs or ``{"question", "context"}`` dicts. The reader
        then holds these questions (``get_epoch_outputs``, for the head's answer decoding); a
        question's windows share its ``question_index``, its position in ``inputs``. A long
        context is cut into windows, not truncated (``truncated``: the question was cut).
        Answers are character spans of the raw context, so there is no pre-tokenized form."""
        if pretokenized:
            raise ValueError("MRCReader reads raw (question, context) text only: answers are spans of the raw context")
        cls_id, sep_id = self.tokenizer.convert_tokens_to_ids([self.tokenizer.cls_token, self.tokenizer.sep_token])
        self.examples, features = [], []
        for index, item in enumerate(inputs):
            if isinstance(item, dict):
                item = (item.get("question"), item.get("context"))
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item)):
                raise TypeError(f"input {index} must be a (question, context) pair of strings or a dict with "
                                f"'question' and 'context', got {type(item).__name__}: {item!r:.80}")
            example = MRCExample(index, str(index), item[0], item[1])
            self.examples.append(example)
            doc_ids, doc_spans = self._tokenize_context("(input)", example)
            self._add_windows(example, doc_ids, doc_spans, None, features, cls_id, sep_id)
        self._features = features
        return features

    def input_index(self, feature: Feature) -> int:
        """A question's windows come from one input: its ``question_index``."""
        return feature["question_index"]

    def _skip(self, path: str, example: MRCExample, problem: str) -> None:
        """PALM skipped a training question whose answer it could not find; ``strict`` refuses it."""
        if self.strict:
            raise DataFormatError(path, None, f"question id {example.qid!r}: {problem}")
        self.skipped_questions.append(example.qid)

    def _tokenize_context(self, path: str, example: MRCExample) -> Tuple[List[int], List[Tuple[int, int]]]:
        tokens = self.tokenizer.tokenize(example.context)
        spans = [tuple(s) for s in self.tokenizer.get_offset_mapping(example.context)]
        if len(tokens) != len(spans):
            raise DataFormatError(path, None, f"question id {example.qid!r}: the tokenizer gave {len(tokens)} tokens "
                                              f"but {len(spans)} character spans for the context")
        return self.tokenizer.convert_tokens_to_ids(tokens), spans

    @staticmethod
    def _answer_tokens(example: MRCExample, spans: Sequence[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
        """First and last context token of the training answer."""
        first_char = example.answer_start
        last_char = first_char + len(example.answers[0])
        covering = [i for i, (s, e) in enumerate(spans) if s < last_char and e > first_char]
        return (covering[0], covering[-1]) if covering else None

    # ----------------------------------------------------------------- batching
    def _label_attrs(self) -> Dict[str, Any]:
        attrs = {"unique_ids": ([-1], "int64")}
        if self.phase == "train":
            attrs.update({"start_positions": ([-1], "int64"), "end_positions": ([-1], "int64")})
        return attrs

    def _collate_labels(self, features: Sequence[Feature], width: int) -> Batch:
        batch = {"unique_ids": np.array([f["example_id"] for f in features], dtype="int64")}
        if self.phase == "train":
            batch["start_positions"] = np.array([f["start"] for f in features], dtype="int64")
            batch["end_positions"] = np.array([f["end"] for f in features], dtype="int64")
        return batch


def _window_starts(num_tokens: int, budget: int, stride: int) -> List[int]:
    """Starts of the context windows of ``budget`` tokens. A stride longer than a window moves by a
    window instead, so that no context token is left out of every window (and no window is empty)."""
    if budget < 1:
        raise ValueError(f"no room for context tokens: the window holds {budget} (max_len too short for "
                         "the question, or max_query_len too long)")
    step = min(stride, budget)
    starts = [0]
    while starts[-1] + budget < num_tokens:
        starts.append(starts[-1] + step)
    return starts


def _is_max_context(starts: Sequence[int], budget: int, num_tokens: int, window_start: int, position: int) -> bool:
    """Whether ``window_start``'s window gives ``position`` the most context on both sides (SQuAD's rule)."""
    best_score, best_start = None, None
    for start in starts:
        end = min(start + budget, num_tokens) - 1
        if not start <= position <= end:
            continue
        score = min(position - start, end - position) + 0.01 * (end - start + 1)
        if best_score is None or score > best_score:
            best_score, best_start = score, start
    return best_start == window_start


_EMPTY_QUESTION = "empty question"


def parse_squad(path: str, training: bool, need_answers: bool = True) -> List[MRCExample]:
    """Questions of a SQuAD-format file, checked; errors name the file and the question id."""
    try:
        data = read_json(path)
    except FileFormatError as err:
        raise DataFormatError(path, err.line, err.problem) from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataFormatError(path, None, "expected a SQuAD object with a 'data' list")
    examples: List[MRCExample] = []
    seen: Dict[str, str] = {}
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(_field(path, article, "paragraphs", f"article {a}")):
            where = f"article {a} paragraph {p}"
            qas = _field(path, paragraph, "qas", where)
            context = _field(path, paragraph, "context", where if not qas else _qid(qas[0], where))
            for q, qa in enumerate(qas):
                qid = _qid(qa, f"{where} question {q}")
                if not isinstance(context, str) or not context.strip():
                    raise DataFormatError(path, None, f"{qid}: empty context")
                example = _parse_question(path, qa, qid, context, len(examples), training, need_answers)
                if example.qid in seen:
                    raise DataFormatError(path, None, f"duplicate question id {example.qid!r} ({seen[example.qid]} "
                                                      f"and {where} question {q}): its predictions would collide")
                seen[example.qid] = f"{where} question {q}"
                examples.append(example)
    return examples


def _qid(qa: Any, where: str) -> str:
    if isinstance(qa, dict) and isinstance(qa.get("id"), (str, int)):
        return f"question id {qa['id']!r}"
    return f"{where} (no 'id')"


def _field(path: str, obj: Any, name: str, where: str) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise DataFormatError(path, None, f"{where}: missing field '{name}'")
    return obj[name]


def _parse_question(path: str, qa: Dict, where: str, context: str, index: int, training: bool,
                    need_answers: bool) -> MRCExample:
    if "id" not in qa:
        raise DataFormatError(path, None, f"{where}: missing field 'id'")
    question = _field(path, qa, "question", where)
    if not isinstance(question, str):
        raise DataFormatError(path, None, f"{where}: the question must be a string, got {question!r}")
    if not question.strip() and not training:
        raise DataFormatError(path, None, f"{where}: {_EMPTY_QUESTION}")
    for name, text in (("question", question), ("context", context)):
        if "\x00" in text:
            raise DataFormatError(path, None, f"{where}: NUL byte in the {name} (at character {text.index(chr(0))})")
    example = MRCExample(index, str(qa["id"]), question, context)
    if not question.strip():
        example.skip_reason = _EMPTY_QUESTION  # training skips it (the CMRC 2018 trial file has two)
    answers = qa.get("answers")
    if answers is None:
        if need_answers:
            raise DataFormatError(path, None, f"{where}: missing field 'answers'")
        return example
    for number, answer in enumerate(answers):
        text = _field(path, answer, "text", f"{where} answer {number}")
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(path, None, f"{where}: answer {number} is empty")
        example.answers.append(text)
    if training:
        if len(answers) != 1:
            raise DataFormatError(path, None, f"{where}: training needs exactly one answer, found {len(answers)}")
        start = _field(path, answers[0], "answer_start", f"{where} answer 0")
        text = example.answers[0]
        if not isinstance(start, int) or isinstance(start, bool):
            raise DataFormatError(path, None, f"{where}: answer_start must be an integer, got {start!r}")
        example.answer_start = start
        if context[start:start + len(text)] != text and example.skip_reason is None:
            example.skip_reason = (f"answer_start {start} does not point at the answer {text!r} "
                                   f"(the context there reads {context[start:start + len(text)]!r})")
    elif need_answers and not example.answers:
        raise DataFormatError(path, None, f"{where}: no gold answer")
    return example
