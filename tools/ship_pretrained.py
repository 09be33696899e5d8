"""Copy a pretraining run's exported backbone into ``pretrain_models/NAME`` with a model card.

    python tools/ship_pretrained.py /work/runs/i26/mlm/pretrained mlm-zh-small \\
        --title "a small Chinese encoder pretrained with masked LM" --objective "masked LM as BERT ..."

Copies ``config.json``, ``vocab.txt``, ``model.pdparams`` and ``pretrain_info.json`` (what
``examples/pretrain/*/run.py --output`` writes) and writes ``README.md`` from them. Then add NAME to
``SHIPPED`` in tools/build_registry.py and run it, so that the registry carries the files' checksums.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from paddlepalm.utils.fileio import read_json, read_state, write_text, write_with  # noqa: E402

FILES = ("config.json", "vocab.txt", "model.pdparams", "pretrain_info.json")
CLASSES = {"electra": "ELECTRA", "albert": "ALBERT"}


def model_card(name: str, title: str, objective: str, out: str) -> str:
    cfg, info = read_json(os.path.join(out, "config.json")), read_json(os.path.join(out, "pretrain_info.json"))
    state = read_state(os.path.join(out, "model.pdparams"))
    sizes = {k: int(getattr(v, "size", 0)) for k, v in state.items() if k.startswith("backbone.")}
    params, no_pooler = sum(sizes.values()), sum(v for k, v in sizes.items() if ".pooler." not in k)
    cls = CLASSES[cfg["backbone"]]
    stats = info["corpus_stats"]
    megabytes = os.path.getsize(os.path.join(out, "model.pdparams")) / 1e6
    return f"""# {name}: {title}

Pretrained by paddlepalm for issue 26 (docs/results.md, "Issue 26"), on CPU, at the same budget as its
siblings; fine-tuning scores on the Chinese suite (`bench/zh_suite.py`) are in docs/results.md.

- **Objective:** {objective}
- **Architecture:** `palm.backbone.{cls}`: hidden {cfg['hidden_size']}, embedding {cfg['embedding_size']}
  (factorized), {cfg['num_hidden_layers']} layers, {cfg['num_attention_heads']} heads, intermediate
  {cfg['intermediate_size']}, {cfg['hidden_act']}; {cfg['vocab_size']} characters; {params:,} parameters
  ({no_pooler:,} without the pooler, which pretraining does not train).
- **Corpus:** the issue-26 pretraining corpus (`python -m paddlepalm.prepare.pretrain_corpus --data_root
  $PALM_DATA_ROOT --out CORPUS`): {stats['documents']:,} training documents, {stats['tokens']:,} tokens, the
  evaluation suite's dev and test texts removed; {info['examples_per_epoch']:,} sequences an epoch.
- **Budget:** {info['cpu_seconds'] / 60:.1f} CPU-minutes of one thread (Intel Xeon, avx512 + amx),
  {info['steps']:,} updates of 32 sequences ({info['steps'] * 32 / info['examples_per_epoch']:.2f} epochs); loss
  {info['first_losses'][0]} at the first log (mean of 20 updates), {info['final_loss']} at the last.
- **Command** (resumable: the same command continues from the newest checkpoint):
  `MKL_NUM_THREADS=1 {info['command']}`
- **What is shipped:** the backbone in float32 ({megabytes:.1f} MB), its `config.json` and the corpus's
  `vocab.txt`; nothing was given up to stay under 20 MB but the pretraining head, which fine-tuning
  does not use.

Load it by its registry name (the files come from this checkout, or `PALM_DOWNLOAD_MIRROR`; docs/downloader.md):

```python
backbone = palm.backbone.{cls}.from_pretrained("{name}")   # config, weights; backbone.vocab_path is vocab.txt
```

or `backbone: {{pretrained: {name}}}` in a `palm train` config (`examples/configs/finetune-zh-small.yaml`).
"""


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="the run's export (--output of examples/pretrain/*/run.py)")
    p.add_argument("name", help="the folder under pretrain_models/ and the registry name")
    p.add_argument("--title", required=True)
    p.add_argument("--objective", required=True, help="one sentence on the pretraining objective")
    a = p.parse_args(argv)
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrain_models", a.name)
    os.makedirs(out, exist_ok=True)
    for filename in FILES:
        source = os.path.join(a.source, filename)
        write_with(os.path.join(out, filename), lambda tmp, source=source: shutil.copyfile(source, tmp))
    write_text(os.path.join(out, "README.md"), model_card(a.name, a.title, a.objective, out))
    print(out)


if __name__ == "__main__":
    main()
