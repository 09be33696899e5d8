"""Generate a small Chinese joint intent + slot data set in the StackPropagation/CAIS layout, from
templates (no copied data): ``train.txt``, ``dev.txt``, ``test.txt``, each sentence one
``<char> <BIOES tag>`` line per character, then its intent on a line of its own, then a blank line.

One intent (``flight_query``) and its slot (``airline``) occur in the test split only, as rare
labels do in real data sets: ``palm eval`` scores them as wrong and reports them (docs/data.md).

    python examples/data/make_cais_sample.py --out data/cais
"""
import argparse
import os
import random
from typing import List, Tuple

VALUES = {"song": ["晴天", "稻香", "青花瓷", "小幸运"], "singer": ["周杰伦", "陈奕迅", "王菲"],
          "city": ["北京", "上海", "广州", "成都", "杭州"], "date": ["今天", "明天", "周末"],
          "place": ["火车站", "机场", "人民公园", "西湖"], "time": ["七点", "八点半", "六点"],
          "contact": ["妈妈", "张三", "李老师"], "airline": ["国航", "东航", "南航"]}
TEMPLATES = [
    ("music_play", "播放{singer}的{song}"), ("music_play", "我想听{song}"),
    ("music_play", "来一首{singer}的歌"),
    ("weather_query", "{date}{city}天气怎么样"), ("weather_query", "{city}{date}会下雨吗"),
    ("navigation", "导航去{place}"), ("navigation", "从这里到{place}怎么走"),
    ("alarm_set", "{date}{time}叫我起床"), ("alarm_set", "定一个{time}的闹钟"),
    ("phone_call", "给{contact}打电话"), ("phone_call", "打给{contact}"),
]
TEST_ONLY = [("flight_query", "查一下{date}{airline}去{city}的航班")]


def bioes(value: str, slot: str) -> List[str]:
    if len(value) == 1:
        return [f"S-{slot}"]
    return [f"B-{slot}"] + [f"I-{slot}"] * (len(value) - 2) + [f"E-{slot}"]


def sentence(rng: random.Random, intent: str, template: str) -> Tuple[List[str], List[str], str]:
    chars: List[str] = []
    tags: List[str] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        slot, _, rest = after.partition("}")
        value = rng.choice(VALUES[slot])
        chars += list(before) + list(value)
        tags += ["O"] * len(before) + bioes(value, slot)
    return chars + list(rest), tags + ["O"] * len(rest), intent


def block(chars: List[str], tags: List[str], intent: str) -> str:
    return "".join(f"{c} {t}\n" for c, t in zip(chars, tags)) + intent + "\n\n"


def make_sample(out: str, sizes=(400, 60, 60), seed: int = 1) -> str:
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    for split, size in zip(("train", "dev", "test"), sizes):
        templates = TEMPLATES + (TEST_ONLY if split == "test" else [])
        with open(os.path.join(out, f"{split}.txt"), "w", encoding="utf-8") as f:
            for _ in range(size):
                f.write(block(*sentence(rng, *rng.choice(templates))))
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the folder to write train.txt, dev.txt and test.txt into")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    print(f"CAIS-layout sample written to {make_sample(args.out, seed=args.seed)}")
