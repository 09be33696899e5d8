"""Generate a small stand-in for the four data sets of the Chinese mixture, in their source layouts
(``tnews/``, ``afqmc/``, ``chnsenticorp/``, ``weibo_ner/``), from templates (no copied data).

Sizes keep the mixture's spread (TNEWS 10x Weibo) so that the schedules differ on it too.
"""
import os
import random
from typing import Dict

TNEWS_LABELS = ["news_story", "news_culture", "news_entertainment", "news_sports", "news_finance", "news_house",
                "news_car", "news_edu", "news_tech", "news_military", "news_travel", "news_world", "news_stock",
                "news_agriculture", "news_game"]
TOPICS = ["故事", "文化", "明星", "比赛", "银行", "房价", "汽车", "高考", "手机", "军舰", "旅游", "外交", "股票", "农民",
          "游戏"]
FRAMES = ["{}的最新消息", "关于{}你怎么看", "今年{}有哪些变化", "{}引发热议", "一文看懂{}", "{}迎来新机遇"]
QUESTIONS = [("花呗怎么还款", "花呗如何还钱"), ("借呗能提额吗", "借呗额度可以提高吗"), ("花呗逾期会怎样", "花呗晚还有什么后果"),
             ("怎么关闭花呗", "花呗如何停用"), ("借呗利息多少", "借呗的利率是多少"), ("花呗支持哪些商家", "哪些店能用花呗")]
SUBJECTS = ["酒店", "房间", "服务", "早餐", "这本书", "电脑", "屏幕", "快递"]
POSITIVE = ["非常好", "很干净", "特别满意", "值得推荐", "性价比高"]
NEGATIVE = ["太差了", "很脏", "非常失望", "不推荐", "价格太贵"]
NAMES = {"PER.NAM": ["张伟", "李娜", "王芳"], "PER.NOM": ["老师", "记者", "妈妈"], "GPE.NAM": ["北京", "上海", "广州"],
         "ORG.NAM": ["央视", "清华大学"], "LOC.NAM": ["长江", "西湖"]}
WEIBO_FRAMES = ["今天和{}一起去{}玩", "{}说{}的天气很好", "听说{}要来{}了", "{}在{}发了微博"]


def _write(path: str, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def _title(rng: random.Random, label: int) -> str:
    return rng.choice(FRAMES).format(TOPICS[label]) + rng.choice(["", "！", "？", "，值得关注"])


def _pair(rng: random.Random) -> str:
    a, b = rng.sample(range(len(QUESTIONS)), 2)
    same = rng.random() < 0.3  # AFQMC is ~30% positive
    first, second = rng.sample(QUESTIONS[a], 2) if same else (rng.choice(QUESTIONS[a]), rng.choice(QUESTIONS[b]))
    return f"{first}\t{second}\t{int(same)}"


def _review(rng: random.Random, label: int) -> str:
    words = POSITIVE if label else NEGATIVE
    return "，".join(rng.choice(SUBJECTS) + rng.choice(words) for _ in range(rng.randint(1, 3))) + "。"


def _weibo_sentence(rng: random.Random):
    """CoNLL lines ``<char><position><TAB><tag>`` of one sentence."""
    frame = rng.choice(WEIBO_FRAMES).split("{}")
    pieces = []
    for i, text in enumerate(frame):
        pieces += [(c, "O") for c in text]
        if i < len(frame) - 1:
            kind = rng.choice(sorted(NAMES))
            name = rng.choice(NAMES[kind])
            pieces += [(c, ("B-" if j == 0 else "I-") + kind) for j, c in enumerate(name)]
    return [f"{c}{i % 3}\t{tag}" for i, (c, tag) in enumerate(pieces)] + [""]


def make_sample(out_dir: str, seed: int = 1, sizes: Dict[str, int] = None) -> str:
    """Writes the four data sets under ``out_dir``; returns ``out_dir`` (the ``--source`` of make_data.py)."""
    sizes = sizes or {"tnews": 400, "afqmc": 200, "senti": 100, "weibo": 40}
    rng = random.Random(seed)
    labels = [rng.randrange(len(TNEWS_LABELS)) for _ in range(sizes["tnews"] + 120)]
    rows = [f"{_title(rng, k)}\t{TNEWS_LABELS[k]}" for k in labels]
    _write(os.path.join(out_dir, "tnews", "labels.txt"), TNEWS_LABELS)
    _write(os.path.join(out_dir, "tnews", "train.tsv"), rows[:sizes["tnews"]])
    _write(os.path.join(out_dir, "tnews", "dev.tsv"), rows[sizes["tnews"]:])
    _write(os.path.join(out_dir, "afqmc", "train.txt"), [_pair(rng) for _ in range(sizes["afqmc"])])
    _write(os.path.join(out_dir, "afqmc", "dev.txt"), [_pair(rng) for _ in range(120)])
    senti = [rng.randint(0, 1) for _ in range(sizes["senti"] + 120)]
    _write(os.path.join(out_dir, "chnsenticorp", "train.tsv"),
           ["label\ttext_a"] + [f"{k}\t{_review(rng, k)}" for k in senti[:sizes["senti"]]])
    _write(os.path.join(out_dir, "chnsenticorp", "dev.tsv"),
           ["qid\tlabel\ttext_a"] + [f"{i}\t{k}\t{_review(rng, k)}" for i, k in enumerate(senti[sizes["senti"]:])])
    for split, count in (("train", sizes["weibo"]), ("dev", 30), ("test", 30)):
        _write(os.path.join(out_dir, "weibo_ner", f"weiboNER_2nd_conll.{split}"),
               [line for _ in range(count) for line in _weibo_sentence(rng)])
    return out_dir


if __name__ == "__main__":
    print(make_sample(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")))
