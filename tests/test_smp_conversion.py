"""examples/data/smp2019_to_cais.py: SMP2019 ECDT NLU (slot values without offsets) into the CAIS
layout that ``prepare: {kind: conll}`` reads (the held-out-style check of docs/results.md)."""
import os
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "examples", "data"))

import smp2019_to_cais  # noqa: E402

from paddlepalm.prepare import prepare  # noqa: E402


def test_bioes_tags_place_each_value_once():
    tags, skipped = smp2019_to_cais.bioes_tags("打开qq音乐放歌", {"name": "qq音乐", "song": "音乐"})
    assert tags == ["O", "O", "B-name", "I-name", "I-name", "E-name", "O", "O"] and skipped == 1
    assert smp2019_to_cais.bioes_tags("开灯", {"x": "灯"}) == (["O", "S-x"], 0)


def test_converted_smp2019_prepares_as_conll(data_root, tmp_path):
    counts = smp2019_to_cais.convert(os.path.join(data_root, "smp2019_ecdt_nlu"), str(tmp_path / "smp"))
    assert (counts["train"], counts["dev"], counts["test"]) == (2063, 258, 258)
    prepared = prepare("conll", str(tmp_path / "smp"), str(tmp_path / "data"))
    with open(tmp_path / "data" / "tags" / "test.tsv", encoding="utf-8") as f:
        assert sum(1 for _ in f) == 258 + 1  # a header, then one sentence per line
    assert prepared is not None
