"""A generated Chinese-like corpus, so the example runs on a fresh clone with no data."""
import random

from paddlepalm.utils.fileio import atomic_open

_SUBJECTS = ["我", "他", "她", "我们", "老师", "学生", "公司", "政府", "记者", "医生", "朋友", "孩子"]
_VERBS = ["喜欢", "访问", "研究", "支持", "参观", "报道", "讨论", "购买", "介绍", "发现"]
_PLACES = ["北京", "上海", "广州", "深圳", "南京", "杭州", "成都", "武汉", "西安", "天津"]
_OBJECTS = ["新产品", "这本书", "那部电影", "数学问题", "历史文化", "经济发展", "科学技术", "体育比赛"]
_ENDINGS = ["。", "！", "，非常好。", "，质量很差。", "了。"]


def make_sentence(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_SUBJECTS) + "在" + rng.choice(_PLACES) + rng.choice(_VERBS) + rng.choice(_OBJECTS) \
            + rng.choice(_ENDINGS)
    return rng.choice(_PLACES) + "的" + rng.choice(_SUBJECTS) + rng.choice(_VERBS) + rng.choice(_OBJECTS) \
        + rng.choice(_ENDINGS)


def make_sample(path: str, num_lines: int = 3000, seed: int = 0) -> str:
    """Write ``num_lines`` generated sentences (one per line) to ``path``."""
    rng = random.Random(seed)
    with atomic_open(path) as f:
        for _ in range(num_lines):
            f.write(make_sentence(rng) + "\n")
    return path
