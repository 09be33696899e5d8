"""Inference speed of an exported model on raw ATIS sentences: dynamic-graph prediction vs the
Predictor on Paddle Inference (oneDNN) vs the Predictor on onnxruntime, side by side in one run
(and PyTorch + transformers eager on a BERT of the same size when torch is installed).

Two models on one small ERNIE (4 layers, hidden 256, 4 heads, ATIS vocabulary; weights after one
training step: speed does not depend on them): the joint slot (CRF) + intent model and the intent
classifier alone. Every path does the whole work from raw text to records (tokenization by the
reader, padding, forward, post-processing, CRF decoding). Batch 1: the first N test sentences
one at a time; batch 32: the test set in batches of 32. The backends alternate round by round.

    MKL_DEBUG_CPU_TYPE=5 python bench/inference.py [--rounds 3] [--write]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "multi-task"))
import paddlepalm as palm  # noqa: E402
import paddle  # noqa: E402
from paddlepalm.evaluation import prediction_mode  # noqa: E402
from paddlepalm.model import to_tensors  # noqa: E402

DATA = os.environ.get("PALM_DATA_ROOT", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "data"))
SIZE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16"]
    return ", ".join(f for f in wanted if f in flags) or "no AVX2"


def build(work: str, joint: bool):
    import prepare_data

    d = os.path.join(work, "atis")
    sizes = prepare_data.convert(os.path.join(DATA, "atis"), d)
    vocab = os.path.join(d, "vocab.txt")
    config = {"vocab_size": sum(1 for _ in open(vocab, encoding="utf-8")), "max_position_embeddings": 128,
              "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, **SIZE}
    paddle.seed(0)
    backbone = palm.backbone.ERNIE.from_config(config)
    intent = palm.Trainer("intent")
    intent_reader = palm.reader.ClassifyReader(vocab, 64, seed=1)
    intent_reader.load_data(os.path.join(d, "intent", "dev.tsv"), batch_size=32)
    intent.build_forward(backbone, palm.head.Classify(sizes["intent_classes"], SIZE["hidden_size"]))
    if not joint:
        intent.build_backward(palm.optimizer.Adam(intent.model, 1e-4))
        intent.fit_reader(intent_reader)
        intent.train_one_step(intent.get_one_batch())
        return intent, {"intent": intent_reader}
    slot = palm.Trainer("slot")
    slot_reader = palm.reader.SequenceLabelReader(vocab, 64, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "dev.tsv"), batch_size=32)
    slot.build_forward(backbone, palm.head.SequenceLabel(sizes["slot_classes"], SIZE["hidden_size"]))
    trainer = palm.MultiHeadTrainer([slot, intent])
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-4))
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1)
    trainer.train_one_step(trainer.get_one_batch())
    return trainer, {"slot": slot_reader, "intent": intent_reader}


def dygraph_predict(model, readers):
    """Raw text to per-task results on the dynamic graph, as a user script does (one forward per
    task: the dynamic graph has no joint forward)."""
    def predict(texts):
        results = {}
        for task, reader in readers.items():
            batch = reader.collate(reader.features_of(texts))
            with prediction_mode(model, task):
                outputs = {k: v.numpy() for k, v in model(task, to_tensors(batch)).items()}
            results[task] = model.head_of(task).batch_results({**batch, **outputs})
        return results
    return predict


def torch_predict(num_labels: int):
    try:
        import torch
        from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    except ImportError:
        return None
    config = BertConfig(vocab_size=1000, max_position_embeddings=128, num_labels=num_labels, **SIZE)
    model = BertForSequenceClassification(config).eval()
    torch.set_num_threads(int(os.environ.get("MKL_NUM_THREADS", os.cpu_count())))
    vocab = os.path.join(tempfile.mkdtemp(), "vocab.txt")
    with open(vocab, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(995)]))
    tokenizer = BertTokenizerFast(vocab)

    def predict(texts):
        with torch.no_grad():
            encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=64, return_tensors="pt")
            return model(**encoded).logits.softmax(-1).numpy()
    return predict


def measure(predict, sentences, batch_size):
    latencies = []
    start = time.perf_counter()
    for i in range(0, len(sentences), batch_size):
        t = time.perf_counter()
        predict(sentences[i:i + batch_size])
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return len(sentences) / total, latencies


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=100, help="sentences predicted one at a time")
    parser.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    sentences = [line.strip() for line in open(os.path.join(DATA, "atis", "test", "seq.in"), encoding="utf-8")]
    work = tempfile.mkdtemp(prefix="palm-bench-inference.")
    rows = []
    for name, joint in (("joint slot + intent", True), ("intent classifier", False)):
        trainer, readers = build(work, joint)
        paths = {"dygraph": dygraph_predict(trainer.model, readers)}
        for fmt in ("paddle", "onnx"):
            target = os.path.join(work, f"{name[:5]}-{fmt}")
            trainer.export(target, format=fmt)
            try:
                predictor = palm.Predictor(target, batch_size=32)
            except ImportError as error:
                print(f"skipping {fmt}: {error}")
                continue
            paths["Predictor, Paddle Inference (oneDNN)" if fmt == "paddle" else "Predictor, onnxruntime"] = \
                predictor.predict
        if not joint:
            torch_path = torch_predict(len(readers["intent"].__dict__.get("label_names") or []) or 26)
            if torch_path is not None:
                paths["PyTorch + transformers BERT, eager"] = torch_path
        for path in paths.values():  # warm-up: first runs build oneDNN kernels and caches
            path(sentences[:32])
            path(sentences[:1])
        stats = {p: {1: ([], []), 32: ([], [])} for p in paths}
        for _ in range(args.rounds):
            for path, predict in paths.items():
                for batch_size, texts in ((1, sentences[:args.single]), (32, sentences)):
                    rate, latencies = measure(predict, texts, batch_size)
                    stats[path][batch_size][0].append(rate)
                    stats[path][batch_size][1].extend(latencies)
        base = {b: np.median(stats["dygraph"][b][0]) for b in (1, 32)}
        for path in paths:
            cells = []
            for b in (1, 32):
                rate = np.median(stats[path][b][0])
                lat = np.array(stats[path][b][1]) * 1000
                cells += [f"{rate:.1f}", f"{rate / base[b]:.2f}x", f"{np.percentile(lat, 50):.1f}",
                          f"{np.percentile(lat, 99):.1f}"]
            rows.append(f"| {name} | {path} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    torch_note = "" if any("PyTorch" in r for r in rows) else (
        "\nPyTorch + transformers was not installed in this run (`pip install paddlepalm[bench]`), so it "
        "has no row.\n")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    body = (f"Machine: {_machine()}; CPU flags: {cpu_flags()}; load average at the end {load} (other jobs shared "
            f"the cores: figures of separate runs differ by up to 2x, the ratios less); MKL_DEBUG_CPU_TYPE="
            f"{os.environ.get('MKL_DEBUG_CPU_TYPE', 'unset')}. ERNIE 4 layers x 256 hidden, ATIS vocabulary, "
            f"max_len 64; raw text in, records out. Batch 1: the first {args.single} ATIS test sentences one at a "
            f"time; batch 32: the {len(sentences)} test sentences. Medians of {args.rounds} alternating rounds; "
            "latency percentiles over every call of every round; ratios against the dynamic graph of the same "
            "model in the same run. The dynamic-graph joint path runs the backbone once per task (it has no "
            "joint forward); the export runs it once.\n\n"
            "| model | path | batch 1 sent/s | vs dygraph | p50 ms | p99 ms | batch 32 sent/s | vs dygraph | "
            "p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n" + torch_note +
            "\nCommand: `MKL_DEBUG_CPU_TYPE=5 python bench/inference.py --write`.")
    print(body)
    if args.write:
        from report import update_section
        update_section("Inference: exported models and the Predictor (bench/inference.py)", body)


def _machine():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from report import machine
    return machine()


if __name__ == "__main__":
    main()
