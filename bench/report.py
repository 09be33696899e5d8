"""Write a benchmark's section into docs/benchmarks.md, replacing that section only.

    python bench/report.py            # the machine line the benchmarks write
    python bench/report.py --smoke    # also both writers, on a temporary copy of docs/benchmarks.md
"""
import argparse
import os
import platform
import re
import tempfile

import paddle

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")
HEADER = "# Benchmarks\n\nEvery figure below was written by the script named in its section; ratios are measured side by side, alternating, in one run.\n"


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = platform.processor() or platform.machine()
    flags = []
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        have = set(next(line.split(":", 1)[1] for line in info if line.startswith("flags")).split())
        flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have]
    except (OSError, StopIteration):
        pass
    threads = os.environ.get("MKL_NUM_THREADS", "?")
    return (f"{cpu} ({' '.join(flags) or 'no AVX2'}), {cores} cores, MKL_NUM_THREADS={threads}, "
            f"Python {platform.python_version()}, paddle {paddle.__version__}")


def update_section(heading: str, body: str, path: str = DOC) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else HEADER
    section = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def update_marked(heading: str, tag: str, body: str, path: str = DOC) -> None:
    """Replace the generated part of section ``heading``: the text between ``<!-- begin {tag} -->`` and
    ``<!-- end {tag} -->``, keeping the hand-written text around it. A section without the markers
    gets them, with ``body``, from :func:`update_section` (the whole section replaced or added)."""
    begin, end = f"<!-- begin {tag} -->", f"<!-- end {tag} -->"
    marked = f"{begin}\n{body.strip()}\n{end}"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    section = re.search(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", text, re.S | re.M)
    if section and begin in section.group() and end in section.group():
        inner = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        new = inner.sub(lambda _: marked, section.group(), count=1)
        text = text[:section.start()] + new + text[section.end():]
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        update_section(heading, marked, path)


def smoke() -> str:
    """Both writers on a temporary copy of docs/benchmarks.md: a section and a marked part written twice
    each, the second replacing the first, the copy's own text unchanged. Returns the copy's path."""
    original = open(DOC, encoding="utf-8").read() if os.path.exists(DOC) else HEADER
    path = os.path.join(tempfile.mkdtemp(prefix="palm-bench-report."), "benchmarks.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(original)
    for body in ("| first |", "| second |"):
        update_section("Smoke (bench/report.py)", body, path)
        update_marked("Smoke, marked (bench/report.py)", "bench/report.py", body, path)
    text = open(path, encoding="utf-8").read()
    if "| first |" in text or text.count("| second |") != 2 or not text.startswith(original.rstrip()):
        raise AssertionError(f"the writers did not replace only their own sections: {path}")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="also run both writers on a temporary copy of the doc")
    args = p.parse_args()
    print(machine())
    if args.smoke:
        print(f"wrote {smoke()}")


if __name__ == "__main__":
    main()
