"""The auxiliary-task data makers of issue 25: People's Daily 1998 (segmentation and POS over
characters, split by date) and the two-label reviews CSV; and the per-class F1 metric that reports
the rarest review category."""
import json
import subprocess
import sys

import numpy as np
import pytest

from paddlepalm.evaluation import METRICS
from paddlepalm.prepare import rmrb
from paddlepalm.prepare.reviews import read_reviews, write_reviews
from paddlepalm.reader.errors import DataFormatError

RMRB = ("19980101-01-001-001/m  迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  。/w  [中央/n  人民/n  广播/vn  电台/n]nt  好/a  \n"
        "\n"
        "19980128-01-001-001/m  江/nr  泽民/nr  发表/v  讲话/n  \n"
        "19980131-02-003-004/m  １２月/t  ３１日/t  \n")


def test_rmrb_segmentation_and_pos_over_characters_split_by_date(tmp_path):
    path = tmp_path / "RMRB.txt"
    path.write_text(RMRB, encoding="utf-8")
    seg = rmrb.read_splits(str(path), "segmentation")
    assert [len(seg[s]) for s in ("train", "dev", "test")] == [2, 1, 1]  # the first paragraph cut after 。
    first, second = seg["train"]
    assert "".join(first.tokens) == "迈向充满希望的新世纪。"
    assert first.tags == list("BEBEBESSBES")
    # a bracketed entity keeps its inner words; the bracket's tag is dropped
    assert "".join(second.tokens) == "中央人民广播电台好" and second.tags == list("BEBEBEBES")
    assert seg["dev"][0].where == "RMRB.txt:3"
    pos = rmrb.read_splits(str(path), "pos")
    assert pos["dev"][0].tags == ["B-nr", "B-nr", "I-nr", "B-v", "I-v", "B-n", "I-n"]
    assert pos["test"][0].tags == ["B-t", "I-t", "I-t", "B-t", "I-t", "I-t"]


@pytest.mark.parametrize("line, problem", [("迈向/v  充满/v", "expected an id token"),
                                           ("19980101-01-001-001/m  迈向v", "expected word/POS, found '迈向v'")])
def test_a_bad_rmrb_line_names_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "RMRB.txt"
    path.write_text("19980101-01-001-001/m  好/a\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"RMRB.txt:2: {problem}"):
        rmrb.read_splits(str(path))


def test_reviews_csv_keeps_quoted_commas_and_line_breaks_on_one_row(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('cat,label,review\n书籍,1,"好书, 值得\n一读"\n水果,0,\ufeff不新鲜\n', encoding="utf-8")
    rows = read_reviews(str(path))
    assert rows == [("书籍", "1", "好书, 值得 一读"), ("水果", "0", "不新鲜")]
    write_reviews({"train": rows, "dev": rows[:1], "test": rows[1:]}, str(tmp_path / "out"))
    assert (tmp_path / "out" / "cat" / "train.tsv").read_text(encoding="utf-8").splitlines() == \
        ["label\ttext_a", "书籍\t好书, 值得 一读", "水果\t不新鲜"]
    assert (tmp_path / "out" / "senti" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1] == "1\t好书, 值得 一读"
    assert json.loads((tmp_path / "out" / "cat" / "label_map.json").read_text(encoding="utf-8")) == {"书籍": 0, "水果": 1}
    path.write_text('cat,label,review\n书籍,1,好\n书籍,,空标签\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train.csv:3: expected three non-empty fields"):
        read_reviews(str(path))


def test_class_f1_scores_each_class_on_its_own():
    class Reader:
        label_map = {"书籍": 0, "水果": 1, "手机": 2}
        _features = [{"label": g} for g in (0, 0, 1, 1, 2)]

    scores = METRICS["class_f1"]()([{"label": p} for p in (0, 1, 1, 0, 2)], Reader())
    # 书籍: tp 1, 2 predicted, 2 gold; 水果 likewise; 手机 exact
    assert scores == {"f1/书籍": pytest.approx(0.5), "f1/水果": pytest.approx(0.5), "f1/手机": 1.0}


def test_the_makers_write_the_configs_files_from_their_samples(tmp_path):
    for example, folders in (("zh-ner-aux", ("weibo", "resume", "msra", "seg", "pos")), ("reviews", ("cat", "senti"))):
        out = tmp_path / example
        subprocess.run([sys.executable, "examples/configs/make_data.py", example, "--out", str(out)], check=True,
                       capture_output=True)
        for folder in folders:
            rows = {s: (out / folder / f"{s}.tsv").read_text(encoding="utf-8").splitlines() for s in ("train", "dev", "test")}
            assert all(len(r) > 10 for r in rows.values()), (example, folder)
            label_map = json.loads((out / folder / "label_map.json").read_text(encoding="utf-8"))
            assert len(label_map) >= 2
        assert (out / "vocab.txt").exists()
    seg = (tmp_path / "zh-ner-aux" / "seg" / "train.tsv").read_text(encoding="utf-8").splitlines()[1]
    chars, tags = seg.split("\t")
    assert len(chars.split("\x02")) == len(tags.split("\x02")) and set(tags.split("\x02")) <= set("BMES")
    reviews = np.array([len(open(tmp_path / "reviews" / t / "train.tsv", encoding="utf-8").readlines())
                        for t in ("cat", "senti")])
    assert reviews[0] == reviews[1]  # the same rows: train.joint reads them as one batch
