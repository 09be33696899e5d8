"""The ATIS/SNIPS joint layout: ``{train,valid,test}/seq.in`` (space-separated words),
``seq.out`` (one BIO tag per word) and ``label`` (one intent per line), the same line in the three
files being one sentence (``dev/`` is taken for ``valid/`` too)."""
import os
from typing import Dict, List

from paddlepalm.prepare.common import Example, check_tag, unique_split
from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils.fileio import FileFormatError, read_lines

FILES = ("seq.in", "seq.out", "label")


def read(source: str) -> Dict[str, List[Example]]:
    folders = unique_split(source, [("train", "train"), ("dev", "valid"), ("dev", "dev"), ("test", "test")])
    if "train" not in folders:
        raise FileNotFoundError(f"{source}: no train/ folder with seq.in, seq.out and label")
    return {split: read_split(folder) for split, folder in folders.items()}


def read_split(folder: str) -> List[Example]:
    """The sentences of one split folder; a line whose words and tags differ in number, or a bad tag,
    is an error naming ``seq.out:line``."""
    paths = {name: os.path.join(folder, name) for name in FILES}
    lines = {name: _lines(path) for name, path in paths.items()}
    counts = {name: len(v) for name, v in lines.items()}
    if len(set(counts.values())) != 1:
        raise DataFormatError(folder, None, f"seq.in, seq.out and label have different line counts: {counts}")
    examples = []
    for number, (text, tags, intent) in enumerate(zip(*(lines[name] for name in FILES)), start=1):
        words, tag_list = text.split(), tags.split()
        if len(words) != len(tag_list):
            raise DataFormatError(paths["seq.out"], number, f"{len(words)} words in seq.in but {len(tag_list)} tags")
        if not words:
            raise DataFormatError(paths["seq.in"], number, "an empty sentence")
        if not intent.strip():
            raise DataFormatError(paths["label"], number, "an empty label")
        for tag in tag_list:
            check_tag(paths["seq.out"], number, tag)
        examples.append(Example(f"{paths['seq.out']}:{number}", words, tag_list, intent.strip(),
                                label_where=f"{paths['label']}:{number}"))
    return examples


def _lines(path: str) -> List[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found (a split folder holds {', '.join(FILES)})")
    try:
        return read_lines(path)
    except FileFormatError as err:
        raise DataFormatError(err.path, err.line, err.problem) from None
