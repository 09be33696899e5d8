"""Shared parts of the pretraining examples: corpus preparation, vocabulary, a time-bounded
training loop and the export of a pretrained backbone that ``load_pretrain`` reads."""
import argparse
import json
import os
import re
import shlex
import sys
import time
import zipfile
from typing import Dict, Iterator, List

import numpy as np

import paddlepalm as palm
from paddlepalm import checkpoint
from paddlepalm.model import MultiTaskModel
from paddlepalm.utils.fileio import (atomic_open, read_json_lines, read_lines, read_text, write_json,
                                     write_json_lines, write_text)
from paddlepalm.utils.vocab import build_char_vocab, write_vocab

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")


def split_sentences(paragraph: str) -> List[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


# ------------------------------------------------------------------ corpora
def make_sample_corpus(path: str, documents: int = 400, seed: int = 0) -> str:
    """A small generated Chinese corpus (documents of 2-6 template sentences)."""
    rng = np.random.RandomState(seed)
    subjects = ["我们", "他们", "这家公司", "老师", "学生们", "研究人员", "这个城市", "我的朋友", "政府", "记者"]
    verbs = ["喜欢", "讨论", "研究", "发现", "介绍", "建设", "改变", "支持", "批评", "记录"]
    objects = ["新的技术", "传统文化", "经济发展", "环境保护", "这本小说", "手机质量", "酒店服务", "交通问题",
               "历史文物", "人工智能"]
    tails = ["。", "，效果很好。", "，但是问题不少。", "，大家都很满意。", "，引起了广泛关注。"]
    with atomic_open(path) as f:
        for _ in range(documents):
            topic = rng.randint(len(objects))
            for _ in range(rng.randint(2, 7)):
                obj = objects[topic] if rng.rand() < 0.6 else objects[rng.randint(len(objects))]
                f.write(subjects[rng.randint(len(subjects))] + verbs[rng.randint(len(verbs))] + obj
                        + tails[rng.randint(len(tails))] + "\n")
            f.write("\n")
    return path


def _wiki_documents(path: str) -> Iterator[List[str]]:
    document: List[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("<doc"):
                document = []
            elif line.startswith("</doc>"):
                yield document
            elif line:
                document.extend(split_sentences(line))


def _json_documents(path: str) -> Iterator[List[str]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            sentences = split_sentences(json.loads(line)["sentence"])
            if sentences:
                yield sentences


def _rmrb_documents(zip_path: str) -> Iterator[List[str]]:
    """People's Daily 1998: one paragraph per line, ``id word/POS ...``; a paragraph is a document."""
    with zipfile.ZipFile(zip_path) as archive:
        with archive.open("RMRB/RMRB.txt") as f:
            for raw in f:
                parts = raw.decode("utf-8", "replace").split()[1:]
                text = "".join(re.sub(r"/[A-Za-z]+\]?[a-z]*$", "", w).lstrip("[") for w in parts)
                sentences = split_sentences(text)
                if sentences:
                    yield sentences


def prepare_corpus(data_dir: str, out_path: str, with_rmrb: bool = False) -> str:
    """``zh_raw_corpus`` (zhwiki articles, FewCLUE TNEWS titles and product reviews), optionally the
    People's Daily 1998 zip beside it, as one sentence per line with blank lines between documents."""
    sources = [(_wiki_documents, os.path.join(data_dir, "zhwiki", "AA", "wiki_00")),
               (_json_documents, os.path.join(data_dir, "fewclue_eprstmt", "unlabeled.json")),
               (_json_documents, os.path.join(data_dir, "fewclue_tnews", "unlabeled.json"))]
    if with_rmrb:
        sources.append((_rmrb_documents, os.path.join(data_dir, "..", "peoples_daily_1998", "RMRB.zip")))
    missing = [p for _, p in sources if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"corpus files not found: {missing} (is --data_dir the zh_raw_corpus folder?)")
    with atomic_open(out_path) as out:
        for reader, path in sources:
            for document in reader(path):
                out.write("\n".join(document) + "\n\n")
    return out_path


def corpus_vocab(corpus: str, path: str, max_size: int, min_freq: int = 2) -> str:
    write_vocab(build_char_vocab(read_lines(corpus), max_size=max_size, min_freq=min_freq), path)
    return path


# ------------------------------------------------------------------ training
def pretrain(trainer: palm.Trainer, cpu_minutes: float, max_steps: int, print_steps: int, log_path: str,
             save_steps: int = 0) -> List[dict]:
    """Train until the run has used ``cpu_minutes`` of CPU time (a budget that does not
    depend on what else runs on the machine) or ``max_steps``; log the mean loss every
    ``print_steps`` steps with CPU and wall seconds (and the mean of each term the head returns
    beside its loss: ELECTRA's generator and detection losses, ALBERT's masked LM and sentence order).

    With ``save_steps`` (a multiple of ``print_steps``) a checkpoint is written every
    ``save_steps`` steps beside the log, and a later call with the same log resumes exactly from
    the newest one: the log is cut back to that step and its CPU and wall seconds carry on, so
    the CPU time spent after the last checkpoint by a killed run is neither kept nor counted.
    The log is rewritten whole (atomically) at every entry, so a kill never leaves half a line."""
    if save_steps and save_steps % print_steps:
        raise ValueError(f"save_steps ({save_steps}) must be a multiple of print_steps ({print_steps})")
    history = _resume(trainer, log_path, save_steps)
    cpu_before = history[-1]["cpu_seconds"] if history else 0.0
    wall_before = history[-1]["wall_seconds"] if history else 0.0
    cpu_start, wall_start = time.process_time(), time.time()
    window: List[Dict[str, float]] = []  # each update's loss and the head's loss terms
    step = trainer.global_step

    def cpu_used() -> float:
        return cpu_before + time.process_time() - cpu_start

    def record():
        entry = {"step": step, "epoch": trainer.cur_train_epoch,
                 **{name: float(np.mean([losses[name] for losses in window])) for name in window[0]},
                 "cpu_seconds": round(cpu_used(), 1), "wall_seconds": round(wall_before + time.time() - wall_start, 1)}
        history.append(entry)
        window.clear()
        return entry

    while step < max_steps and cpu_used() < cpu_minutes * 60:
        window.append(trainer.train_one_step(trainer.get_one_batch()))
        step += 1
        if step % print_steps == 0:
            print(json.dumps(record()), flush=True)
            write_json_lines(log_path, history)
    if window:
        record()
        write_json_lines(log_path, history)
    return history


def _resume(trainer: palm.Trainer, log_path: str, save_steps: int) -> List[dict]:
    """Set the saver and, when a checkpoint of this run exists, load it and return the log up to
    its step (the rest of the log is rewritten without the steps after it)."""
    if not save_steps:
        write_text(log_path, "")
        return []
    save_path = os.path.join(os.path.dirname(log_path), "checkpoints")
    trainer.set_saver(save_path, save_steps, keep_last=2)
    latest = checkpoint.latest_checkpoint(save_path) if os.path.isdir(save_path) else None
    if latest is None:
        write_text(log_path, "")
        return []
    trainer.load_ckpt(latest)
    step = trainer.global_step
    history = [entry for entry in read_json_lines(log_path) if entry["step"] <= step]
    if not history or history[-1]["step"] != step:
        raise RuntimeError(f"{log_path} has no entry for step {step} of {latest}: cannot carry the CPU time on")
    write_json_lines(log_path, history)
    print(f"resumed from {latest} (step {step}, {history[-1]['cpu_seconds']} CPU-seconds used)", flush=True)
    return history


def export_backbone(backbone, config: dict, vocab_path: str, out_dir: str, info: dict) -> str:
    """A paddlepalm checkpoint holding only ``backbone.*`` (what ``load_pretrain`` reads), with
    ``config.json``, ``vocab.txt`` and ``pretrain_info.json`` (command, steps, final loss)."""
    checkpoint.save_checkpoint(out_dir, MultiTaskModel(backbone, {}), None, {"pretrain": info})
    write_json(os.path.join(out_dir, "config.json"), config)
    write_text(os.path.join(out_dir, "vocab.txt"), read_text(vocab_path))
    write_json(os.path.join(out_dir, "pretrain_info.json"), info)
    write_model_card(out_dir, config, info)
    return out_dir


def write_model_card(out_dir: str, config: dict, info: dict) -> None:
    """README.md of an exported backbone: what it is, how it was made, how to load it."""
    lines = [
        f"# {os.path.basename(os.path.abspath(out_dir))}: a small {config['backbone'].upper()} pretrained here",
        "",
        f"- objective: {info['objective']}; corpus: {info['corpus']} "
        f"({info['examples_per_epoch']} sequences per epoch)",
        f"- size: hidden {config['hidden_size']}, embedding {config['embedding_size']}, "
        f"{config['num_hidden_layers']} layers, {config['num_attention_heads']} heads, vocabulary {config['vocab_size']}",
        f"- trained {info['steps']} steps in {info['cpu_seconds']} CPU-seconds ({info['wall_seconds']} s wall); "
        f"loss {info['first_losses'][0]} at the first log, final loss {info['final_loss']}",
        f"- command: `{info['command']}`",
        "",
        "Load it for fine-tuning with `trainer.load_pretrain('<this folder>')` on a backbone built from",
        "`config.json` with `vocab.txt` (see `examples/pretrain/finetune.py`).",
    ]
    write_text(os.path.join(out_dir, "README.md"), "\n".join(lines) + "\n")


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def corpus_for(args, work_dir: str) -> str:
    if getattr(args, "corpus", None):
        return os.path.join(args.corpus, "train.txt")
    if args.data_dir is None:
        return make_sample_corpus(os.path.join(work_dir, "sample_corpus.txt"))
    return prepare_corpus(args.data_dir, os.path.join(work_dir, "corpus.txt"), with_rmrb=args.with_rmrb)


def summary(history: List[dict], first_n: int = 3) -> dict:
    head = history[:first_n]
    tail = history[-first_n:]
    return {"first_losses": [round(h["loss"], 4) for h in head], "final_losses": [round(h["loss"], 4) for h in tail],
            "final_loss": round(tail[-1]["loss"], 4), "steps": history[-1]["step"],
            "cpu_seconds": history[-1]["cpu_seconds"], "wall_seconds": history[-1]["wall_seconds"]}



def add_common_args(p: argparse.ArgumentParser, name: str, lr: float) -> None:
    examples = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--data_dir", default=None, help="the zh_raw_corpus folder (default: a generated sample)")
    p.add_argument("--with_rmrb", action="store_true", help="add People's Daily 1998 (../peoples_daily_1998)")
    p.add_argument("--corpus", default=None, help="a folder written by `python -m paddlepalm.prepare.pretrain_corpus` "
                   "(its train.txt and vocab.txt; instead of --data_dir)")
    p.add_argument("--save_steps", type=int, default=0, help="checkpoint every N steps and resume from the newest "
                   "(a multiple of --print_steps; 0: no checkpoints)")
    p.add_argument("--work_dir", default=os.path.join(examples, "outputs", name))
    p.add_argument("--output", default=None, help="where to export the backbone (default: WORK_DIR/pretrained)")
    p.add_argument("--cpu_minutes", type=float, default=1.0, help="CPU-time budget of the training loop")
    p.add_argument("--max_steps", type=int, default=100000)
    p.add_argument("--vocab_size", type=int, default=5000)
    p.add_argument("--max_len", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embedding_size", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--print_steps", type=int, default=50)


def backbone_config(args, kind: str, vocab_size: int) -> dict:
    return {"backbone": kind, "vocab_size": vocab_size, "embedding_size": args.embedding_size,
            "hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
            "intermediate_size": 4 * args.hidden, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
            "initializer_range": 0.02}


def run(args, trainer: palm.Trainer, reader, backbone, config: dict, vocab: str, objective: str) -> dict:
    """Pretrain, export the backbone, print and return the summary."""
    print(f"backbone: {sum(p.size for p in backbone.parameters())} parameters; "
          f"head: {sum(p.size for p in trainer.head.parameters())}", flush=True)
    history = pretrain(trainer, args.cpu_minutes, args.max_steps, args.print_steps,
                       os.path.join(args.work_dir, f"{objective}_loss.jsonl"), args.save_steps)
    info = {"objective": objective, "command": command_line(),
            "corpus": args.corpus or args.data_dir or "generated sample",
            "corpus_stats": reader.stats, "examples_per_epoch": reader.num_examples, **summary(history)}
    output = args.output or os.path.join(args.work_dir, "pretrained")
    export_backbone(backbone, config, vocab, output, info)
    print(json.dumps(info, ensure_ascii=False), flush=True)
    print(f"pretrained backbone written to {output}", flush=True)
    return info


def vocab_for(args, corpus: str) -> str:
    """The corpus folder's vocabulary (``--corpus``), or one built from the corpus into the work folder."""
    if getattr(args, "corpus", None):
        return os.path.join(args.corpus, "vocab.txt")
    return corpus_vocab(corpus, os.path.join(args.work_dir, "vocab.txt"), args.vocab_size)
