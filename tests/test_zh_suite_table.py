"""bench/zh_suite.py's table (issue 26): mean ± std per task, the per-seed average over the tasks, and
which pretrained cells are beyond the spread of their scratch twin, above or below."""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("zh_suite", os.path.join(REPO, "bench", "zh_suite.py"))
zh_suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(zh_suite)

TASKS, SEEDS = ["a", "b"], [1, 2, 3]


def rows(table, twins=None):
    lines = zh_suite.format_table(table, twins or {"pre": "scratch"}, TASKS, SEEDS)
    assert lines[0] == "| model | a | b | average |"
    return {line.split(" | ")[0][2:]: line.strip("| ").split(" | ")[1:] for line in lines[2:]}


def test_cells_are_marked_above_or_below_the_twin_only_beyond_the_spread():
    table = {"pre": {"a": {1: 80.0, 2: 82.0, 3: 81.0}, "b": {1: 40.0, 2: 46.0, 3: 43.0}},
             "scratch": {"a": {1: 70.0, 2: 71.0, 3: 72.0}, "b": {1: 44.0, 2: 45.0, 3: 46.0}}}
    out = rows(table)
    # a: 81 ± 1 against 71 ± 1, beyond; b: 43 ± 3 against 45 ± 1, within the spread
    assert out["pre"][:2] == ["**81.00 ± 1.00**", "43.00 ± 3.00"]
    # the average pairs the tasks seed by seed: (80+40)/2, (82+46)/2, (81+43)/2 = 60, 64, 62
    assert out["pre"][2] == "**62.00 ± 2.00**"
    assert out["scratch"] == ["71.00 ± 1.00", "45.00 ± 1.00", "58.00 ± 1.00"]  # 57, 58, 59
    table["pre"]["a"] = {1: 60.0, 2: 61.0, 3: 62.0}
    assert rows(table)["pre"][0] == "*61.00 ± 1.00*"


def test_the_seed_order_of_finishing_runs_does_not_pair_the_wrong_seeds():
    table = {"pre": {"a": {3: 81.0, 1: 80.0, 2: 82.0}, "b": {1: 40.0, 2: 46.0, 3: 43.0}}}
    assert rows(table, {})["pre"][2] == "62.00 ± 2.00"


def test_a_suite_in_progress_says_how_many_seeds_a_cell_has_and_gives_no_average():
    table = {"pre": {"a": {1: 80.0}, "b": {1: 40.0, 2: 46.0}}, "scratch": {"a": {}, "b": {1: 40.0, 2: 41.0}}}
    out = rows(table)
    assert out["pre"] == ["80.00 (1/3 seeds)", "43.00 ± 4.24 (2/3 seeds)", "-"]
    assert out["scratch"] == ["-", "40.50 ± 0.71 (2/3 seeds)", "-"]
