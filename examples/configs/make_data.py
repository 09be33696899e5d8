"""Write an example's data in the files its config names, with the example's own preparation code.

    python examples/configs/make_data.py EXAMPLE --out DIR [--source RAW_DIR] [--max_train N]

``palm train examples/configs/EXAMPLE.yaml -s RUN_DIR`` runs this once (its ``prepare`` key),
into ``RUN_DIR/data``: the generated sample by default, or the real data set in ``--source``
(``-o prepare.source=$PALM_DATA_ROOT/atis``). Each example converts its data as its ``run.py``
does (``prepare()``, ``prepare_data.convert``...), so the config trains on the same files.
"""
import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.dirname(HERE)
REPO = os.path.dirname(EXAMPLES)


def module(relative: str):
    """An example's module by path; its folder (and examples/) come first on sys.path, and the
    helper modules of another example (``common``, ``make_sample``...) are forgotten first."""
    path = os.path.join(EXAMPLES, relative)
    for name in ("common", "make_sample", "prepare_data", "make_corpus_sample", "prepare_corpus"):
        sys.modules.pop(name, None)
    for folder in (os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"example_{relative.replace('/', '_')[:-3]}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _moved(work: str, out: str) -> None:
    """``work/data/*`` (where the examples' ``prepare`` writes) into ``out``."""
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(os.path.join(work, "data")):
        shutil.move(os.path.join(work, "data", name), os.path.join(out, name))


def classification(a, work, out):
    module("classification/run.py").prepare(SimpleNamespace(data_dir=a.source, dev_size=800, max_train=a.max_train),
                                            work)
    _moved(work, out)


def matching(a, work, out):
    module("matching/run.py").prepare(SimpleNamespace(data_dir=a.source, ood_dir=None, dev_size=2000,
                                                      max_train=a.max_train), work)
    _moved(work, out)


def tagging(a, work, out):
    run = module("tagging/run.py")
    run.prepare(SimpleNamespace(data_dir=a.source, dev_size=1000 if a.source else 150, max_train=a.max_train), work)
    _moved(work, out)
    _write_json(os.path.join(out, "label_map.json"), {tag: i for i, tag in enumerate(run.LABELS)})


def _write_json(path, value):
    import json

    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)


def mrc(a, work, out):
    module("mrc/run.py").prepare(SimpleNamespace(data_dir=a.source, train_part=0.5, eval_part=0.1,
                                                 max_train=a.max_train), work)
    _moved(work, out)


def multi_task(a, work, out):
    """ATIS/SNIPS layout -> slot/ and intent/ TSV files, label_map.json, intent_map.json, vocab.txt."""
    convert = module("multi-task/prepare_data.py").convert
    raw = a.source or module("multi-task/make_sample.py").make_sample(os.path.join(work, "sample_raw"))
    convert(raw, out)


def multi_task_aux(a, work, out):
    module("multi-task-aux/run.py").prepare(SimpleNamespace(data_dir=a.source, dev_size=800, max_train=a.max_train,
                                                            aux_unlabeled=False), work)
    _moved(work, out)


def elmo_transfer(a, work, out):
    module("elmo-transfer/run.py").prepare(SimpleNamespace(work_dir=work, data_root=a.source))
    _moved(work, out)  # the tagger reads characters with the ELMo package's vocabulary
    shutil.copyfile(os.path.join(REPO, "pretrain_models", "elmo-zh-tiny", "vocab.txt"), os.path.join(out, "vocab.txt"))


def zh_ner(a, work, out):
    """MSRA, Resume or Weibo NER (``--source``: the data set's folder in the data root) as character
    TSV files (train/dev/test.tsv), their label_map.json, and the ELMo package's character vocabulary
    (so the same files serve the tagger with and without ELMo features; full-width characters are
    folded to half-width). MSRA has no dev split: its
    last 1000 training sentences are the dev set. Without ``--source``: the tagging example's sample."""
    read_conll = module("elmo-transfer/run.py").read_conll
    tagging = module("tagging/run.py")
    folder = a.source
    if folder is None:
        tagging.prepare(SimpleNamespace(data_dir=None, dev_size=150, max_train=None), work)
        splits = {name: tagging_rows(os.path.join(work, "data", f"{name}.tsv")) for name in ("train", "dev", "test")}
    elif os.path.exists(os.path.join(folder, "MSRA.zip")):
        import zipfile

        archive = os.path.join(folder, "MSRA.zip")
        with zipfile.ZipFile(archive) as z:
            train, test = (tagging.read_msra(z.read(f"MSRA/{name}").decode("utf-8").splitlines(), f"{archive}:MSRA/{name}")
                           for name in ("train.txt", "test_with_label.txt"))
        splits = {"train": train[:-1000], "dev": train[-1000:], "test": test}
    elif os.path.exists(os.path.join(folder, "train.char.bmes")):
        splits = {name: read_conll(os.path.join(folder, f"{name}.char.bmes")) for name in ("train", "dev", "test")}
    elif os.path.exists(os.path.join(folder, "weiboNER_2nd_conll.train")):
        splits = {name: read_conll(os.path.join(folder, f"weiboNER_2nd_conll.{name}"), strip_position=True)
                  for name in ("train", "dev", "test")}
    else:
        raise SystemExit(f"zh-ner: {folder} holds none of MSRA.zip, train.char.bmes, weiboNER_2nd_conll.train")
    if a.max_train:
        splits["train"] = splits["train"][:a.max_train]
    os.makedirs(out, exist_ok=True)
    from paddlepalm.prepare.common import tag_map_of

    _write_json(os.path.join(out, "label_map.json"), tag_map_of(ts for _, ts in splits["train"]))  # train only
    for name, rows in splits.items():
        with open(os.path.join(out, f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.write("text_a\tlabel\n")
            for chars, labels in rows:
                f.write("\x02".join(map(_halfwidth, chars)) + "\t" + "\x02".join(labels) + "\n")
    shutil.copyfile(os.path.join(REPO, "pretrain_models", "elmo-zh-tiny", "vocab.txt"), os.path.join(out, "vocab.txt"))


def _halfwidth(char: str) -> str:
    """NFKC of one character where that stays one character: MSRA writes digits and Latin letters
    full-width (``１``, ``Ａ``: 2.8% of its characters), which the ELMo vocabulary holds half-width."""
    import unicodedata

    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 and not folded.isspace() else char


def tagging_rows(path):
    """(characters, tags) rows of a ``text_a<TAB>label`` file joined by ``\\x02``."""
    with open(path, encoding="utf-8") as f:
        return [tuple(part.split("\x02") for part in line.rstrip("\n").split("\t")) for line in f.readlines()[1:]]


def zh_ner_aux(a, work, out):
    """Weibo NER with its auxiliary tasks (issue 25): ``weibo/``, ``resume/``, ``msra/`` (as
    ``zh-ner`` writes each), ``seg/`` and ``pos/`` (word segmentation as BMES, POS as B-/I- tags, over the
    characters of People's Daily 1998, split by date: paddlepalm/prepare/rmrb.py) and the shared
    character vocabulary. ``--source``: the data root. Without it: the tagging sample for the NER
    tasks, and its sentences segmented at the entities for ``seg/`` and ``pos/``."""
    from paddlepalm.prepare import rmrb
    from paddlepalm.utils import fileio

    sources = {"weibo": "weibo_ner", "resume": "resume_ner", "msra": "msra_ner"}
    for task, folder in sources.items():
        zh_ner(SimpleNamespace(source=a.source and os.path.join(a.source, folder), max_train=a.max_train),
               os.path.join(work, task), os.path.join(out, task))
    if a.source:
        corpus = os.path.join(a.source, "peoples_daily_1998", "RMRB.zip")
        word_splits = {task: rmrb.read_splits(corpus, task) for task in ("segmentation", "pos")}
    else:
        word_splits = _sample_word_splits(os.path.join(out, "weibo"))
    from paddlepalm.prepare.common import tag_map_of

    for task, folder in (("segmentation", "seg"), ("pos", "pos")):
        splits = word_splits[task]
        if a.max_train:
            splits["train"] = splits["train"][:a.max_train]
        os.makedirs(os.path.join(out, folder), exist_ok=True)
        _write_json(os.path.join(out, folder, "label_map.json"), tag_map_of(e.tags for e in splits["train"]))
        for name, examples in splits.items():
            rows = ["\x02".join(map(_halfwidth, e.tokens)) + "\t" + "\x02".join(e.tags) for e in examples]
            fileio.write_text(os.path.join(out, folder, f"{name}.tsv"), "\n".join(["text_a\tlabel", *rows]) + "\n")
    shutil.copyfile(os.path.join(out, "weibo", "vocab.txt"), os.path.join(out, "vocab.txt"))


def _sample_word_splits(ner_folder):
    """Segmentation and POS rows for the generated sample: each entity one word (its type the POS),
    every other character a word of its own (POS ``x``)."""
    from paddlepalm.prepare import rmrb
    from paddlepalm.prepare.common import Example

    def words(chars, tags):
        out = []
        for char, tag in zip(chars, tags):
            if tag.startswith(("I-", "M-", "E-")) and out:
                out[-1] = (out[-1][0] + char, out[-1][1])
            else:
                out.append((char, tag[2:] if tag != "O" else "x"))
        return out

    result = {}
    for task, tagger in (("segmentation", rmrb.segmentation_tags), ("pos", rmrb.pos_tags)):
        result[task] = {}
        for name in ("train", "dev", "test"):
            rows = tagging_rows(os.path.join(ner_folder, f"{name}.tsv"))
            result[task][name] = [Example(where=f"{name}.tsv:{i + 2}", tokens=list(chars), tags=tagger(words(chars, tags)))
                                  for i, (chars, tags) in enumerate(rows)]
    return result


def reviews(a, work, out):
    """online_shopping_10_cats as two tasks over the same reviews (issue 25): ``cat/`` (10 product
    categories) and ``senti/`` (sentiment), rows in the same order so ``train.joint`` can read one
    batch for both; ``--source``: the data set's folder. Without it: a generated sample."""
    from paddlepalm.prepare.reviews import read_reviews, sample_reviews, write_reviews

    splits = ({name: read_reviews(os.path.join(a.source, f"{name}.csv")) for name in ("train", "dev", "test")}
              if a.source else sample_reviews(seed=1))
    if a.max_train:
        splits["train"] = splits["train"][:a.max_train]
    write_reviews(splits, out)
    shutil.copyfile(os.path.join(REPO, "pretrain_models", "elmo-zh-tiny", "vocab.txt"), os.path.join(out, "vocab.txt"))


def palm_scripts(a, work, out):
    """PALM's layout: data/atis/atis_{slot,intent}/ and a released-format pretrain/ERNIE-tiny/."""
    module("palm-scripts/make_sample.py").prepare(out)


def pretrain_corpus(a, work, out):
    """A one-sentence-per-line corpus (documents between blank lines) and its character vocabulary."""
    common = module("pretrain/common.py")
    args = SimpleNamespace(data_dir=a.source, with_rmrb=False)
    corpus = common.corpus_for(args, out)
    common.corpus_vocab(corpus, os.path.join(out, "vocab.txt"), 5000)
    os.replace(corpus, os.path.join(out, "corpus.txt"))


def pretrain_elmo(a, work, out):
    """Train/dev sentences and the word (character) vocabulary of examples/pretrain/elmo."""
    import paddlepalm as palm

    os.makedirs(out, exist_ok=True)
    if a.source:
        paths = module("pretrain/elmo/prepare_corpus.py").prepare_corpus(a.source, os.path.join(out, "corpus"))
        for split in ("train", "dev"):
            os.replace(paths[split], os.path.join(out, f"{split}.txt"))
    else:
        sample = module("pretrain/elmo/make_corpus_sample.py").make_sample
        sample(os.path.join(out, "train.txt"), 3000, seed=1)
        sample(os.path.join(out, "dev.txt"), 200, seed=2)
    tokens = palm.reader.build_vocab_from_corpus(os.path.join(out, "train.txt"), split="char", min_freq=2,
                                                 max_size=5000)
    palm.reader.write_word_vocab(tokens, os.path.join(out, "vocab.txt"))


def finetune(a, work, out):
    """examples/pretrain/finetune.py's sentiment sample: train.tsv and dev.tsv."""
    mod = module("pretrain/finetune.py")
    data = a.source or mod.make_sample(os.path.join(work, "sample"))
    os.makedirs(out, exist_ok=True)
    mod.train_subset(data, os.path.join(out, "train.tsv"), a.max_train or 4000, seed=1)
    shutil.copyfile(os.path.join(data, "dev.tsv"), os.path.join(out, "dev.tsv"))
    shutil.copyfile(os.path.join(REPO, "pretrain_models", "electra-zh-tiny", "vocab.txt"), os.path.join(out, "vocab.txt"))


def zh_mixture(a, work, out):
    """TNEWS, AFQMC, ChnSentiCorp and Weibo NER (``--source``: the data root holding their folders)."""
    mod = module("multi-task-zh/make_data.py")
    mod.convert(mod.read_sources(a.source or mod.sample_source(work)), out, max_train=a.max_train)


MAKERS = {"classification": classification, "matching": matching, "tagging": tagging, "mrc": mrc,
          "multi-task": multi_task, "multi-task-aux": multi_task_aux, "elmo-transfer": elmo_transfer,
          "palm-scripts": palm_scripts, "pretrain-albert": pretrain_corpus, "pretrain-electra": pretrain_corpus,
          "pretrain-elmo": pretrain_elmo, "finetune": finetune,
          "zh-mixture": zh_mixture, "zh-ner": zh_ner, "zh-ner-aux": zh_ner_aux, "reviews": reviews}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("example", choices=sorted(MAKERS))
    p.add_argument("--out", required=True, help="the folder the config's data paths are relative to")
    p.add_argument("--source", default=None, help="the real data set (default: the example's generated sample)")
    p.add_argument("--max_train", type=int, default=None, help="use only the first N training examples")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        MAKERS[a.example](a, work, os.path.abspath(a.out))
    print(f"{a.example}: data written to {a.out}", flush=True)


if __name__ == "__main__":
    main()
