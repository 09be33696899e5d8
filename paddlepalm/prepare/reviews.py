"""Reviews with two labels each (``online_shopping_10_cats``: ``cat,label,review``) as two
classification tasks over the same texts: ``cat/`` (the product category) and ``senti/`` (the
sentiment), their rows in the same order so one batch can feed both heads (``train.joint``)."""
import csv
import io
import os
import random
from typing import Dict, List, Tuple

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.utils import fileio

Review = Tuple[str, str, str]  # (category, sentiment, text)
HEADER = ["cat", "label", "review"]


def read_reviews(path: str) -> List[Review]:
    """The rows of a ``cat,label,review`` CSV (RFC 4180 quoting: a review may hold commas, quotes and
    line breaks). A row that is not three fields, or an empty field, raises :class:`DataFormatError`
    naming the file and the line."""
    with io.StringIO(fileio.read_text(path), newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header != HEADER:
            raise DataFormatError(path, 1, f"expected the header {','.join(HEADER)}, found {header}")
        out = []
        for row in rows:
            line = rows.line_num
            if len(row) != 3 or not all(field.strip() for field in row):
                raise DataFormatError(path, line, f"expected three non-empty fields cat,label,review, found {row}")
            out.append((row[0], row[1], _one_line(row[2])))
    return out


def _one_line(text: str) -> str:
    """The review on one TSV line: tabs and line breaks become spaces, stray BOMs are dropped."""
    return " ".join(text.replace("\ufeff", "").split())


def write_reviews(splits: Dict[str, List[Review]], out: str) -> None:
    """``cat/`` and ``senti/`` TSV files (``label<TAB>text_a``) and each task's label map (from the
    training split)."""
    for task, column in (("cat", 0), ("senti", 1)):
        folder = os.path.join(out, task)
        os.makedirs(folder, exist_ok=True)
        labels = sorted({row[column] for row in splits["train"]})
        fileio.write_json(os.path.join(folder, "label_map.json"), {name: i for i, name in enumerate(labels)})
        for name, rows in splits.items():
            lines = ["label\ttext_a"] + [f"{row[column]}\t{row[2]}" for row in rows]
            fileio.write_text(os.path.join(folder, f"{name}.tsv"), "\n".join(lines) + "\n")


def sample_reviews(seed: int = 1) -> Dict[str, List[Review]]:
    """A small generated stand-in with the real data's shape: 4 categories of which one is rare, two
    sentiments, each review naming its product and a positive or negative phrase."""
    rng = random.Random(seed)
    products = {"书籍": ["这本书", "小说", "作者"], "手机": ["手机", "屏幕", "电池"], "酒店": ["酒店", "房间", "前台"],
                "水果": ["苹果", "橙子", "水果"]}
    weights = {"书籍": 5, "手机": 5, "酒店": 5, "水果": 1}
    good, bad = ["很好", "不错", "满意", "喜欢", "推荐"], ["太差", "失望", "不好", "糟糕", "退货"]

    def review() -> Review:
        cat = rng.choices(list(weights), weights=list(weights.values()))[0]
        positive = rng.random() < 0.5
        text = rng.choice(products[cat]) + rng.choice(good if positive else bad) + "，" + \
            rng.choice(["还会再来", "下次再说", "一般般吧", "物流很快", "包装一般"]) + "。"
        return cat, "1" if positive else "0", text

    return {name: [review() for _ in range(size)] for name, size in (("train", 400), ("dev", 80), ("test", 80))}
