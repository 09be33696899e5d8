"""Generate a small Chinese question-matching data set (AFQMC layout) from templates (no copied data).

Writes ``train.txt``, ``dev.txt``, ``test.txt``: ``text_a<TAB>text_b<TAB>label`` without a header,
label 1 when both questions ask the same thing.
"""
import os
import random

TOPICS = ["花呗", "借呗", "余额宝", "银行卡", "信用卡", "账户", "红包", "积分"]
# paraphrase groups: questions in one group ask the same thing about {t}
INTENTS = [
    ["{t}怎么还款", "{t}如何还钱", "怎样还{t}的钱"],
    ["{t}怎么开通", "如何开通{t}", "{t}在哪里开通"],
    ["{t}额度怎么提升", "怎样提高{t}额度", "{t}提额方法"],
    ["{t}可以分期吗", "{t}能不能分期", "{t}支持分期付款吗"],
    ["{t}被冻结了怎么办", "{t}冻结怎么解除", "为什么{t}被冻结"],
]


def pair(rng: random.Random):
    topic = rng.choice(TOPICS)
    group = rng.randrange(len(INTENTS))
    a = rng.choice(INTENTS[group]).format(t=topic)
    if rng.random() < 0.4:
        b = rng.choice([q for q in INTENTS[group] if q.format(t=topic) != a]).format(t=topic)
        return a, b, 1
    if rng.random() < 0.5:  # same intent, other topic
        other = rng.choice([t for t in TOPICS if t != topic])
        return a, rng.choice(INTENTS[group]).format(t=other), 0
    other_group = rng.choice([g for g in range(len(INTENTS)) if g != group])
    return a, rng.choice(INTENTS[other_group]).format(t=topic), 0


def make_sample(out_dir: str, seed: int = 1, sizes=(1000, 200, 200)) -> str:
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    for split, count in zip(("train", "dev", "test"), sizes):
        with open(os.path.join(out_dir, f"{split}.txt"), "w", encoding="utf-8") as f:
            for _ in range(count):
                a, b, label = pair(rng)
                f.write(f"{a}\t{b}\t{label}\n")
    return out_dir


if __name__ == "__main__":
    print(make_sample(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")))
