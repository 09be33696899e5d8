"""Regenerate ``paddlepalm/downloader/registry.json`` (a data file; this script is how it was made).

Sources of the URLs:
* PALM's downloader (17 archives; ``shared/palm_api.md``) and the Chinese ELMo
  checkpoint of Paddle's ELMo (PaddlePaddle/models);
* paddlenlp 2.8.1's ``pretrained_resource_files_map`` (weights), tokenizer
  ``pretrained_resource_files_map`` (vocabularies) and ``pretrained_init_configuration``
  (configs, written as ``model_config.json`` after download).

Sizes are *estimates*: 4 bytes per parameter of the architecture (float32; a
tar.gz of float weights compresses little). No checksum is published upstream
for these files, so ``sha256`` is null; fill it in from a trusted copy
(``sha256sum``) to have downloads verified. Run:
``/work/venv/bin/python tools/build_registry.py``.
"""
import json
import os

from paddlenlp.transformers.albert.configuration import (ALBERT_PRETRAINED_INIT_CONFIGURATION as ALBERT_CFG,
                                                         ALBERT_PRETRAINED_RESOURCE_FILES_MAP as ALBERT_URLS)
from paddlenlp.transformers.albert.tokenizer import AlbertTokenizer
from paddlenlp.transformers.bert.configuration import (BERT_PRETRAINED_INIT_CONFIGURATION as BERT_CFG,
                                                       BERT_PRETRAINED_RESOURCE_FILES_MAP as BERT_URLS)
from paddlenlp.transformers.bert.tokenizer import BertTokenizer
from paddlenlp.transformers.electra.configuration import (ELECTRA_PRETRAINED_INIT_CONFIGURATION as ELECTRA_CFG,
                                                          ELECTRA_PRETRAINED_RESOURCE_FILES_MAP as ELECTRA_URLS)
from paddlenlp.transformers.electra.tokenizer import ElectraTokenizer
from paddlenlp.transformers.ernie.configuration import (ERNIE_PRETRAINED_INIT_CONFIGURATION as ERNIE_CFG,
                                                        ERNIE_PRETRAINED_RESOURCE_FILES_MAP as ERNIE_URLS)
from paddlenlp.transformers.ernie.tokenizer import ErnieTokenizer

from paddlepalm.utils.fileio import sha256_of

OUT = os.path.join(os.path.dirname(__file__), "..", "paddlepalm", "downloader", "registry.json")

APACHE = "Apache-2.0 (license of the publishing repository; check the model card before redistribution)"

# name, kind, URL, license, architecture for the size estimate
# (vocab, hidden, layers, intermediate, max positions, type vocab)
PALM = [
    ("RoBERTa-zh-base", "bert", "https://bert-models.bj.bcebos.com/chinese_roberta_wwm_ext_L-12_H-768_A-12.tar.gz",
     "Apache-2.0 (ymcui/Chinese-BERT-wwm), converted to Paddle by PaddlePaddle", (21128, 768, 12, 3072, 512, 2)),
    ("RoBERTa-zh-large", "bert",
     "https://bert-models.bj.bcebos.com/chinese_roberta_wwm_large_ext_L-24_H-1024_A-16.tar.gz",
     "Apache-2.0 (ymcui/Chinese-BERT-wwm), converted to Paddle by PaddlePaddle", (21128, 1024, 24, 4096, 512, 2)),
    ("ERNIE-v2-en-base", "ernie", "https://ernie.bj.bcebos.com/ERNIE_Base_en_stable-2.0.0.tar.gz",
     "Apache-2.0 (PaddlePaddle/ERNIE)", (30522, 768, 12, 3072, 512, 4)),
    ("ERNIE-v2-en-large", "ernie", "https://ernie.bj.bcebos.com/ERNIE_Large_en_stable-2.0.0.tar.gz",
     "Apache-2.0 (PaddlePaddle/ERNIE)", (30522, 1024, 24, 4096, 512, 4)),
    ("XLNet-cased-base", "xlnet", "https://xlnet.bj.bcebos.com/xlnet_cased_L-12_H-768_A-12.tgz",
     "Apache-2.0 (zihangdai/xlnet), converted to Paddle by PaddlePaddle", (32000, 768, 12, 3072, 0, 0)),
    ("XLNet-cased-large", "xlnet", "https://xlnet.bj.bcebos.com/xlnet_cased_L-24_H-1024_A-16.tgz",
     "Apache-2.0 (zihangdai/xlnet), converted to Paddle by PaddlePaddle", (32000, 1024, 24, 4096, 0, 0)),
    ("ERNIE-v1-zh-base", "ernie", "https://baidu-nlp.bj.bcebos.com/ERNIE_stable-1.0.1.tar.gz",
     "Apache-2.0 (PaddlePaddle/ERNIE)", (18000, 768, 12, 3072, 513, 2)),
    ("ERNIE-v1-zh-base-max-len-512", "ernie", "https://ernie.bj.bcebos.com/ERNIE_1.0_max-len-512.tar.gz",
     "Apache-2.0 (PaddlePaddle/ERNIE)", (18000, 768, 12, 3072, 513, 2)),
    ("BERT-en-uncased-large-whole-word-masking", "bert",
     "https://bert-models.bj.bcebos.com/wwm_uncased_L-24_H-1024_A-16.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (30522, 1024, 24, 4096, 512, 2)),
    ("BERT-en-cased-large-whole-word-masking", "bert",
     "https://bert-models.bj.bcebos.com/wwm_cased_L-24_H-1024_A-16.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (28996, 1024, 24, 4096, 512, 2)),
    ("BERT-en-uncased-base", "bert", "https://bert-models.bj.bcebos.com/uncased_L-12_H-768_A-12.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (30522, 768, 12, 3072, 512, 2)),
    ("BERT-en-uncased-large", "bert", "https://bert-models.bj.bcebos.com/uncased_L-24_H-1024_A-16.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (30522, 1024, 24, 4096, 512, 2)),
    ("BERT-en-cased-base", "bert", "https://bert-models.bj.bcebos.com/cased_L-12_H-768_A-12.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (28996, 768, 12, 3072, 512, 2)),
    ("BERT-en-cased-large", "bert", "https://bert-models.bj.bcebos.com/cased_L-24_H-1024_A-16.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (28996, 1024, 24, 4096, 512, 2)),
    ("BERT-multilingual-uncased-base", "bert", "https://bert-models.bj.bcebos.com/multilingual_L-12_H-768_A-12.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (105879, 768, 12, 3072, 512, 2)),
    ("BERT-multilingual-cased-base", "bert", "https://bert-models.bj.bcebos.com/multi_cased_L-12_H-768_A-12.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (119547, 768, 12, 3072, 512, 2)),
    ("BERT-zh-base", "bert", "https://bert-models.bj.bcebos.com/chinese_L-12_H-768_A-12.tar.gz",
     "Apache-2.0 (google-research/bert), converted to Paddle by PaddlePaddle", (21128, 768, 12, 3072, 512, 2)),
]

PADDLENLP = [
    # (registry name, kind, paddlenlp name, weights map, config map, tokenizer class)
    *[(n, "ernie", n, ERNIE_URLS, ERNIE_CFG, ErnieTokenizer) for n in (
        "ernie-1.0-base-zh", "ernie-3.0-base-zh", "ernie-3.0-xbase-zh", "ernie-3.0-medium-zh",
        "ernie-3.0-mini-zh", "ernie-3.0-micro-zh", "ernie-3.0-nano-zh")],
    *[(n, "albert", n, ALBERT_URLS, ALBERT_CFG, AlbertTokenizer) for n in (
        "albert-chinese-tiny", "albert-chinese-small", "albert-chinese-base", "albert-chinese-large",
        "albert-chinese-xlarge", "albert-chinese-xxlarge")],
    *[(n, "electra", n, ELECTRA_URLS, ELECTRA_CFG, ElectraTokenizer) for n in (
        "electra-small", "electra-base", "chinese-electra-small", "chinese-electra-base")],
    *[(n, "bert", n, BERT_URLS, BERT_CFG, BertTokenizer) for n in (
        "bert-base-chinese", "bert-wwm-chinese", "bert-wwm-ext-chinese")],
]

ELMO = {
    "name": "ELMo-zh-baike", "kind": "elmo", "format": "paddle-elmo-checkpoint",
    "files": [{"url": "https://dureader.gz.bcebos.com/elmo/baike_elmo_checkpoint.tar.gz", "sha256": None}],
    "license": "Apache-2.0 (PaddlePaddle/models)",
    "source": "Paddle ELMo (PaddlePaddle/models PaddleNLP/ELMo, LAC_demo): word-level biLM trained on Baidu Baike",
    "architecture": {"vocab_size": 52445, "embedding_size": 512, "cell_size": 4096, "projection_size": 512,
                     "num_layers": 2, "cell_clip": 3.0, "proj_clip": 3.0, "word_level": True},
}


# Models pretrained by this project, shipped in the repository under pretrain_models/<name>/ (their
# registry URLs are repository paths: fetched from the checkout, or from PALM_DOWNLOAD_MIRROR serving a
# clone's root). (name, kind, what it is)
SHIPPED = [
    ("mlm-zh-small", "electra", "a 4-layer Chinese encoder (hidden 256) pretrained with whole-word masked LM, "
                                "120 CPU-minutes"),
    ("electra-zh-small", "electra", "a 4-layer Chinese ELECTRA discriminator (hidden 256), 120 CPU-minutes"),
    ("albert-zh-small", "albert", "a Chinese ALBERT (hidden 256, 4 shared layers, embedding 64) pretrained with "
                                  "sentence order and n-gram masked LM, 120 CPU-minutes"),
]
SHIPPED_FILES = ("config.json", "vocab.txt", "model.pdparams")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped_entry(name: str, kind: str, description: str) -> dict:
    files = []
    for filename in SHIPPED_FILES:
        path = os.path.join(REPOSITORY, "pretrain_models", name, filename)
        files.append({"url": f"pretrain_models/{name}/{filename}", "sha256": sha256_of(path),
                      "size": os.path.getsize(path)})
    return {"name": name, "kind": kind, "format": "paddlepalm-checkpoint", "files": files,
            "license": "Apache-2.0 (paddlepalm; pretrained here on the corpus its README names)",
            "source": f"paddlepalm: {description} (pretrain_models/{name}/README.md)"}


def transformer_params(vocab, hidden, layers, inter, max_pos, types) -> int:
    emb = (vocab + max_pos + types) * hidden + 2 * hidden
    layer = 4 * (hidden * hidden + hidden) + 2 * hidden * inter + inter + hidden + 4 * hidden
    return emb + layers * layer + hidden * hidden + hidden


def config_params(kind: str, cfg: dict) -> int:
    hidden, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    inter = cfg.get("intermediate_size", 4 * hidden)
    vocab, pos, types = cfg["vocab_size"], cfg.get("max_position_embeddings", 512), cfg.get("type_vocab_size", 2)
    if kind == "albert":  # factorized embedding, one shared layer
        emb_size = cfg["embedding_size"]
        return (vocab + pos + types) * emb_size + emb_size * hidden + transformer_params(0, hidden, 1, inter, 0, 0)
    if kind == "electra":
        emb_size = cfg.get("embedding_size", hidden)
        return (vocab + pos + types) * emb_size + emb_size * hidden + transformer_params(0, hidden, layers, inter, 0, 0)
    return transformer_params(vocab, hidden, layers, inter, pos, types + cfg.get("task_type_vocab_size", 0))


def elmo_params(arch: dict) -> int:
    v, e, h = arch["vocab_size"], arch["embedding_size"], arch["cell_size"]
    per_layer = e * 4 * h + arch["projection_size"] * 4 * h + 4 * h + h * arch["projection_size"]
    return 2 * v * e + v + 2 * arch["num_layers"] * per_layer


def vocab_url(tokenizer, name):
    files = tokenizer.pretrained_resource_files_map
    url = files.get("vocab_file", {}).get(name)
    if url is None:
        raise KeyError(f"no vocabulary URL for {name}")
    return url


def main():
    entries = []
    for name, kind, url, license_note, arch in PALM:
        entries.append({
            "name": name, "kind": kind, "format": "paddle-params-dir" if kind != "xlnet" else "paddle-params-dir-xlnet",
            "files": [{"url": url, "sha256": None}],
            "size_bytes_estimate": 4 * transformer_params(*arch),
            "license": license_note, "source": "PALM 2.x downloader",
        })
    for name, kind, nlp_name, urls, cfgs, tokenizer in PADDLENLP:
        cfg = dict(cfgs[nlp_name])
        entries.append({
            "name": name, "kind": kind, "format": "paddlenlp-pdparams",
            "files": [{"url": urls["model_state"][nlp_name], "save_as": "model_state.pdparams", "sha256": None},
                      {"url": vocab_url(tokenizer, nlp_name), "save_as": "vocab.txt", "sha256": None}],
            "config": cfg, "config_file": "model_config.json",
            "size_bytes_estimate": 4 * config_params(kind, cfg),
            "license": APACHE, "source": f"paddlenlp 2.8.1 '{nlp_name}'",
        })
    elmo = dict(ELMO, size_bytes_estimate=4 * elmo_params(ELMO["architecture"]))
    entries.append(elmo)
    entries.extend(shipped_entry(*shipped) for shipped in SHIPPED)
    registry = {
        "version": 1,
        "note": "Generated by tools/build_registry.py. size_bytes_estimate = 4 bytes x parameter count; "
                "sha256 null = no published checksum (the archive is still checked to read).",
        "items": {"pretrain": entries},
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(registry, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(entries)} pretrain entries to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
