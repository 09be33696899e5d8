"""Convert SMP2019 ECDT NLU (Chinese domain + intent + slots; ``train.json`` only, its slot values
without character offsets) into the StackPropagation/CAIS layout that ``prepare: {kind: conll}``
reads: per sentence one ``<char> <BIOES tag>`` line per character, then ``domain.intent`` on a line
of its own, then a blank line; a seeded 80/10/10 split into ``train.txt``, ``dev.txt``, ``test.txt``.

A slot value is placed at its first occurrence in the text (every value occurs verbatim, per the
data set's SOURCE.md); a value that overlaps an earlier slot is left untagged and counted. Spaces
in the text are dropped (the layout has one token per line).

    python examples/data/smp2019_to_cais.py --source $PALM_DATA_ROOT/smp2019_ecdt_nlu --out data/smp
    palm train cais.yaml -s runs/smp -o prepare.source=data/smp      # docs/data.md's config
    python bench/raw_text_parity.py --run runs/smp                    # raw text vs palm eval
"""
import argparse
import json
import os
import random
from typing import Dict, List, Tuple

from paddlepalm.utils.fileio import read_json, write_text

SPLITS = (("train", 0.8), ("dev", 0.1), ("test", 0.1))


def bioes_tags(text: str, slots: Dict[str, str]) -> Tuple[List[str], int]:
    """One tag per character, and how many slot values could not be placed."""
    tags, skipped = ["O"] * len(text), 0
    for kind, value in slots.items():
        value = str(value)
        at = text.find(value) if value else -1
        if at < 0 or any(t != "O" for t in tags[at:at + len(value)]):
            skipped += 1
            continue
        if len(value) == 1:
            tags[at] = f"S-{kind}"
            continue
        tags[at:at + len(value)] = [f"B-{kind}"] + [f"I-{kind}"] * (len(value) - 2) + [f"E-{kind}"]
    return tags, skipped


def convert(source: str, out: str, seed: int = 7) -> Dict[str, int]:
    rows = read_json(os.path.join(source, "train.json"))
    random.Random(seed).shuffle(rows)
    os.makedirs(out, exist_ok=True)
    counts, start, skipped = {}, 0, 0
    for name, share in SPLITS:
        end = len(rows) if name == SPLITS[-1][0] else start + int(round(share * len(rows)))
        lines = []
        for row in rows[start:end]:
            tags, missed = bioes_tags(row["text"], row.get("slots") or {})
            skipped += missed
            lines += [f"{char} {tag}\n" for char, tag in zip(row["text"], tags) if not char.isspace()]
            lines.append(f"{row['domain']}.{row['intent']}\n\n")
        write_text(os.path.join(out, f"{name}.txt"), "".join(lines))  # atomic: a killed run leaves no half file
        counts[name], start = end - start, end
    counts["slot values not placed"] = skipped
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, help="the smp2019_ecdt_nlu folder (holds train.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    print(json.dumps(convert(a.source, a.out, a.seed)))


if __name__ == "__main__":
    main()
