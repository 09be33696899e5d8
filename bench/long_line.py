"""CPU seconds the masked-corpus reader takes to load one very long line (issue 11: it was
quadratic in the line's length).

    python bench/long_line.py --chars 50000 200000
    PALM_BENCH_ROOT=/path/to/older/checkout python bench/long_line.py --chars 50000   # the old code
    python bench/long_line.py --smoke     # seconds: one line of 2000 characters
"""
import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.environ.get("PALM_BENCH_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import paddlepalm as palm  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chars", type=int, nargs="+", default=[50000, 200000])
    p.add_argument("--smoke", action="store_true", help="seconds: one line of 2000 characters")
    args = p.parse_args()
    args.chars = [2000] if args.smoke else args.chars
    chars = [chr(0x4E00 + i) for i in range(50)]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as work:
        vocab = os.path.join(work, "vocab.txt")
        with open(vocab, "w", encoding="utf-8") as f:
            f.write("\n".join(SPECIAL + chars) + "\n")
        for n in args.chars:
            path = os.path.join(work, f"line{n}.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(rng.choice(chars) for _ in range(n)) + "\n")
            reader = palm.reader.MaskedCorpusReader(vocab, 128, lang="cn")
            start = time.process_time()
            reader.load_data(path, batch_size=2)
            print(f"{n} characters: {time.process_time() - start:.2f} CPU s "
                  f"({reader.num_examples} pieces; paddlepalm from {os.path.dirname(palm.__file__)})", flush=True)


if __name__ == "__main__":
    main()
