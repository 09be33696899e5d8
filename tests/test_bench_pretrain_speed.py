"""bench/pretrain_speed.py (issue 26): both sides train on the stored batches of our reader, and the
PyTorch models are ours in parameters (masked LM: exactly, without our unused pooler; ELECTRA: less
the generator's own position and type tables, which the torch generator shares). Smoke sizes, in process."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_pretrain_speed", os.path.join(REPO, "bench", "pretrain_speed.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def has_torch():
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


@pytest.fixture(scope="module")
def smoke_args(tmp_path_factory):
    from paddlepalm.head.rtd import generator_shape
    work = str(tmp_path_factory.mktemp("pretrain_speed"))
    args = bench.parse_args(["--smoke"])
    args.train, args.vocab = bench.sample_corpus(args, work)
    args.batches = os.path.join(work, "batches.pkl")
    args.generator_hidden, args.generator_heads = generator_shape(args.hidden, args.heads, args.generator_size)
    stats = bench.store_batches(args, args.vocab, args.train, args.batches)
    assert stats["masked_per_batch"] > 0 and 0 < stats["fill"] <= 1
    return args


def test_corpus_slice_keeps_whole_documents(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.txt").write_text("a1\na2\n\nb1\nb2\nb3\n\nc1\n\n", encoding="utf-8")
    (src / "vocab.txt").write_text("[PAD]\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    train, vocab = bench.corpus_slice(str(src), 4, str(out))
    assert open(train, encoding="utf-8").read() == "a1\na2\n\nb1\nb2\nb3\n\n"
    assert vocab == str(src / "vocab.txt")


@pytest.mark.parametrize("objective", ["electra", "mlm"])
def test_both_sides_train_the_same_sized_model(smoke_args, objective):
    smoke_args.objective, smoke_args.bf16 = objective, False
    ours = bench.ours_worker(smoke_args)  # checks that the trainer saw the stored batches
    assert len(ours["wall"]) == smoke_args.steps and all(r >= 0 for r in ours["reader"])
    if not has_torch():
        pytest.skip("PyTorch is an optional bench dependency")
    theirs = bench.torch_worker(smoke_args)
    assert len(theirs["wall"]) == smoke_args.steps
    expected = ours["params_in_loss"] - (ours["generator_tables"] if objective == "electra" else 0)
    assert theirs["params"] == expected
    assert ours["generator_tables"] == (0 if objective == "mlm" else
                                        (bench.MAX_POSITIONS + bench.TYPE_VOCAB) * smoke_args.embedding_size)
