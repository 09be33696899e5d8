"""What every preparation kind shares: the examples it reads, finding a data set's split files, and
writing the TSV files, label maps (from the training split only) and vocabularies the readers need."""
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.word_tokenizer import build_word_vocab, split_text, write_word_vocab
from paddlepalm.utils import fileio
from paddlepalm.utils.vocab import build_vocab, write_vocab

SPLITS = ("train", "dev", "test")
SPLIT_WORDS = {"train": ("train",), "dev": ("dev", "valid", "val"), "test": ("test",)}
_TAG = re.compile(r"O|[BIESM]-\S.*")


@dataclass
class Example:
    """One sentence of a raw data set. ``tokens``/``tags``: a tagged sentence; ``label``: a sentence
    label (an intent, a class); ``text_a``/``text_b``: the text of a classified sentence (or pair),
    by default the tokens joined by spaces. ``where``: ``file:line`` of its first line, and
    ``label_where`` of its label (another file in the ATIS layout)."""

    where: str
    tokens: Optional[List[str]] = None
    tags: Optional[List[str]] = None
    label: Optional[str] = None
    text_a: Optional[str] = None
    text_b: Optional[str] = None
    label_where: Optional[str] = None

    @property
    def text(self) -> str:
        return self.text_a if self.text_a is not None else " ".join(self.tokens or [])


@dataclass(frozen=True)
class Layout:
    """Where the files go, relative to the output folder. ``label_ids``: the labels' TSV holds class
    ids (PALM's format, for scripts that read it without a label map) instead of class names; a class
    that training never saw then gets an id past the label map's."""

    tags_dir: str = "tags"
    labels_dir: str = "labels"
    tag_map: str = os.path.join("tags", "label_map.json")
    label_map: str = os.path.join("labels", "label_map.json")
    label_ids: bool = False


@dataclass
class Prepared:
    """What a preparation wrote: counts per split, label inventory sizes, files, unseen labels."""

    kind: str
    source: str
    splits: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    tag_classes: Optional[int] = None
    label_classes: Optional[int] = None
    files: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "splits": self.splits, "tag_classes": self.tag_classes,
                "label_classes": self.label_classes, "files": self.files}


# ------------------------------------------------------------------ finding the files
def split_files(source: str, files: Optional[Mapping[str, str]], extensions: Sequence[str] = ()) -> Dict[str, str]:
    """``{split: path}``: ``files`` (relative to ``source``) when given, else the one file of
    ``source`` whose name holds the split's word (train; dev, valid or val; test). ``train`` is
    required; a missing dev or test split is left out."""
    if not os.path.isdir(source):
        raise FileNotFoundError(f"data set folder not found: {source}")
    if files:
        unknown = [s for s in files if s not in SPLITS]
        if unknown:
            raise ValueError(f"files: unknown split {unknown[0]!r}; splits are {SPLITS}")
        found = {split: os.path.join(source, name) for split, name in files.items()}
    else:
        found = {}
        names = sorted(n for n in os.listdir(source) if os.path.isfile(os.path.join(source, n))
                       and not n.startswith(".") and not n.lower().endswith(".md")
                       and (not extensions or n.lower().endswith(tuple(extensions))))
        for split in SPLITS:
            matches = [n for n in names if any(word in n.lower() for word in SPLIT_WORDS[split])]
            if len(matches) > 1:
                raise ValueError(f"{source}: several files could be the {split} split: {matches}; "
                                 f"name them with files: {{train: ..., dev: ..., test: ...}}")
            if matches:
                found[split] = os.path.join(source, matches[0])
    if "train" not in found:
        raise ValueError(f"{source}: no training split (a file named like *train*; or give files: {{train: ...}})")
    for path in found.values():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"data file not found: {path}")
    return found


def check_tag(path: str, line: int, tag: str) -> None:
    if not _TAG.fullmatch(tag):
        raise DataFormatError(path, line, f"tag {tag!r} is not O or B-, I-, E-, S-, M- and a type "
                                          "(BIO, BIOES or BMES tags)")


# ------------------------------------------------------------------ label maps
def tag_map(train: Iterable[Example]) -> Dict[str, int]:
    """The training split's tags: ``O`` first, then the others sorted."""
    return tag_map_of(e.tags or [] for e in train)


def tag_map_of(tag_sequences: Iterable[Sequence[str]]) -> Dict[str, int]:
    """``{tag: id}`` of the tags in ``tag_sequences`` (give the training split's only): ``O`` first,
    then the others sorted."""
    tags = sorted({t for sequence in tag_sequences for t in sequence} - {"O"})
    return {"O": 0, **{t: i + 1 for i, t in enumerate(tags)}}


def class_map(train: Iterable[Example]) -> Dict[str, int]:
    """The training split's sentence labels, sorted."""
    return {name: i for i, name in enumerate(sorted({e.label for e in train if e.label is not None}))}


# ------------------------------------------------------------------ writing
def write(kind: str, source: str, splits: Dict[str, List[Example]], out: str, layout: Layout = Layout(),
          lowercase: bool = False, tokenizer: str = "char") -> Prepared:
    """Write the readers' files into ``out``: per split a tags TSV (when the data has token tags) and a
    labels TSV (when it has sentence labels), the label maps of the training split, ``vocab.txt``
    (WordPiece, from the training split) and ``word_vocab.txt`` (tokens, or the sentences split by
    ``tokenizer``, for ``tokenizer: whitespace|char|jieba`` readers)."""
    train = splits["train"]
    if not train:
        raise DataFormatError(source, None, "the training split has no examples")
    prepared = Prepared(kind, source)
    has_tags = any(e.tags is not None for e in train)
    has_labels = any(e.label is not None for e in train)
    if has_tags:
        tags = tag_map(train)
        prepared.tag_classes = len(tags)
        prepared.files.append(_write_json(out, layout.tag_map, tags))
    if has_labels:
        classes = class_map(train)
        prepared.label_classes = len(classes)
        prepared.files.append(_write_json(out, layout.label_map, classes))
    for split, examples in splits.items():
        _check_like_train(examples, has_tags, has_labels)
        record: Dict[str, Any] = {"examples": len(examples)}
        if has_tags:
            record["unseen_tags"] = _unseen(split, examples, tags, lambda e: e.tags or [], "tag")
            prepared.files.append(_write_tags(out, layout, split, examples))
        if has_labels:
            record["unseen_labels"] = _unseen(split, examples, classes, lambda e: [e.label], "label")
            prepared.files.append(_write_labels(out, layout, split, examples, classes))
        prepared.splits[split] = record
    prepared.files += _write_vocabs(out, train, lowercase, tokenizer)
    fileio.write_json(os.path.join(out, "prepare.json"), prepared.as_dict())
    return prepared


def _check_like_train(examples: Sequence[Example], has_tags: bool, has_labels: bool) -> None:
    """Every split has what the training split has: token tags, sentence labels."""
    for e in examples:
        if has_tags and e.tags is None:
            raise DataFormatError(e.where, None, "no token tags (the training split has them)")
        if has_labels and e.label is None:
            raise DataFormatError(e.label_where or e.where, None, "no sentence label (the training split has them)")


def _unseen(split: str, examples: Sequence[Example], known: Mapping[str, int], labels, what: str) -> int:
    """Count the labels of ``examples`` missing from ``known``; name the first on stderr."""
    missing = [(e, label) for e in examples for label in labels(e) if label not in known]
    if missing:
        example, label = missing[0]
        where = example.label_where if what == "label" and example.label_where else example.where
        print(f"warning: {split}: {plural(len(missing), what)} unseen in training, first {label!r} at {where}; "
              "evaluation scores them as wrong (docs/data.md)", file=sys.stderr, flush=True)
    return len(missing)


def plural(count: int, what: str) -> str:
    return f"{count} {what}" + ("" if count == 1 else "s")


def _write_json(out: str, relative: str, value: Any) -> str:
    fileio.write_json(os.path.join(out, relative), value)
    return relative


def _write_tags(out: str, layout: Layout, split: str, examples: Sequence[Example]) -> str:
    relative = os.path.join(layout.tags_dir, f"{split}.tsv")
    lines = ["text_a\tlabel"] + ["\x02".join(map(_cell, e.tokens)) + "\t" + "\x02".join(e.tags) for e in examples]
    fileio.write_text(os.path.join(out, relative), "\n".join(lines) + "\n")
    return relative


def _write_labels(out: str, layout: Layout, split: str, examples: Sequence[Example],
                  classes: Mapping[str, int]) -> str:
    relative = os.path.join(layout.labels_dir, f"{split}.tsv")
    pairs = any(e.text_b is not None for e in examples)
    unseen = sorted({e.label for e in examples} - set(classes))
    ids = {**classes, **{name: len(classes) + i for i, name in enumerate(unseen)}}
    lines = ["label\ttext_a" + ("\ttext_b" if pairs else "")]
    for e in examples:
        label = str(ids[e.label]) if layout.label_ids else e.label
        lines.append("\t".join([label, _cell(e.text)] + ([_cell(e.text_b or "")] if pairs else [])))
    fileio.write_text(os.path.join(out, relative), "\n".join(lines) + "\n")
    return relative


def _cell(text: str) -> str:
    """A TSV cell (or a token in one): tabs, line breaks and the token separator become spaces."""
    return re.sub(r"[\t\r\n\x02]", " ", text)


def _write_vocabs(out: str, train: Sequence[Example], lowercase: bool, tokenizer: str) -> List[str]:
    texts = [t for e in train for t in (e.text, e.text_b) if t]
    write_vocab(build_vocab(texts, lowercase=lowercase), os.path.join(out, "vocab.txt"))
    words = [_words(e, lowercase, tokenizer) for e in train]
    write_word_vocab(build_word_vocab(words), os.path.join(out, "word_vocab.txt"))
    return ["vocab.txt", "word_vocab.txt"]


def _words(example: Example, lowercase: bool, tokenizer: str) -> List[str]:
    if example.tokens is not None and example.text_a is None:
        return [t.lower() for t in example.tokens] if lowercase else list(example.tokens)
    text = example.text + (" " + example.text_b if example.text_b else "")
    return split_text(text, tokenizer, lowercase)


def unique_split(source: str, candidates: Sequence[Tuple[str, str]]) -> Dict[str, str]:
    """``{split: folder}`` from ``(split, folder name)`` candidates that exist under ``source``."""
    found: Dict[str, str] = {}
    for split, name in candidates:
        path = os.path.join(source, name)
        if os.path.isdir(path):
            if split in found:
                raise ValueError(f"{source}: both {found[split]} and {path} could be the {split} split")
            found[split] = path
    return found
