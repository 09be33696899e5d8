"""Generate a small joint slot + intent data set from templates (no copied data).

Writes the ATIS/SNIPS layout: ``{train,valid,test}/seq.in`` (space-separated
words), ``seq.out`` (one BIO tag per word) and ``label`` (one intent per line).

    python make_sample.py --out sample_raw
"""
import argparse
import os
import random

CITIES = ["boston", "denver", "new york", "san francisco", "dallas", "atlanta", "seattle", "miami",
          "las vegas", "salt lake city", "pittsburgh", "philadelphia", "chicago", "st. louis", "phoenix"]
AIRLINES = ["united", "delta", "american airlines", "continental", "us air", "alaska airlines"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
TIMES = ["morning", "afternoon", "evening", "night"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august"]
NUMBERS = ["first", "second", "third", "fifth", "tenth", "twelfth", "twentieth"]

# (intent, template). Slots are {slot_name:value_list}.
TEMPLATES = [
    ("flight", "show me flights from {fromloc.city_name:CITIES} to {toloc.city_name:CITIES}"),
    ("flight", "i want to fly from {fromloc.city_name:CITIES} to {toloc.city_name:CITIES} on {depart_date.day_name:DAYS}"),
    ("flight", "list {airline_name:AIRLINES} flights to {toloc.city_name:CITIES} in the {depart_time.period_of_day:TIMES}"),
    ("flight", "i need a flight on {depart_date.month_name:MONTHS} {depart_date.day_number:NUMBERS} from {fromloc.city_name:CITIES} to {toloc.city_name:CITIES}"),
    ("airfare", "how much is a ticket from {fromloc.city_name:CITIES} to {toloc.city_name:CITIES}"),
    ("airfare", "what is the cheapest fare to {toloc.city_name:CITIES} on {airline_name:AIRLINES}"),
    ("airfare", "show me fares from {fromloc.city_name:CITIES} to {toloc.city_name:CITIES} on {depart_date.day_name:DAYS}"),
    ("airline", "which airlines fly from {fromloc.city_name:CITIES} to {toloc.city_name:CITIES}"),
    ("airline", "what airline flies to {toloc.city_name:CITIES} in the {depart_time.period_of_day:TIMES}"),
    ("ground_service", "what ground transportation is available in {city_name:CITIES}"),
    ("ground_service", "how do i get from the airport to downtown {city_name:CITIES}"),
    ("abbreviation", "what does the code {fare_basis_code:CODES} mean"),
]
VALUES = {"CITIES": CITIES, "AIRLINES": AIRLINES, "DAYS": DAYS, "TIMES": TIMES, "MONTHS": MONTHS,
          "NUMBERS": NUMBERS, "CODES": ["y", "qx", "fn", "h", "bh"]}


def render(template: str, rng: random.Random):
    words, tags = [], []
    for part in template.split():
        if part.startswith("{"):
            slot, values = part[1:-1].split(":")
            value = rng.choice(VALUES[values]).split()
            words += value
            tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(value) - 1)
        else:
            words.append(part)
            tags.append("O")
    return words, tags


def write_split(directory: str, count: int, rng: random.Random) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "seq.in"), "w") as fin, open(os.path.join(directory, "seq.out"), "w") as fout, \
            open(os.path.join(directory, "label"), "w") as flab:
        for _ in range(count):
            intent, template = rng.choice(TEMPLATES)
            words, tags = render(template, rng)
            fin.write(" ".join(words) + "\n")
            fout.write(" ".join(tags) + "\n")
            flab.write(f"atis_{intent}\n")


def make_sample(out_dir: str, seed: int = 1, sizes=(600, 100, 200)) -> str:
    rng = random.Random(seed)
    for split, count in zip(("train", "valid", "test"), sizes):
        write_split(os.path.join(out_dir, split), count, rng)
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample_raw"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(make_sample(args.out, args.seed))
