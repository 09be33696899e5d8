"""Generate a small Chinese extractive MRC data set (SQuAD format, CMRC 2018 style) from templates.

Writes ``train.json`` (one answer per question), ``dev.json`` and ``test.json`` (up to three gold
answers per question, like CMRC's dev set); no copied data.
"""
import json
import os
import random

PEOPLE = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴昊"]
PLACES = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "西安", "武汉", "重庆"]
SCHOOLS = ["清华大学", "北京大学", "复旦大学", "浙江大学", "南京大学", "武汉大学"]
COMPANIES = ["光荣公司", "华为公司", "ω-force工作室", "腾讯公司", "新华社", "中国银行"]
JOBS = ["工程师", "记者", "教师", "医生", "设计师", "研究员"]


def paragraph(rng: random.Random, index: int):
    person, place, school = rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(SCHOOLS)
    company, job, year = rng.choice(COMPANIES), rng.choice(JOBS), str(rng.randint(1950, 2020))
    facts = [f"{person}出生于{place}。", f"他毕业于{school}，", f"{year}年加入{company}，", f"担任{job}一职。",
             f"{place}是一座历史悠久的城市。"]
    rng.shuffle(facts)
    context = "".join(facts)
    qas = [(f"{person}出生于哪里？", place), (f"{person}毕业于哪所学校？", school),
           (f"{person}哪一年加入{company}？", year + "年"), (f"{person}在{company}担任什么职务？", job),
           (f"{person}加入了哪家机构？", company)]
    out = []
    for q, (question, answer) in enumerate(rng.sample(qas, 3)):
        start = context.index(answer)
        answers = [{"text": answer, "answer_start": start}]
        out.append({"id": f"S{index}_Q{q}", "question": question, "answers": answers})
    return {"id": f"S{index}", "context": context, "qas": out}


def make_sample(out_dir: str, seed: int = 1, sizes=(300, 60, 60)) -> str:
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    index = 0
    for split, count in zip(("train", "dev", "test"), sizes):
        paragraphs = []
        for _ in range(count):
            paragraphs.append(paragraph(rng, index))
            index += 1
        if split != "train":  # several gold answers, as in CMRC's dev set
            for p in paragraphs:
                for qa in p["qas"]:
                    qa["answers"] = qa["answers"] * 3
        with open(os.path.join(out_dir, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump({"version": "sample", "data": [{"title": split, "paragraphs": paragraphs}]}, f,
                      ensure_ascii=False, indent=1)
    return out_dir


if __name__ == "__main__":
    print(make_sample(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_data")))
