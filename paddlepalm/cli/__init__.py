"""``palm``: train, evaluate, predict, export and plot from one YAML file per run.

A thin layer over the script API: ``palm train`` builds the readers, backbone, heads,
``Trainer`` / ``MultiHeadTrainer``, optimizer and saver a script would (paddlepalm/cli/build.py)
and calls ``train()``. See docs/cli.md for every subcommand and config key.
"""
import argparse
import os
import runpy
import shutil
import sys
from typing import List, Optional, Sequence

EPILOG = """examples:
  palm train examples/configs/multi-task.yaml -s runs/joint
  palm train examples/configs/multi-task.yaml -s runs/joint -o train.epochs=2 -o defaults.batch_size=16
  palm train examples/configs/multi-task.yaml -s runs/joint --resume      # after an interruption
  palm eval runs/joint --split test
  palm export runs/joint --joint
  palm predict runs/joint --input sentences.txt --output predictions.jsonl
  palm serve runs/joint --port 8000                                        # POST /predict {"texts": [...]}
  palm plot runs/joint
  palm ls pretrain; palm download pretrain ERNIE-v2-en-base --path models

Exit status: 0 on success, 2 for a config or usage error, 1 for any other failure, 130 when
interrupted. Errors are one line; --debug shows the traceback. Full reference: docs/cli.md."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="palm", description="paddlepalm's command line: one YAML config per run, "
                                "a run directory per training run.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from paddlepalm.inference_runtimes import RUNTIMES

    runtime_names = list(RUNTIMES)

    t = sub.add_parser("train", help="train from a config into a run directory",
                       description="Build the objects of CONFIG (readers, backbone, heads, Trainer or "
                                   "MultiHeadTrainer, optimizer, saver) and train them; RUN_DIR receives "
                                   "config.yaml, env.json, metrics.jsonl, checkpoints/ and best/.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="precedence: built-in default < defaults < the task's own block < -o "
                              "(-o edits the file before defaults are merged into the tasks)")
    t.add_argument("config", nargs="?", metavar="CONFIG", help="the YAML config (optional with --resume: "
                                                               "RUN_DIR/config.yaml is used)")
    t.add_argument("-s", "--serialization-dir", "--run-dir", dest="run_dir", required=True, metavar="RUN_DIR",
                   help="the run directory (created; must be empty unless --resume or --force)")
    t.add_argument("-o", "--override", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="set a config key (YAML value; repeatable), e.g. -o tasks.slot.reader.max_len=32; "
                        "relative paths here are relative to the current directory")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its newest "
                                                            "checkpoint (exactly: the same result as uninterrupted)")
    mode.add_argument("--force", action="store_true", help="clear RUN_DIR (a run directory) and start over")
    t.add_argument("--tasks", nargs="+", metavar="TASK", help="train only these tasks of CONFIG (one: alone, "
                                                              "as its single-task baseline)")
    t.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar when stderr is a "
                                                              "terminal; PALM's log lines are printed either way)")
    t.set_defaults(run=cmd_train)

    e = sub.add_parser("eval", help="evaluate a run's checkpoint on its dev or test files",
                       description="Score the run's best checkpoint (or --checkpoint) with each task's metrics; "
                                   "prints one JSON line per task.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--task", help="only this task")
    e.add_argument("--split", choices=["dev", "test"], default="dev", help="the tasks' dev_file or test_file")
    e.add_argument("--data", metavar="FILE", help="evaluate on this labelled file instead (needs --task when "
                                                  "the run has several tasks)")
    e.add_argument("--checkpoint", metavar="DIR", help="default: RUN_DIR/best, else the newest checkpoint")
    e.add_argument("--output", metavar="FILE", help="also write the JSON lines here")
    e.set_defaults(run=cmd_eval)

    pr = sub.add_parser("predict", help="predict raw text with an exported model",
                        description="Run a Predictor (paddlepalm.Predictor) on raw inputs: a text file with one "
                                    "input per line (a TAB between the two texts of a pair, e.g. matching or "
                                    "question<TAB>context for MRC), or a TSV file with a header naming text_a "
                                    "(and text_b) columns. Writes one JSON object per input.")
    pr.add_argument("source", metavar="RUN_DIR|EXPORT_DIR", help="an export folder, or a run directory (its "
                                                                 "export/, exported first when missing)")
    pr.add_argument("--input", required=True, metavar="FILE", help="raw text lines or a TSV with a header")
    pr.add_argument("--task", help="keep only this task's results")
    pr.add_argument("--output", metavar="FILE", help="JSON lines (default: standard output)")
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--pretokenized", action="store_true", help="each text is already split into tokens, separated "
                                                                "by spaces (default: raw text, split by the model's "
                                                                "own tokenizer; Chinese needs no spaces)")
    pr.add_argument("--runtime", choices=runtime_names, help="run the model with this runtime setting (default: the "
                                                             "choice recorded at export, else the format's own)")
    pr.add_argument("--verbose", action="store_true", help="say on standard error which runtime setting runs and why")
    pr.set_defaults(run=cmd_predict)

    x = sub.add_parser("export", help="export a run's checkpoint as an inference model",
                       description="Write RUN_DIR/export/<joint|task> (or --output): a Paddle inference model "
                                   "with palm_meta.json, loaded by palm predict and paddlepalm.Predictor.")
    x.add_argument("run_dir", metavar="RUN_DIR")
    which = x.add_mutually_exclusive_group()
    which.add_argument("--task", help="export this task alone")
    which.add_argument("--joint", action="store_true", help="one model of every task (one backbone pass; the "
                                                            "default when the run has several tasks)")
    x.add_argument("--format", choices=["paddle", "onnx"], default="paddle")
    x.add_argument("--runtime", choices=["auto", "none", *runtime_names], default="auto",
                   help="auto (the default): also write the ONNX and int8 models, time every runtime setting on the "
                        "export's example inputs (batch 1 and 32) and record the fastest that agrees with fp32 Paddle "
                        "as the default of palm predict / serve; a setting's name: record that one; none: no record "
                        "(the format's own setting, no measuring)")
    x.add_argument("--allow-lower-precision", action="store_true",
                   help="let --runtime auto choose bf16 and int8 settings (within their tolerance against fp32 Paddle; "
                        "check their test accuracy with bench/precision_accuracy.py)")
    x.add_argument("--checkpoint", metavar="DIR", help="default: RUN_DIR/best, else the newest checkpoint")
    x.add_argument("--output", metavar="DIR", help="default: RUN_DIR/export/<joint|TASK>")
    x.set_defaults(run=cmd_export)

    from paddlepalm import serve as serving

    sv = sub.add_parser("serve", help="serve an exported model over HTTP (JSON, dynamic batching)",
                        description="Serve a Predictor: POST /predict {\"texts\": [...]} (or {\"tokens\": [[...]]}) "
                                    "answers {\"predictions\": [...]}, one record per input; GET /health, GET /stats. "
                                    "Concurrent requests are run together, in batches. Stop with Ctrl-C or SIGTERM.")
    sv.add_argument("source", metavar="RUN_DIR|EXPORT_DIR", help="an export folder, or a run directory (its "
                                                                 "export/, exported first when missing)")
    sv.add_argument("--host", default=serving.DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    sv.add_argument("--port", type=_number(int, 0), default=serving.DEFAULT_PORT, help="0: a free port (the URL is "
                                                                                     "printed; default: %(default)s)")
    sv.add_argument("--max-batch", type=_number(int, 1), default=serving.DEFAULT_MAX_BATCH,
                    help="inputs per model call, from one or several requests (default: %(default)s)")
    sv.add_argument("--max-wait-ms", type=_number(float, 0), default=serving.DEFAULT_MAX_WAIT_MS,
                    help="how long a request waits for others to share its call (default: %(default)s)")
    sv.add_argument("--max-inputs", type=_number(int, 1), default=serving.DEFAULT_MAX_INPUTS,
                    help="inputs per request (more: 413; default: %(default)s)")
    sv.add_argument("--max-chars", type=_number(int, 1), default=serving.DEFAULT_MAX_CHARS,
                    help="characters per input (more: 413; default: %(default)s)")
    sv.add_argument("--max-body-bytes", type=_number(int, 1), default=serving.DEFAULT_MAX_BODY_BYTES,
                    help="bytes per request body (more: 413; default: %(default)s)")
    sv.add_argument("--threads", type=_number(int, 1), help="CPU threads of the model (default: MKL_NUM_THREADS, "
                                                             "else every core)")
    sv.add_argument("--runtime", choices=runtime_names, help="run the model with this runtime setting (default: the "
                                                             "choice recorded at export, else the format's own)")
    sv.add_argument("--task", help="answer only this task's results")
    sv.add_argument("--no-access-log", action="store_true", help="no line per request on standard error")
    sv.set_defaults(run=cmd_serve)

    pl = sub.add_parser("plot", help="plot a run's metrics.jsonl as PNG files",
                        description="Write RUN_DIR/plots/: loss.png (per-task training loss, smoothed), eval.png "
                                    "(dev metrics, best checkpoint marked), lr.png (learning rate and throughput), "
                                    "mix.png (realized task mix).")
    pl.add_argument("run_dir", metavar="RUN_DIR")
    pl.add_argument("--output", metavar="DIR", help="default: RUN_DIR/plots")
    pl.add_argument("--smooth", type=float, default=0.6, help="exponential smoothing of the loss curves (0: none)")
    pl.set_defaults(run=cmd_plot)

    af = sub.add_parser("affinity", help="rank tasks by how much they helped a target task",
                        description="Read the inter-task affinity a run measured (train.affinity_every; "
                                    "paddlepalm/affinity.py) from RUN_DIR/metrics.jsonl and print, one JSON line "
                                    "per task, the other tasks ranked by their mean affinity onto TARGET "
                                    "(positive: a step on that task lowered TARGET's loss).")
    af.add_argument("run_dir", metavar="RUN_DIR")
    af.add_argument("--target", required=True, help="the task to rank the others for")
    af.set_defaults(run=cmd_affinity)

    ls = sub.add_parser("ls", help="list the downloadable models (paddlepalm.downloader.ls)")
    ls.add_argument("item", nargs="?", default="all", help="'pretrain' or 'all'")
    ls.add_argument("scope", nargs="?", default="all", help="an entry name or 'all'")
    ls.set_defaults(run=cmd_ls)

    d = sub.add_parser("download", help="download a model (paddlepalm.downloader.download)")
    d.add_argument("item", help="'pretrain'")
    d.add_argument("scope", nargs="?", default="all", help="an entry name (see palm ls) or 'all'")
    d.add_argument("--path", default=None, help="target folder (default: $PALM_HOME or the current directory)")
    d.set_defaults(run=cmd_download)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # `palm ls | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("palm: interrupted" + (" (continue with --resume)" if args.command == "train" else ""), file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 (one line for any failure, the traceback with --debug)
        if args.debug:
            raise
        from paddlepalm.cli.config import ConfigError

        from paddlepalm.cli.run_dir import RunDirError
        from paddlepalm.downloader import UnknownNameError

        usage = (ConfigError, CliError, RunDirError, UnknownNameError)  # a misspelt download name too
        text = " ".join(str(error).split()) or type(error).__name__
        if not isinstance(error, usage + (PrepareError,)):
            text = f"{type(error).__name__}: {text}"
        print(f"palm {args.command}: error: {text}", file=sys.stderr)
        return 2 if isinstance(error, usage) else 1


class CliError(RuntimeError):
    """A usage problem found after parsing (shown without its type; exit status 2)."""


class PrepareError(RuntimeError):
    """The config's ``prepare`` script failed (shown without its type; exit status 1)."""


# ------------------------------------------------------------------ train
def cmd_train(args) -> int:
    from paddlepalm.cli import config as config_mod, run_dir as rd

    run = os.path.abspath(args.run_dir)
    if args.config is None and not args.resume:
        raise CliError("give CONFIG (a YAML file), or --resume to continue RUN_DIR's run")
    if args.config is None:
        cfg = config_mod.load(rd.config_path(run), args.override, run)
    else:
        cfg = config_mod.load(args.config, args.override, run, only=args.tasks)
    if args.print_config:
        sys.stdout.write(cfg.to_yaml())
        return 0
    made = not os.path.isdir(run)
    resuming = rd.open_for_training(run, args.resume, args.force)
    stored = None
    if resuming:
        stored = config_mod.parse_yaml(open(rd.config_path(run), encoding="utf-8").read(), rd.config_path(run))[0]
        changed = rd.differences(cfg.data, stored)
        if changed:
            raise CliError(f"the config differs from the run's {rd.config_path(run)} at {', '.join(changed[:6])}: "
                           "--resume continues the same run (--force starts it over)")
    elif args.resume:
        print(f"palm train: {run} holds no run yet: starting it", file=sys.stderr)

    from paddlepalm.cli import build

    built = None
    with rd.cleared_on_failure(run, made, lambda: resuming or (built is not None and built.top.global_step > 0)):
        prepare_data(cfg)
        built = build.for_training(cfg, run)
        _train(args, cfg, run, built, resuming, stored)
    return 0


def _train(args, cfg, run: str, built, resuming: bool, stored) -> None:
    """Start or resume ``built``'s training in ``run`` (config.yaml, env.json, metrics, sinks) and train."""
    from paddlepalm import logs
    from paddlepalm.cli import run_dir as rd
    from paddlepalm.sinks import MetricsFile, VisualDLWriter

    checkpoint = rd.newest_checkpoint(run) if resuming else None
    if resuming:
        changed = rd.differences(cfg.data, stored)  # the sizes derived from the data, too
        if changed:
            raise CliError(f"the data of the run changed: {', '.join(changed[:6])} differ from {rd.config_path(run)}")
    else:
        rd.write_config(run, cfg.to_yaml())
    rd.write_env(run, args.argv, checkpoint, {"cpu_layers": built.top.model.cpu_layers})
    if checkpoint is not None:
        built.top.load_ckpt(checkpoint)
        rd.truncate_metrics(run, checkpoint)
    elif resuming:
        logs.log(f"no checkpoint in {rd.checkpoints_dir(run)} yet: training from the start")
        rd.truncate_metrics(run, None)
    sinks = [MetricsFile(rd.metrics_path(run))]
    if "visualdl" in cfg["train"]["report_to"]:
        sinks.append(VisualDLWriter(os.path.join(run, "visualdl")))
    progress = not args.no_progress and sys.stderr.isatty()
    logs.log(f"palm train: {len(cfg.tasks)} task(s), {built.total_steps} steps, run directory {run}")
    built.top.train(print_steps=cfg["train"]["print_steps"], skip_nonfinite=cfg["train"]["skip_nonfinite"],
                    progress=progress, sinks=sinks)
    evaluation = built.top.evaluation
    best = f", best {evaluation.aggregate_name} {evaluation.best_score:.4f} at step {evaluation.best_step} " \
           f"in {os.path.join(run, 'best')}" if evaluation is not None and evaluation.best_step is not None else ""
    logs.log(f"palm train: done at global step {built.top.global_step}{best}; next: palm eval {args.run_dir}")
    if "visualdl" in cfg["train"]["report_to"]:
        logs.log(f"palm train: VisualDL: visualdl --logdir {os.path.join(run, 'visualdl')} --disable-telemetry")


def prepare_data(cfg) -> None:
    """Run the config's ``prepare`` step once, into ``data_dir``: a built-in conversion (``kind``,
    ``paddlepalm.prepare``) or a script (in this process)."""
    spec, data_dir = cfg["prepare"], cfg["data_dir"]
    if spec is None or os.path.isdir(data_dir):
        return
    tmp = data_dir + ".tmp"
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    if spec["kind"] is not None:
        _prepare_kind(spec, tmp)
    else:
        _prepare_script(spec, tmp)
    os.replace(tmp, data_dir)


def _prepare_kind(spec, out: str) -> None:
    from paddlepalm import logs, prepare

    logs.log(f"palm train: preparing the data: {spec['kind']} from {spec['source']}")
    prepared = prepare.prepare(spec["kind"], spec["source"], out, files=spec["files"], lowercase=spec["lowercase"],
                               tokenizer=spec["tokenizer"], strip_position=spec["strip_position"])
    counts = ", ".join(f"{split} {record['examples']}" for split, record in prepared.splits.items())
    sizes = [f"{n} {what}" for n, what in ((prepared.tag_classes, "tags"), (prepared.label_classes, "classes")) if n]
    logs.log(f"palm train: prepared {counts} examples, {', '.join(sizes)} (label maps from train)")


def _prepare_script(spec, tmp: str) -> None:
    from paddlepalm import logs

    argv = [spec["script"], *spec["args"], "--out", tmp] + (["--source", spec["source"]] if spec["source"] else [])
    logs.log(f"palm train: preparing the data: python {' '.join(argv)}")
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(spec["script"], run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise PrepareError(f"the prepare script {spec['script']} exited with {exit_.code}") from None
    finally:
        sys.argv = saved


# ------------------------------------------------------------------ eval / export / predict
def _run_config(run: str):
    from paddlepalm.cli import config as config_mod, run_dir as rd

    return config_mod.load(rd.config_path(run), run_dir=run)


def _check_task(cfg, task: Optional[str]) -> None:
    if task is not None and task not in cfg.tasks:
        from paddlepalm.cli.config import not_one_of

        raise CliError(f"--task {not_one_of(task, list(cfg.tasks))} (the tasks of this run)")


def cmd_eval(args) -> int:
    import json

    from paddlepalm.cli import build, run_dir as rd

    run = os.path.abspath(args.run_dir)
    cfg = _run_config(run)
    _check_task(cfg, args.task)
    tasks = [args.task] if args.task else [n for n, t in cfg.tasks.items() if not t["aux"]]
    if args.data:
        if len(tasks) != 1:
            raise CliError("--data needs --task (the run has several tasks)")
        files = {tasks[0]: os.path.abspath(args.data)}
    else:
        key = f"{args.split}_file"
        files = {n: cfg.tasks[n][key] for n in tasks if cfg.tasks[n][key]}
        if not files:
            raise CliError(f"no task has a {key} (give --data FILE --task T)")
    weights = rd.weights_for(run, args.checkpoint)
    built = build.for_checkpoint(cfg, weights, files)
    lines = []
    for task, scores in build.evaluate(built).items():
        lines.append(json.dumps({"task": task, "data": files[task], "checkpoint": weights,
                                 **{k: round(v, 6) for k, v in scores.items()}}, ensure_ascii=False))
    print("\n".join(lines), flush=True)
    if args.output:
        from paddlepalm.utils.fileio import write_text

        write_text(args.output, "\n".join(lines) + "\n")
    return 0


def _export(run: str, task: Optional[str], joint: bool, format: str, checkpoint: Optional[str],
            output: Optional[str], runtime: Optional[str] = None, allow_lower_precision: bool = False) -> str:
    from paddlepalm.cli import build, run_dir as rd

    cfg = _run_config(run)
    _check_task(cfg, task)
    candidates = build.exportable(cfg)
    if task is not None:
        if task not in candidates:
            raise CliError(f"task {task} cannot be exported (auxiliary, sharing another head, or a pretraining head); "
                           f"exportable: {candidates}")
        tasks = [task]
    else:
        tasks = candidates
        if not tasks:
            raise CliError("no task of this run can be exported (pretraining heads have no Predictor)")
        alone = build.exported_alone(cfg, tasks)
        if len(tasks) > 1 and alone and not joint:
            raise CliError(f"task {alone[0]} ({cfg.tasks[alone[0]]['head']['kind']} head) is exported alone: "
                           f"give --task (one of {tasks})")
    name = tasks[0] if len(tasks) == 1 and not joint else "joint"
    path = os.path.abspath(output) if output else os.path.join(run, "export", name)
    weights = rd.weights_for(run, checkpoint)
    files = {t: next(f for f in (cfg.tasks[t]["dev_file"], cfg.tasks[t]["test_file"], cfg.tasks[t]["train_file"]) if f)
             for t in tasks}  # the first batch of a file gives the model's inputs
    built = build.for_checkpoint(cfg, weights, files)
    build.export(built, tasks, path, format, runtime, allow_lower_precision)
    return path


def cmd_export(args) -> int:
    if args.runtime == "none":
        args.runtime = None
    if args.allow_lower_precision and args.runtime != "auto":
        raise CliError("--allow-lower-precision applies to --runtime auto")
    path = _export(os.path.abspath(args.run_dir), args.task, args.joint, args.format, args.checkpoint, args.output,
                   args.runtime, args.allow_lower_precision)
    print(f"palm export: {path}", flush=True)
    return 0


def read_inputs(path: str) -> List:
    """Raw lines (``a<TAB>b`` is a pair) or a TSV with a header naming ``text_a`` (``text_b``, or
    ``question``/``context``)."""
    from paddlepalm.reader.errors import DataFormatError
    from paddlepalm.utils.fileio import read_lines

    lines = read_lines(path)
    if not lines:
        return []
    header = lines[0].split("\t")
    columns = None
    if "text_a" in header:
        columns = [header.index("text_a")] + ([header.index("text_b")] if "text_b" in header else [])
    elif "question" in header and "context" in header:
        columns = [header.index("question"), header.index("context")]
    inputs = []
    for number, line in enumerate(lines[1:] if columns else lines, start=2 if columns else 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if columns:
            if len(fields) != len(header):
                raise DataFormatError(path, number, f"{len(fields)} fields, the header has {len(header)}")
            picked = [fields[i] for i in columns]
        else:
            picked = fields
        if len(picked) > 2:
            raise DataFormatError(path, number, f"{len(picked)} tab-separated texts; one text or a pair expected")
        inputs.append(picked[0] if len(picked) == 1 else tuple(picked))
    return inputs


def _export_dir(source: str, task: Optional[str]) -> str:
    """``source`` if it is an export folder, else the export of the run directory ``source``."""
    from paddlepalm.inference import META_FILE, is_export

    path = os.path.abspath(source)
    if is_export(path):  # an export, or a folder of per-task exports (pred.step{N}/)
        return path
    if os.path.isfile(os.path.join(path, "config.yaml")):
        return _predict_export(path, task)
    raise CliError(f"{source} is neither an export folder ({META_FILE}) nor a run directory (config.yaml)")


def cmd_predict(args) -> int:
    import json

    inputs = _predict_inputs(args.input)
    export_dir = _export_dir(args.source, args.task)

    predictor = _predictor(export_dir, args.runtime, batch_size=args.batch_size)
    if args.verbose:
        print(f"palm predict: {export_dir}: {predictor.describe_runtime()}", file=sys.stderr, flush=True)
    if args.task is not None and args.task not in predictor.tasks:
        raise CliError(f"the model in {export_dir} has no task {args.task!r}; it has {predictor.tasks}")
    if args.pretokenized:
        records = predictor.predict([_split_tokens(given) for given in inputs], pretokenized=True)
    else:
        records = predictor.predict(inputs)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for given, record in zip(inputs, records):
            if args.task is not None:
                record = {args.task: record[args.task]}
            out.write(json.dumps({"input": given, **record}, ensure_ascii=False, default=_plain_value) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output:
        print(f"palm predict: {len(records)} predictions written to {args.output}", file=sys.stderr)
    return 0


def _predictor(export_dir: str, runtime: Optional[str], **options):
    """A Predictor of ``export_dir`` running ``runtime``; a setting that cannot run is a usage error."""
    import paddlepalm
    from paddlepalm.inference_runtimes import RuntimeUnavailable

    try:
        return paddlepalm.Predictor(export_dir, runtime=runtime, **options)
    except RuntimeUnavailable as error:
        raise CliError(f"--runtime {runtime}: {error}" if runtime else str(error)) from None


def _split_tokens(given):
    """A pre-tokenized input line: its tokens (a pair: both texts' tokens)."""
    return given.split() if isinstance(given, str) else tuple(text.split() for text in given)


def _predict_inputs(path: str) -> List:
    """``--input``'s inputs; a missing file or one without any input is a usage error."""
    if not os.path.isfile(path):
        raise CliError(f"--input {path}: no such file")
    inputs = read_inputs(path)
    if not inputs:
        raise CliError(f"--input {path}: no input in it (the file is empty or holds only blank lines or a header)")
    return inputs


def _plain_value(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _predict_export(run: str, task: Optional[str]) -> str:
    """The run's export for ``task`` (its own, or the joint one holding it); exported when missing."""
    from paddlepalm.inference import META_FILE
    from paddlepalm.utils.fileio import read_json

    for name in ([task] if task else []) + ["joint"] + ([] if task else sorted(os.listdir(os.path.join(run, "export")))
                                                      if os.path.isdir(os.path.join(run, "export")) else []):
        path = os.path.join(run, "export", name)
        if os.path.isfile(os.path.join(path, META_FILE)):
            if task is None or task in [t["name"] for t in read_json(os.path.join(path, META_FILE))["tasks"]]:
                return path
    return _export(run, task, False, "paddle", None, None)


# ------------------------------------------------------------------ serve
def _number(kind, minimum):
    """An argparse type: ``kind`` (int or float) of at least ``minimum`` (else a usage error, exit 2)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value
    return parse


def cmd_serve(args) -> int:
    import contextlib

    from paddlepalm import serve

    with contextlib.redirect_stdout(sys.stderr):  # standard output holds the URL only
        try:
            export_dir = _export_dir(args.source, args.task)
        except CliError as error:  # a usage problem: exit 2, as argparse's own
            print(f"palm serve: error: {error}", file=sys.stderr)
            return 2
        try:
            predictor = _predictor(export_dir, args.runtime, threads=args.threads, batch_size=args.max_batch)
        except CliError as error:
            print(f"palm serve: error: {error}", file=sys.stderr)
            return 2
        if args.task is not None and args.task not in predictor.tasks:
            print(f"palm serve: error: the model in {export_dir} has no task {args.task!r}; it has {predictor.tasks}",
                  file=sys.stderr)
            return 2
        print(f"palm serve: {predictor.describe_runtime()}", file=sys.stderr, flush=True)
        service = serve.Service(predictor, serve.Limits(args.max_inputs, args.max_chars, args.max_body_bytes),
                                args.max_batch, args.max_wait_ms, args.task)
    serve.run(service, args.source, args.host, args.port, access_log=not args.no_access_log)
    return 0


# ------------------------------------------------------------------ plot / downloader
def cmd_plot(args) -> int:
    from paddlepalm.cli import plot

    run = os.path.abspath(args.run_dir)
    for path in plot.plot_run(run, args.output or os.path.join(run, "plots"), args.smooth):
        print(path)
    return 0


def cmd_affinity(args) -> int:
    import json

    from paddlepalm.affinity import rank_sources
    from paddlepalm.cli import run_dir as rd

    records = [r for r in rd.read_metrics(os.path.abspath(args.run_dir)) if r.get("event") == "affinity"]
    if not records:
        raise CliError(f"{args.run_dir} has no affinity records: train with train.affinity_every: N")
    tasks = sorted(records[-1]["affinity"])
    if args.target not in tasks:
        from paddlepalm.cli.config import not_one_of

        raise CliError(f"--target {not_one_of(args.target, tasks)} (the tasks measured)")
    for row in rank_sources(records, args.target):
        print(json.dumps({"target": args.target, **row}), flush=True)
    return 0


def cmd_ls(args) -> int:
    from paddlepalm import downloader

    downloader.ls(args.item, args.scope)
    return 0


def cmd_download(args) -> int:
    from paddlepalm import downloader

    print(downloader.download(args.item, args.scope, args.path))  # a misspelt name: UnknownNameError, exit 2
    return 0
