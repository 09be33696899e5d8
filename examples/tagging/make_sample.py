"""Generate a small Chinese NER data set in MSRA's ``word/tag`` layout (tags o, nr, ns, nt) from templates.

Writes ``train.txt`` and ``test_with_label.txt`` (one sentence per line); no copied data.
"""
import os
import random

PEOPLE = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏"]
PLACES = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "西安"]
ORGS = ["新华社", "中国银行", "清华大学", "国家统计局", "人民日报社", "北京大学", "中国科学院"]
TEMPLATES = [
    "{nr}/nr 昨天/o 在/o {ns}/ns 参观/o 了/o {nt}/nt 。/o",
    "{nt}/nt 宣布/o ，/o {nr}/nr 将/o 前往/o {ns}/ns 访问/o 。/o",
    "来自/o {ns}/ns 的/o {nr}/nr 加入/o {nt}/nt 已经/o 三年/o 了/o 。/o",
    "据/o {nt}/nt 报道/o ，/o {ns}/ns 今年/o 经济/o 增长/o 较快/o 。/o",
    "{nr}/nr 和/o {nr}/nr 一起/o 去/o {ns}/ns 旅游/o 。/o",
    "今天/o 天气/o 很好/o ，/o 大家/o 都/o 出门/o 了/o 。/o",
]


def sentence(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    out = []
    for token in template.split():
        if token.startswith("{nr}"):
            token = rng.choice(PEOPLE) + "/nr"
        elif token.startswith("{ns}"):
            token = rng.choice(PLACES) + "/ns"
        elif token.startswith("{nt}"):
            token = rng.choice(ORGS) + "/nt"
        out.append(token)
    return " ".join(out)


def make_sample(out_dir: str, seed: int = 1, sizes=(800, 200)) -> str:
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    for name, count in zip(("train.txt", "test_with_label.txt"), sizes):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.writelines(sentence(rng) + "\n" for _ in range(count))
    return out_dir


if __name__ == "__main__":
    print(make_sample(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")))
