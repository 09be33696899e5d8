"""CMRC 2018 and SQuAD metrics against hand-computed EM/F1 (fractions worked out in the comments)."""
import pytest

from paddlepalm.metrics.mrc import cmrc_em, cmrc_f1, mixed_segmentation, mrc_scores, squad_em, squad_f1

CMRC_CASES = [
    # (gold answers, prediction, EM, F1)
    (["光荣和ω-force"], "光荣和ω-force", 1, 1.0),
    (["北京"], "北京。", 1, 1.0),                      # trailing 。 is removed
    (["2008年"], "2008", 0, 2 / 3),                   # segments [2008, 年] vs [2008]: P 1, R 1/2
    (["中华人民共和国"], "人民共和", 0, 8 / 11),         # LCS 4: P 4/4, R 4/7
    (["光荣", "光荣公司", "ω-force"], "光荣公司", 1, 1.0),  # best of several gold answers
    (["上海市", "上海"], "上海浦东", 0, 2 / 3),          # vs 上海市: 4/7; vs 上海: P 1/2, R 1 -> 2/3
    (["甲乙丙丁"], "甲丙乙丁", 0, 0.25),                # contiguous LCS is 1 (a bag of characters would give 1.0)
    (["iPhone 6 Plus"], "iphone 6", 0, 0.8),          # words [iphone, 6, plus] vs [iphone, 6]
    (["苹果公司Apple Inc."], "Apple Inc.", 0, 0.6),    # [苹,果,公,司,apple,inc,.] vs [apple,inc,.]: R 3/7
    (["《红楼梦》"], "红楼梦", 1, 1.0),                  # 《 》 are removed
    (["“你好”"], "你好", 1, 1.0),                       # full-width quotes are removed
    (['"你好"'], "你好", 0, 2 / 3),                     # ASCII quotes are not: ['"',你,好,'"'] vs [你,好]
    (["北京"], "上海", 0, 0.0),
    (["北京"], "", 0, 0.0),
]


@pytest.mark.parametrize("answers,prediction,em,f1", CMRC_CASES)
def test_cmrc2018_metric_matches_hand_computation(answers, prediction, em, f1):
    assert cmrc_em(answers, prediction) == em
    assert cmrc_f1(answers, prediction) == pytest.approx(f1)


def test_cmrc_ellipsis_is_never_removed():
    # the official list holds the two-character string '……', compared with single characters
    assert cmrc_em(["等等……"], "等等") == 0
    assert mixed_segmentation("ω-force 3.5版", remove_punctuation=True) == ["ωforce", "3.5", "版"]


SQUAD_CASES = [
    (["the Eiffel Tower"], "Eiffel Tower", 1, 1.0),               # articles dropped
    (["Denver Broncos"], "the Denver Broncos team", 0, 0.8),     # P 2/3, R 1
    (["1,000 people", "a thousand"], "1000 people", 1, 1.0),     # punctuation dropped
    (["Paris"], "London", 0, 0.0),
]


@pytest.mark.parametrize("answers,prediction,em,f1", SQUAD_CASES)
def test_squad_metric_matches_hand_computation(answers, prediction, em, f1):
    assert squad_em(answers, prediction) == em
    assert squad_f1(answers, prediction) == pytest.approx(f1)


def test_aggregate_scores_count_unanswered_questions_as_zero():
    gold = {"q1": ["北京"], "q2": ["2008年"], "q3": ["上海"]}
    scores = mrc_scores(gold, {"q1": "北京", "q2": "2008"}, lang="cn")
    assert scores["em"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert scores["skipped"] == 1 and scores["total"] == 3
    assert mrc_scores({"a": ["The cat"]}, {"a": "cat"}, lang="en")["em"] == 100.0
