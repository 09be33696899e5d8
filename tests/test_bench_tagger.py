"""bench/tagger.py (issue 16): its rows come out of a quick run, and its fallback row is a faithful
comparison: the Python-stepped recurrence computes the fused model's loss and gradients from the
same weights; the torch CRF computes paddlepalm's CRF loss; ``--write`` keeps the hand-written text."""
import importlib.util
import os

import numpy as np
import paddle
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(REPO, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tagger = load("tagger")


def has_torch():
    return importlib.util.find_spec("torch") is not None


def test_quick_run_gives_every_row():
    variants = "paddle-ours,paddle-ours-static,paddle-stepped,crf:paddle-ours"
    variants += ",torch,torch-reversed,crf:torch" if has_torch() else ""
    results, missing = tagger.main(["--quick", "--steps", "1", "--warmup", "1", "--repeats", "1",
                                    "--variants", variants])
    assert set(results) | set(missing) == set(variants.split(","))
    assert set(missing) <= {"paddle-ours-static"}  # the one row allowed to say why it is missing
    for name, row in results.items():
        assert row["tok_wall"] > 0 and row["tok_cpu"] > 0 and row["seconds"] > 0, name


def test_stepped_recurrence_matches_the_fused_one():
    args = tagger.parse_args(["--quick"])
    batch = tagger.make_batches(args, 1, seed=3)[0]
    assert len(set(batch["word_counts"])) > 1  # padded rows: the backward direction must start at each row's end
    fused = tagger.build_paddle(args, "fused", seed=0, dropout=0.0)
    stepped = tagger.build_paddle(args, "stepped", seed=1, dropout=0.0)
    before = float(tagger.paddle_loss(stepped, batch))
    tagger.copy_weights(fused, stepped)
    losses = [tagger.paddle_loss(model, batch) for model in (fused, stepped)]
    assert abs(before - float(losses[0])) > 1e-3  # other initial weights: the copy is what makes them agree
    assert abs(float(losses[0]) - float(losses[1])) < 1e-4
    for loss in losses:
        loss.backward()
    grads = [{tagger.fused_name(n): p.grad.numpy() for n, p in m.named_parameters()} for m in (fused, stepped)]
    for name, grad in grads[0].items():
        np.testing.assert_allclose(grads[1][name], grad, atol=1e-4, err_msg=name)


@pytest.mark.skipif(not has_torch(), reason="PyTorch is an optional bench dependency")
def test_torch_crf_matches_paddlepalm_crf():
    import torch
    from paddlepalm.utils.crf import crf_nll

    args = tagger.parse_args(["--quick"])
    batch = tagger.make_batches(args, 1, seed=4)[0]
    transitions = np.random.RandomState(0).uniform(-1, 1, (tagger.NUM_TAGS + 2, tagger.NUM_TAGS)).astype("float32")
    ours = crf_nll(paddle.to_tensor(batch["emissions"]), paddle.to_tensor(batch["label_ids"]),
                   paddle.to_tensor(batch["word_counts"]), paddle.to_tensor(transitions)).numpy()
    theirs = tagger.torch_crf_nll(torch.from_numpy(batch["emissions"]), torch.from_numpy(batch["label_ids"]),
                                  torch.from_numpy(batch["word_counts"]), torch.from_numpy(transitions)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(not has_torch(), reason="PyTorch is an optional bench dependency")
def test_torch_reversed_bilstm_matches_the_packed_one():
    import torch

    args = tagger.parse_args(["--quick"])
    torch.manual_seed(0)
    packed, reversed_ = tagger.torch_bilstm(args, packed=True), tagger.torch_bilstm(args, packed=False)
    with torch.no_grad():
        for name, value in packed.lstm.named_parameters():
            target = reversed_.bw if name.endswith("_reverse") else reversed_.fw
            getattr(target, name.replace("_reverse", "")).copy_(value)
    batch = tagger.make_batches(args, 1, seed=5)[0]
    lengths = torch.from_numpy(batch["seq_lens"])
    assert len(set(batch["seq_lens"])) > 1
    x = torch.randn(args.batch, int(lengths.max()), args.embedding)
    np.testing.assert_allclose(reversed_(x, lengths).detach().numpy(), packed(x, lengths).detach().numpy(), atol=1e-5)


def test_write_replaces_only_the_generated_table(tmp_path):
    report = load("report")
    doc = tmp_path / "benchmarks.md"
    heading = tagger.SECTION
    doc.write_text(f"# Benchmarks\n\n## {heading}\n\nHand-written reading.\n\n"
                   "<!-- begin bench/tagger.py -->\nold table\n<!-- end bench/tagger.py -->\n\nMore prose.\n\n"
                   "## Next section\n\nkept\n", encoding="utf-8")
    for table in ("| new | table |", "| newer | table |"):
        report.update_marked(heading, "bench/tagger.py", table, str(doc))
    text = doc.read_text(encoding="utf-8")
    assert "Hand-written reading." in text and "More prose." in text and "## Next section\n\nkept" in text
    assert "| newer | table |" in text and "old table" not in text and "| new | table |" not in text
    report.update_marked("Absent section", "x", "| t |", str(doc))  # no section yet: added with its markers
    assert doc.read_text(encoding="utf-8").rstrip().endswith("<!-- begin x -->\n| t |\n<!-- end x -->")
