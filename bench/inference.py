"""Inference speed of an exported model on raw ATIS sentences, side by side in one run:
dynamic-graph prediction, the Predictor in every runtime setting (paddlepalm/inference_runtimes.py:
Paddle Inference fp32 with and without oneDNN and bf16, onnxruntime fp32 and int8) and in the
setting the export measured and recorded (``runtime="auto"``), and PyTorch + transformers on a BERT
of the same size in each of its settings (1 and N threads; ``no_grad`` or ``inference_mode``; fp32 or
bf16 autocast; eager or ``torch.compile``; ``pip install -e ".[bench]"`` in the checkout; its rows
are left out without torch, a setting that fails is reported and left out), with which PyTorch
setting won and every row's ratio to the dynamic graph and to PyTorch's best.

Two models on one small ERNIE (4 layers, hidden 256, 4 heads, ATIS vocabulary; weights after one
training step: speed does not depend on them): the joint slot (CRF) + intent model and the intent
classifier alone. Every path does the whole work from raw text to records: tokenization,
padding, forward, post-processing (softmax, argmax, CRF Viterbi decoding in numpy, slot spans).
Batch 1: the first N test sentences one at a time; batch 32: the test set in batches of 32. The
paths take turns call by call (a new random order for each call), in each of several rounds.
The joint model's dynamic-graph baseline is ``MultiTaskModel.forward_tasks`` (one backbone pass
for both heads, as the exported program does); the per-task path (the backbone once per task,
the baseline of runs before) is measured beside it. ``--models joint`` measures one model only.

``--options`` instead compares Paddle Inference settings on prebuilt reader arrays (oneDNN shape
cache, lengths padded to buckets, IR passes off, oneDNN off, one thread), interleaved call by
call, with where the time of a batch-1 ``predict`` goes.

    MKL_DEBUG_CPU_TYPE=5 python bench/inference.py [--rounds 3] [--single 100] [--models joint intent] [--write]
    MKL_DEBUG_CPU_TYPE=5 python bench/inference.py --options [--write]
    python bench/inference.py --smoke     # about a minute: both comparisons on generated sentences, 1 round
                                          # (torch.compile rows skipped: compiling takes ~25 s a setting)
"""
import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from typing import Optional

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "multi-task"))
import paddlepalm as palm  # noqa: E402
import paddle  # noqa: E402
from paddlepalm.evaluation import prediction_mode  # noqa: E402
from paddlepalm.model import to_tensors  # noqa: E402

DATA = os.environ.get("PALM_DATA_ROOT", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "data"))
JOINT_DYGRAPH = "dygraph, one backbone pass (forward_tasks)"
RECORDED = "Predictor, the export's recorded choice (runtime auto)"
SAMPLE = ["show me flights from boston to denver", "what is the cheapest fare from dallas to baltimore on friday",
          "list airlines"]
MODELS = {"joint": ("joint slot + intent", True), "intent": ("intent classifier", False)}
SIZE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}
SMOKE_SIZE = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def cpu_flags() -> str:
    from paddlepalm.inference_runtimes import notable_cpu_flags

    return ", ".join(notable_cpu_flags()) or "unknown (or no AVX2)"


def build(work: str, joint: bool, data_root: str = DATA, dims: dict = SIZE):
    import prepare_data

    d = os.path.join(work, "atis")
    sizes = prepare_data.convert(os.path.join(data_root, "atis"), d)
    prepare_data.head(d, 500)  # 500 training sentences (dev may hold labels the training label maps lack)
    vocab = os.path.join(d, "vocab.txt")
    config = {"vocab_size": sum(1 for _ in open(vocab, encoding="utf-8")), "max_position_embeddings": 128,
              "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, **dims}
    paddle.seed(0)
    backbone = palm.backbone.ERNIE.from_config(config)
    intent = palm.Trainer("intent")
    intent_reader = palm.reader.ClassifyReader(vocab, 64, seed=1)
    intent_reader.load_data(os.path.join(d, "intent", "train_head.tsv"), batch_size=32)
    intent.build_forward(backbone, palm.head.Classify(sizes["intent_classes"], dims["hidden_size"]))
    if not joint:
        intent.build_backward(palm.optimizer.Adam(intent.model, 1e-4))
        intent.fit_reader(intent_reader)
        intent.train_one_step(intent.get_one_batch())
        return intent, {"intent": intent_reader}
    slot = palm.Trainer("slot")
    slot_reader = palm.reader.SequenceLabelReader(vocab, 64, os.path.join(d, "label_map.json"), seed=1)
    slot_reader.load_data(os.path.join(d, "slot", "train_head.tsv"), batch_size=32)
    slot.build_forward(backbone, palm.head.SequenceLabel(sizes["slot_classes"], dims["hidden_size"]))
    trainer = palm.MultiHeadTrainer([slot, intent])
    trainer.build_backward(palm.optimizer.Adam(trainer.build_forward(), 1e-4))
    trainer.fit_readers_with_mixratio([slot_reader, intent_reader], "slot", 1)
    trainer.train_one_step(trainer.get_one_batch())
    return trainer, {"slot": slot_reader, "intent": intent_reader}


def dygraph_predict(model, readers):
    """Raw text to per-task results on the dynamic graph, one ``model(task, batch)`` per task: the
    backbone runs once per task (for the joint model, twice per batch)."""
    def predict(texts):
        results = {}
        for task, reader in readers.items():
            batch = reader.collate(reader.features_of(texts))
            with prediction_mode(model, task):
                outputs = {k: v.numpy() for k, v in model(task, to_tensors(batch)).items()}
            results[task] = model.head_of(task).batch_results({**batch, **outputs})
        return results
    return predict


def dygraph_joint_predict(model, readers):
    """Raw text to per-task results on the dynamic graph with ``MultiTaskModel.forward_tasks``: the
    backbone runs once per batch and every task's head reads its outputs, as in the exported
    program. The tasks' readers must give the same backbone inputs (checked on every batch)."""
    def predict(texts):
        batches = {task: reader.collate(reader.features_of(texts)) for task, reader in readers.items()}
        first = next(iter(batches.values()))
        for task, batch in batches.items():
            for name in ("token_ids", "segment_ids", "position_ids", "input_mask"):
                if name in batch and name in first and not np.array_equal(batch[name], first[name]):
                    raise ValueError(f"task {task}: {name} differs from the first task's; no shared backbone pass")
        with contextlib.ExitStack() as stack:
            for task in batches:
                stack.enter_context(prediction_mode(model, task))
            outputs = model.forward_tasks({task: to_tensors(batch) for task, batch in batches.items()})
        return {task: model.head_of(task).batch_results({**batch, **{k: v.numpy() for k, v in outputs[task].items()}})
                for task, batch in batches.items()}
    return predict


def check_same_results(a, b, texts) -> None:
    """The two dynamic-graph paths give the same tags and labels (probabilities within 1e-5)."""
    ra, rb = a(texts), b(texts)
    for task in ra:
        for x, y in zip(ra[task], rb[task]):
            for key in x:
                if key in ("probs", "logits") or isinstance(x[key], float):
                    np.testing.assert_allclose(x[key], y[key], atol=1e-5, err_msg=f"{task} {key}")
                else:
                    assert x[key] == y[key], (task, key, x[key], y[key])


# PyTorch settings tried (issue 27: the exported model against PyTorch in its best setting): the
# first is the eager no_grad fp32 model of earlier runs; the others run under torch.inference_mode(),
# in fp32 or under torch.autocast("cpu", dtype=torch.bfloat16), eager or torch.compile(dynamic=True)
TORCH_SETTINGS = {
    "eager": {"mode": "no_grad", "bf16": False, "compile": False},
    "eager, inference_mode": {"mode": "inference_mode", "bf16": False, "compile": False},
    "eager, inference_mode, bf16 autocast": {"mode": "inference_mode", "bf16": True, "compile": False},
    "torch.compile, inference_mode": {"mode": "inference_mode", "bf16": False, "compile": True},
    "torch.compile, inference_mode, bf16 autocast": {"mode": "inference_mode", "bf16": True, "compile": True},
}
TORCH = "PyTorch + transformers BERT"


def torch_predict(vocab: str, num_intents: int, num_slots: Optional[int], transitions=None,
                  slot_names=None, threads: Optional[int] = None, dims: dict = SIZE, mode: str = "no_grad",
                  bf16: bool = False, compile: bool = False):
    """BERT of the same size in PyTorch (transformers), raw text to records as the Predictor
    does: fast WordPiece tokenization over the same vocabulary, one encoder pass, softmax and
    argmax for the intent, and for the joint model the emissions of each word's first piece
    decoded by the same numpy Viterbi with its spans. Weights are random (speed only). ``mode``:
    ``torch.no_grad`` or ``torch.inference_mode``; ``bf16``: under ``torch.autocast("cpu",
    dtype=torch.bfloat16)``; ``compile``: the encoder through ``torch.compile(dynamic=True)``
    (compiled here on two sample calls: a failure raises, for the caller to report). None
    without torch and transformers."""
    try:
        import torch
        from transformers import BertConfig, BertModel, BertTokenizerFast
    except ImportError:
        return None
    from paddlepalm.inference import entity_spans
    from paddlepalm.utils.crf import viterbi_decode_numpy

    torch.manual_seed(0)
    size = sum(1 for _ in open(vocab, encoding="utf-8"))
    config = BertConfig(vocab_size=size, max_position_embeddings=128, **dims)
    encoder = BertModel(config).eval()
    intent = torch.nn.Linear(dims["hidden_size"], num_intents).eval()
    slot = torch.nn.Linear(dims["hidden_size"], num_slots).eval() if num_slots else None
    tokenizer = BertTokenizerFast(vocab, do_lower_case=False, clean_up_tokenization_spaces=False)
    count = threads or int(os.environ.get("MKL_NUM_THREADS", os.cpu_count()))
    run_encoder = torch.compile(encoder, dynamic=True) if compile else encoder
    grad_mode = torch.inference_mode if mode == "inference_mode" else torch.no_grad

    def predict(texts):
        torch.set_num_threads(count)
        words = [text.split() for text in texts]
        encoded = tokenizer(words, is_split_into_words=True, padding=True, truncation=True, max_length=64,
                            return_tensors="pt")
        with grad_mode(), (torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()):
            out = run_encoder(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                              token_type_ids=encoded["token_type_ids"])
            probs = intent(out.pooler_output).float().softmax(-1).numpy()
            records = [{"intent": {"label": int(p.argmax()), "probs": p.tolist()}} for p in probs]
            if slot is None:
                return records
            hidden = out.last_hidden_state
            starts = [[i for i, w in enumerate(encoded.word_ids(row)) if w is not None and
                       (i == 0 or encoded.word_ids(row)[i - 1] != w)] for row in range(len(texts))]
            width = max(len(s) for s in starts)
            index = torch.tensor([s + [0] * (width - len(s)) for s in starts])
            gathered = hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
            emissions = slot(gathered).float().numpy()
        tags = viterbi_decode_numpy(emissions, np.array([max(len(s), 1) for s in starts]), transitions)
        for row, (record, text) in enumerate(zip(records, texts)):
            names = [slot_names[t] for t in tags[row][:len(starts[row])]]
            spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
            record["slot"] = {"tags": names, "spans": entity_spans(names, spans, text)}
        return records
    if compile:  # compiled now: a batch and a single sentence (dynamic shapes after the second shape)
        predict(SAMPLE)
        predict(SAMPLE[:1])
    return predict


def measure(paths, sentences, batch_size):
    """One round: every call of ``batch_size`` sentences made by every path in turn, in a new random
    order for each call, so that a burst of load from other processes falls on all paths alike and
    no path always follows the same other one (the OpenMP threads of a multi-threaded path spin on
    after it returns and slow down whatever runs next). Returns ``{path: (sentences per second,
    [latency of each call])}``."""
    latencies = {path: [] for path in paths}
    rng = np.random.default_rng(len(sentences) * batch_size)
    for i in range(0, len(sentences), batch_size):
        for path in rng.permutation(list(paths)):
            t = time.perf_counter()
            paths[path](sentences[i:i + batch_size])
            latencies[path].append(time.perf_counter() - t)
    return {path: (len(sentences) / sum(times), times) for path, times in latencies.items()}


def export_paths(trainer, readers, work: str, name: str, dims: dict = SIZE, smoke: bool = False):
    """The paths of one model: dygraph, the Predictor in every runtime setting of an export made with
    ``runtime="auto"`` (and its recorded choice), PyTorch in every setting of ``TORCH_SETTINGS``."""
    from paddlepalm.inference_runtimes import RUNTIMES, RuntimeUnavailable

    threads = int(os.environ.get("MKL_NUM_THREADS", os.cpu_count()))
    if len(readers) > 1:  # the first path is the baseline of the ratios
        joint, per_task = dygraph_joint_predict(trainer.model, readers), dygraph_predict(trainer.model, readers)
        check_same_results(joint, per_task, SAMPLE)
        paths = {JOINT_DYGRAPH: joint, "dygraph, backbone once per task (before)": per_task}
    else:
        paths = {"dygraph": dygraph_predict(trainer.model, readers)}
    target = os.path.join(work, f"{name[:5]}-auto")
    meta = trainer.export(target, runtime="auto")  # every model file; the choice measured on its example batch
    recorded = palm.Predictor(target, batch_size=32)
    plan = recorded.runtime_plan
    paths[f"{RECORDED}: {plan.small_batches} / {plan.large_batches}"] = recorded.predict
    for setting in RUNTIMES:
        try:
            paths[f"Predictor, {setting}"] = palm.Predictor(target, batch_size=32, runtime=setting).predict
        except RuntimeUnavailable as error:
            print(f"Predictor, {setting}: skipped ({error})", flush=True)
    paths[f"Predictor, paddle, {threads} threads for every batch (before)"] = palm.Predictor(
        target, batch_size=32, small_batch_threads=None, runtime="paddle").predict
    paths["Predictor, paddle, threads=1"] = palm.Predictor(target, threads=1, batch_size=32, runtime="paddle").predict
    tasks = {t["name"]: t for t in meta["tasks"]}
    slot = tasks.get("slot")
    args = (readers["intent"].vocab_path, trainer.model.head_of("intent").num_classes,
            slot["head"]["args"]["num_classes"] if slot else None, slot["transitions"] if slot else None,
            slot["label_names"] if slot else None)
    for setting, options in TORCH_SETTINGS.items():
        for count in dict.fromkeys([threads, 1]):
            label = f"{TORCH}, {setting}, {count} thread{'s' if count > 1 else ''}"
            if options["compile"] and smoke:
                print(f"{label}: skipped (--smoke: torch.compile takes about 25 s a setting)", flush=True)
                continue
            try:
                torch_path = torch_predict(*args, threads=count, dims=dims, **options)
            except Exception as error:  # torch.compile without a working compiler, bf16 kernels missing...
                print(f"{label}: skipped ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})",
                      flush=True)
                continue
            if torch_path is None:
                print(f"{label}: skipped (PyTorch + transformers not installed: pip install paddlepalm[bench])",
                      flush=True)
                break
            paths[label] = torch_path
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=100, help="sentences predicted one at a time")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="which models to measure (default: both)")
    parser.add_argument("--options", action="store_true", help="compare Paddle Inference settings instead")
    parser.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    parser.add_argument("--data_root", default=DATA, help="holds atis/ (seq.in, seq.out, label per split)")
    parser.add_argument("--smoke", action="store_true", help="seconds: the main comparison and --options on "
                        "generated sentences (bench/smoke_data.py), ERNIE 1 layer x 32, 1 round, 2 sentences "
                        "one at a time, no write")
    args = parser.parse_args(argv)
    if args.write and not args.options and set(args.models) != set(MODELS):
        parser.error("--write replaces the whole section: measure both models (leave out --models)")
    if args.smoke:
        from smoke_data import data_root
        args.data_root, args.rounds, args.single, args.write = data_root(), 1, 2, False
    args.dims = SMOKE_SIZE if args.smoke else SIZE
    args.load_at_start = os.getloadavg()
    sentences = [line.strip() for line in open(os.path.join(args.data_root, "atis", "test", "seq.in"),
                                               encoding="utf-8")]
    work = tempfile.mkdtemp(prefix="palm-bench-inference.")
    if not args.options:
        compare(work, sentences, args)
    if args.options or args.smoke:
        options(work, sentences, args)


def compare(work: str, sentences, args) -> None:
    """The paths side by side on both models (the main table)."""
    rows, rates, notes = [], {}, []
    for name, joint in (MODELS[m] for m in args.models):
        trainer, readers = build(work, joint, args.data_root, args.dims)
        paths = export_paths(trainer, readers, work, name, args.dims, args.smoke)
        for path in paths.values():  # warm-up: first runs build oneDNN kernels and caches
            path(sentences[:32])
            path(sentences[:1])
        stats = {p: {1: ([], []), 32: ([], [])} for p in paths}
        for _ in range(args.rounds):
            for batch_size, texts in ((1, sentences[:args.single]), (32, sentences)):
                for path, (rate, latencies) in measure(paths, texts, batch_size).items():
                    stats[path][batch_size][0].append(rate)
                    stats[path][batch_size][1].extend(latencies)
        for path in paths:
            for b in (1, 32):
                rates[name, path, b] = np.median(stats[path][b][0])
        baseline = next(iter(paths))
        best_torch = {b: _best(rates, name, b, TORCH) for b in (1, 32)}
        for path in paths:
            cells = []
            for b in (1, 32):
                rate = rates[name, path, b]
                lat = np.array(stats[path][b][1]) * 1000
                versus = f"{rate / rates[name, best_torch[b], b]:.2f}x" if best_torch[b] else "-"
                cells += [f"{rate:.1f}", f"{rate / rates[name, baseline, b]:.2f}x", versus,
                          f"{np.percentile(lat, 50):.1f}", f"{np.percentile(lat, 99):.1f}"]
            rows.append(f"| {name} | {path} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
        for b in (1, 32):
            if best_torch[b]:
                notes.append(f"- {name}, batch {b}: PyTorch's best setting was \"{best_torch[b][len(TORCH) + 2:]}\" "
                             f"({rates[name, best_torch[b], b]:.1f} sentences/s)")
    torch_note = "" if any(TORCH in r for r in rows) else (
        "\nPyTorch + transformers was not installed in this run (`pip install -e \".[bench]\"`), so it "
        "has no row.\n")
    options = "".join(f" --{k} {v}" for k, v, d in (("rounds", args.rounds, 3), ("single", args.single, 100)) if v != d)
    if set(args.models) != set(MODELS):
        options += " --models " + " ".join(args.models)
    body = (f"{_conditions(args.load_at_start)} ERNIE {_dims(args)} hidden, ATIS vocabulary, max_len 64; raw text in, "
            f"records out. Batch 1: the first {args.single} ATIS test sentences one at a time; batch 32: the "
            f"{len(sentences)} test sentences. The paths take turns call by call (a new random order each call); "
            f"sentences/s: medians over {args.rounds} rounds; latency percentiles over every call of every "
            "round; ratios against the dynamic graph of the same model in the same run (for the joint model the row "
            f"\"{JOINT_DYGRAPH}\": `MultiTaskModel.forward_tasks`, the backbone once per batch, both heads on "
            "its outputs, as in the exported program and the PyTorch model; the row \"dygraph, backbone once "
            "per task (before)\" is one `model(task, batch)` per task, the baseline of earlier runs) and against "
            "the fastest PyTorch row of the same model and batch size (\"vs PyTorch best\"). The Predictor rows run "
            "one export made with `runtime=\"auto\"` (every model file; paddlepalm/inference_runtimes.py): "
            f"\"{RECORDED}\" runs the choice it measured and recorded (lower precision not allowed), each "
            "\"Predictor, SETTING\" row that runtime setting for every batch. Paddle settings run batches of up to "
            "256 token positions on a second, one-thread predictor (`small_batch_threads=1`); the row \"N threads "
            "for every batch (before)\" is `small_batch_threads=None`. PyTorch: a BERT of the same size over the "
            "same vocabulary (fast WordPiece), random weights, one encoder pass, the same numpy Viterbi and span "
            "code; \"eager\" is `torch.no_grad()` in fp32 (the rows of earlier runs), the others "
            "`torch.inference_mode()`, in fp32 or under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`, eager or "
            "`torch.compile(dynamic=True)`.\n\n"
            "| model | path | batch 1 sent/s | vs dygraph | vs PyTorch best | p50 ms | p99 ms | batch 32 sent/s | "
            "vs dygraph | vs PyTorch best | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n" +
            "\n".join(rows) + "\n" + torch_note + ("\nPyTorch's best setting, per model and batch size:\n" +
                                                  "\n".join(notes) + "\n" if notes else "") +
            "\n" + goal_check(rates) + f"\n\nCommand: `MKL_DEBUG_CPU_TYPE=5 python bench/inference.py{options}" +
            (" --write" if args.write else "") + "`.")
    print(body)
    if args.write:
        from report import update_section
        update_section("Inference: exported models and the Predictor (bench/inference.py)", body)


def _best(rates, model: str, batch: int, prefix: str) -> Optional[str]:
    """The fastest path of ``model`` at ``batch`` whose name starts with ``prefix`` (None: none)."""
    found = {p: r for (m, p, b), r in rates.items() if m == model and b == batch and p.startswith(prefix)}
    return max(found, key=found.get) if found else None


def goal_check(rates) -> str:
    """Per model and batch size: issue 27's goal, the export's recorded choice (and the fastest
    Predictor setting) ahead of PyTorch in its best setting; issue 13's, the Predictor at least 3x
    the dynamic graph."""
    lines = ["Goals, in this run (issue 27: the export's recorded choice ahead of PyTorch's best setting; issue 13: "
             "at least 3x the dynamic graph):"]
    for model in dict.fromkeys(m for m, _, _ in rates):
        for b in (1, 32):
            recorded = _best(rates, model, b, RECORDED)
            fastest = _best(rates, model, b, "Predictor")
            dygraph = next(r for (m, p, bb), r in rates.items() if m == model and bb == b and p.startswith("dygraph"))
            ours = rates[model, recorded, b]
            text = (f"recorded choice ({recorded[len(RECORDED) + 2:]}) {ours:.1f} sentences/s, {ours / dygraph:.2f}x the "
                    f"dynamic graph ({'met' if ours >= 3 * dygraph else 'not met'})")
            torch = _best(rates, model, b, TORCH)
            if torch:
                best = rates[model, torch, b]
                text += (f"; {ours / best:.2f}x PyTorch's best ({torch[len(TORCH) + 2:]}: {best:.1f}): "
                         f"{'ahead' if ours > best else 'not ahead'}")
                if fastest != recorded:
                    text += (f"; the fastest Predictor row, {fastest}, {rates[model, fastest, b] / best:.2f}x "
                             "PyTorch's best")
            lines.append(f"- {model}, batch {b}: {text}")
    return "\n".join(lines)


def _conditions(load_at_start=None) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if load_at_start is not None:
        load = ", ".join(f"{x:.1f}" for x in load_at_start) + f" at the start, {load}"
    return (f"Machine: {_machine()}; CPU flags: {cpu_flags()}; load average (1, 5, 15 min) {load} at the end (other "
            f"jobs shared the cores: figures of separate runs differ by up to 2x, the ratios less); MKL_DEBUG_CPU_TYPE="
            f"{os.environ.get('MKL_DEBUG_CPU_TYPE', 'unset')}.")


# ------------------------------------------------------------------ --options
def options(work: str, sentences, args) -> None:
    """Paddle Inference settings side by side on the intent classifier's exported model: the same
    reader arrays through each predictor, interleaved call by call (each call rotates the order),
    so that the load of other processes falls on all of them alike."""
    import paddle.inference as inference

    trainer, readers = build(work, False, args.data_root, args.dims)
    target = os.path.join(work, "intent-paddle")
    trainer.export(target)
    predictor = palm.Predictor(target, small_batch_threads=None)
    threads = int(os.environ.get("MKL_NUM_THREADS", os.cpu_count()))
    single = sentences[:args.single]
    split = {"tokenize (features_of)": 0.0, "collate": 0.0, "run": 0.0, "post-process": 0.0}
    for repeat in range(2):  # the first pass warms up
        for text in single:
            t0 = time.perf_counter()
            features = predictor.features([text])
            t1 = time.perf_counter()
            batches = predictor.collate(features)
            feed = predictor.feed(batches)
            t2 = time.perf_counter()
            outputs = predictor.run(feed)
            t3 = time.perf_counter()
            for k in predictor.tasks:
                predictor.results(k, batches[k], outputs[k], features[k])
            t4 = time.perf_counter()
            if repeat:
                for key, seconds in zip(split, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    split[key] += seconds
    names = [i["name"] for i in predictor.meta["inputs"]]
    fetch = [o["fetch_name"] for o in predictor.meta["outputs"]]

    def make(onednn=True, count=threads, cache=None, ir=True):
        config = inference.Config(os.path.join(target, "inference.json"), os.path.join(target, "inference.pdiparams"))
        config.disable_gpu()
        if onednn:
            config.enable_mkldnn()
            if cache:
                config.set_mkldnn_cache_capacity(cache)
        else:
            config.disable_mkldnn()
        config.set_cpu_math_library_num_threads(count)
        config.switch_ir_optim(ir)
        config.disable_glog_info()
        made = inference.create_predictor(config)

        def run(feed):
            for n in names:
                handle = made.get_input_handle(n)
                handle.reshape(list(feed[n].shape))
                handle.copy_from_cpu(np.ascontiguousarray(feed[n]))
            made.run()
            return [made.get_output_handle(f).copy_to_cpu() for f in fetch]
        return run

    variants = {
        f"oneDNN, {threads} threads (before)": (make(), 0),
        f"oneDNN, {threads} threads, set_mkldnn_cache_capacity(64)": (make(cache=64), 0),
        f"oneDNN, {threads} threads, lengths padded to multiples of 8": (make(), 8),
        f"oneDNN, {threads} threads, lengths padded to multiples of 16": (make(), 16),
        f"oneDNN, {threads} threads, switch_ir_optim(False)": (make(ir=False), 0),
        f"oneDNN off, {threads} threads": (make(onednn=False), 0),
        "oneDNN, 1 thread (the Predictor's small batches now)": (make(count=1), 0),
        "oneDNN off, 1 thread": (make(onednn=False, count=1), 0),
    }
    model = trainer.model

    def dygraph(feed):
        with prediction_mode(model, "intent"):
            return [v.numpy() for v in model("intent", to_tensors(feed)).values()]
    variants[f"dynamic graph forward, {threads} threads"] = (dygraph, 0)

    def feeds_of(size):
        features = predictor.features(sentences[:max(args.single, 320)] if size > 1 else single)["intent"]
        order = np.argsort([len(f["token_ids"]) for f in features], kind="stable")
        return [predictor.collate({"intent": [features[i] for i in order[s:s + size]]})["intent"]
                for s in range(0, len(order), size)] if size > 1 else \
            [predictor.collate({"intent": [f]})["intent"] for f in features]

    table = []
    for size in (1, 32):
        feeds = feeds_of(size)
        max_len = predictor.meta["tasks"][0]["reader"]["settings"]["max_len"]  # the intent model's one task
        padded = {m: [_pad_to(f, m, max_len) for f in feeds] for m in (0, 8, 16)}
        for run, m in variants.values():
            for f in padded[m][:3]:
                run(f)
        wall = {v: [] for v in variants}
        order = list(variants)
        for _ in range(args.rounds):
            for i in range(len(feeds)):
                order = order[1:] + order[:1]
                for v in order:
                    run, m = variants[v]
                    t = time.perf_counter()
                    run(padded[m][i])
                    wall[v].append(1000 * (time.perf_counter() - t))
        table.append((size, {v: (np.percentile(x, 50), np.mean(x)) for v, x in wall.items()}))
    first = next(iter(variants))
    lines = ["| setting | batch 1 p50 ms | mean ms | vs before (mean) | batch 32 p50 ms | mean ms | vs before (mean) |",
             "|---|---|---|---|---|---|---|"]
    for v in variants:
        cells = []
        for _, result in table:
            p50, mean = result[v]
            cells += [f"{p50:.2f}", f"{mean:.2f}", f"{result[first][1] / mean:.2f}x"]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    n = len(single)
    breakdown = ", ".join(f"{k} {1000 * t / n:.2f} ms" for k, t in split.items())
    body = (f"{_conditions()} The intent classifier of the section \"Inference: exported models and the "
            f"Predictor\" (ERNIE {_dims(args)}), its exported model; "
            f"prebuilt reader arrays of the first {n} ATIS test sentences one at a time (batch 1) and of "
            f"{len(feeds_of(32)) * 32} sentences in length-sorted batches of 32; every call of every setting "
            f"interleaved, {args.rounds} rounds. A batch-1 `predict` of the Predictor ({threads} threads) spent: "
            f"{breakdown} per sentence.\n\n" + "\n".join(lines) +
            "\n\nCommand: `MKL_DEBUG_CPU_TYPE=5 python bench/inference.py --options --write`.")
    print(body)
    if args.write:
        from report import update_section
        update_section("Inference: Paddle Inference settings (bench/inference.py --options)", body)


def _pad_to(batch, multiple: int, max_len: int):
    """``batch`` with its length padded up to a multiple of ``multiple`` (at most ``max_len``)."""
    if not multiple:
        return batch
    length = batch["token_ids"].shape[1]
    width = min(-(-length // multiple) * multiple, max(max_len, length))
    out = dict(batch)
    for key in ("token_ids", "segment_ids", "input_mask", "task_ids"):
        value = batch[key]
        out[key] = np.pad(value, [(0, 0), (0, width - length)] + [(0, 0)] * (value.ndim - 2))
    out["position_ids"] = np.tile(np.arange(width, dtype="int64"), (value.shape[0], 1))
    return out


def _dims(args) -> str:
    return f"{args.dims['num_hidden_layers']} layers x {args.dims['hidden_size']}"


def _machine():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from report import machine
    return machine()


if __name__ == "__main__":
    main()
