"""A small data set and a stand-in pretrained folder in PALM 2.x's formats, for the scripts here.

Writes, under the current directory (the scripts' ``./data`` and ``./pretrain`` paths):

- ``data/atis/atis_slot/{train,dev,test}.tsv``: header ``text_a<TAB>label``, words and BIO tags
  joined by ``\\x02`` with the trailing ``\\x02`` PALM's ``process.py`` leaves, and
  ``data/atis/atis_slot/label_map.json`` (``{tag: id}``);
- ``data/atis/atis_intent/{train,dev,test}.tsv``: header ``label<TAB>text_a``, intent ids;
- ``pretrain/ERNIE-tiny/``: ``ernie_config.json`` (the keys of a released ERNIE 2.0 config),
  ``vocab.txt`` and ``params/`` (one file per variable in the old Paddle format, released names
  such as ``word_embedding`` and ``encoder_layer_0_multi_head_att_query_fc.w_0``). The weights
  are random: it stands in for a download such as ``ERNIE-v2-en-base`` (same layout).

The sentences come from templates (flight-booking requests, ATIS-like); nothing is copied.
The training and prediction scripts call :func:`prepare` first, which writes the files once.

    python make_sample.py
"""
import json
import os
import random
from typing import List, Tuple

PRETRAIN = "ERNIE-tiny"
SIZES = {"train": 160, "dev": 32, "test": 48}
CONFIG = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
          "hidden_size": 32, "initializer_range": 0.02, "max_position_embeddings": 128,
          "num_attention_heads": 2, "num_hidden_layers": 2, "sent_type_vocab_size": 4,
          "task_type_vocab_size": 16}

VALUES = {
    "city": ["boston", "denver", "new york", "dallas", "atlanta", "seattle", "miami", "salt lake city"],
    "airline": ["united", "delta", "american airlines", "alaska airlines"],
    "day": ["monday", "tuesday", "friday", "sunday"],
    "period": ["morning", "evening", "night"],
}
# (intent, template); {slot:values} is a slot filled from VALUES
TEMPLATES = [
    ("flight", "show me flights from {fromloc.city_name:city} to {toloc.city_name:city}"),
    ("flight", "i want to fly to {toloc.city_name:city} on {depart_date.day_name:day}"),
    ("flight", "list {airline_name:airline} flights to {toloc.city_name:city} in the {depart_time.period_of_day:period}"),
    ("airfare", "how much is a ticket from {fromloc.city_name:city} to {toloc.city_name:city}"),
    ("airfare", "what is the cheapest fare on {airline_name:airline}"),
    ("airline", "which airlines fly from {fromloc.city_name:city} to {toloc.city_name:city}"),
    ("ground_service", "what ground transportation is there in {city_name:city}"),
]
INTENTS = sorted({intent for intent, _ in TEMPLATES})


def render(template: str, rng: random.Random) -> Tuple[List[str], List[str]]:
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


def write_data(root: str, seed: int = 1) -> List[str]:
    """The slot and intent splits and the label map; returns the training texts."""
    rng = random.Random(seed)
    slot_dir, intent_dir = os.path.join(root, "atis", "atis_slot"), os.path.join(root, "atis", "atis_intent")
    os.makedirs(slot_dir, exist_ok=True)
    os.makedirs(intent_dir, exist_ok=True)
    tags = sorted({f"{p}-{part[1:].split(':')[0]}" for _, t in TEMPLATES for part in t.split()
                   if part.startswith("{") for p in "BI"})
    label_map = {"O": 0, **{tag: i + 1 for i, tag in enumerate(tags)}}
    with open(os.path.join(slot_dir, "label_map.json"), "w", encoding="utf-8") as f:
        json.dump(label_map, f, indent=1)
    train_texts = []
    for split, count in SIZES.items():
        with open(os.path.join(slot_dir, f"{split}.tsv"), "w", encoding="utf-8") as slot, \
                open(os.path.join(intent_dir, f"{split}.tsv"), "w", encoding="utf-8") as intent:
            slot.write("text_a\tlabel\n")
            intent.write("label\ttext_a\n")
            for _ in range(count):
                name, template = rng.choice(TEMPLATES)
                words, word_tags = render(template, rng)
                slot.write("\x02".join(words) + "\x02\t" + "\x02".join(word_tags) + "\x02\n")
                intent.write(f"{INTENTS.index(name)}\t{' '.join(words)}\n")
                if split == "train":
                    train_texts.append(" ".join(words))
    return train_texts


def write_pretrained(directory: str, texts: List[str], seed: int = 1) -> None:
    """A released-layout ERNIE folder with random weights (see the module docstring)."""
    import paddle

    import paddlepalm as palm
    from paddlepalm.pretrained.fluid_names import ours_to_fluid
    from paddlepalm.pretrained.lod_tensor import write_params_dir
    from paddlepalm.utils.vocab import build_vocab, write_vocab

    os.makedirs(directory, exist_ok=True)
    vocab = build_vocab(texts)
    write_vocab(vocab, os.path.join(directory, "vocab.txt"))
    config = dict(CONFIG, vocab_size=len(vocab))
    with open(os.path.join(directory, "ernie_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    paddle.seed(seed)
    ernie = palm.backbone.ERNIE.from_config(config)
    write_params_dir(os.path.join(directory, "params"),
                     {ours_to_fluid(name): value.numpy() for name, value in ernie.state_dict().items()})


def prepare(root: str = ".") -> None:
    """Write ``data/`` and ``pretrain/ERNIE-tiny/`` under ``root`` unless they are there."""
    pretrain = os.path.join(root, "pretrain", PRETRAIN)
    if os.path.isdir(os.path.join(root, "data", "atis")) and os.path.isdir(os.path.join(pretrain, "params")):
        return
    texts = write_data(os.path.join(root, "data"))
    write_pretrained(pretrain, texts)
    print(f"generated the sample under {os.path.abspath(root)}: data/atis, pretrain/{PRETRAIN}")


if __name__ == "__main__":
    prepare()
