"""Generate a small Chinese sentiment data set (ChnSentiCorp layout) from templates (no copied data).

Writes ``train.tsv``/``dev.tsv`` (``label<TAB>text_a``) and ``test.tsv`` (``qid<TAB>label<TAB>text_a``).
"""
import os
import random

SUBJECTS = ["酒店", "房间", "服务", "早餐", "这本书", "电脑", "屏幕", "键盘", "快递", "前台"]
POSITIVE = ["非常好", "很干净", "特别满意", "值得推荐", "性价比高", "态度热情", "物超所值", "很舒服"]
NEGATIVE = ["太差了", "很脏", "非常失望", "不推荐", "价格太贵", "态度冷淡", "质量一般", "很吵"]
FILLERS = ["总的来说", "这次入住", "上周买的", "朋友推荐的", "第二次来", "说实话"]


def sentence(rng: random.Random, label: int) -> str:
    words = POSITIVE if label else NEGATIVE
    parts = [rng.choice(FILLERS), rng.choice(SUBJECTS) + rng.choice(words)]
    if rng.random() < 0.5:  # a weaker clause of the other polarity makes it less trivial
        parts.append("不过" + rng.choice(SUBJECTS) + rng.choice(NEGATIVE if label else POSITIVE)[:2])
    parts.append(rng.choice(SUBJECTS) + rng.choice(words))
    return "，".join(parts) + "。"


def make_sample(out_dir: str, seed: int = 1, sizes=(800, 160, 160)) -> str:
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    for split, count in zip(("train", "dev", "test"), sizes):
        with open(os.path.join(out_dir, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("qid\tlabel\ttext_a\n" if split == "test" else "label\ttext_a\n")
            for i in range(count):
                label = rng.randint(0, 1)
                prefix = f"{i}\t" if split == "test" else ""
                f.write(f"{prefix}{label}\t{sentence(rng, label)}\n")
    return out_dir


if __name__ == "__main__":
    print(make_sample(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")))
