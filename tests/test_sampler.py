import numpy as np
import pytest

from paddlepalm.sampling.draws import draw_task_order, task_budgets


def test_frequencies_follow_mix_ratios():
    ratios = [1.0, 0.5, 2.5]
    schedule = draw_task_order(ratios, [10 ** 6] * 3, [False] * 3, seed=7)[:10000]
    freq = np.bincount(schedule, minlength=3) / 10000
    expected = np.array(ratios) / sum(ratios)
    # 10k draws: the standard error is below 0.005; 4 sigma.
    assert np.all(np.abs(freq - expected) < 0.02), freq


def test_same_seed_same_schedule_other_seed_differs():
    a = draw_task_order([1, 1], [500, 500], [False, False], seed=1)
    b = draw_task_order([1, 1], [500, 500], [False, False], seed=1)
    c = draw_task_order([1, 1], [500, 500], [False, False], seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_budgets_follow_reference_task():
    # Reference task 0 has 100 steps per epoch; 3 epochs.
    assert task_budgets(3, [1.0, 0.5, 2.0], 0, 100) == [300, 150, 600]
    # A reference ratio other than 1 still gives the reference task num_epochs epochs.
    assert task_budgets(2, [2.0, 1.0], 0, 50) == [100, 50]
    schedule = draw_task_order([1.0, 0.5, 2.0], [300, 150, 600], [False] * 3, seed=0)
    assert np.bincount(schedule).tolist() == [300, 150, 600]


def test_auxiliary_tasks_do_not_hold_up_stopping():
    # The aux task has a budget far beyond the others: training still ends when the main tasks are done.
    schedule = draw_task_order([1.0, 1.0], [200, 10 ** 6], [False, True], seed=0)
    counts = np.bincount(schedule, minlength=2)
    assert counts[0] == 200 and schedule[-1] == 0
    assert 100 < counts[1] < 300  # aux drawn by its ratio while the main task runs
    # A main task that finishes early stops being drawn; the run goes on for the other one.
    schedule = draw_task_order([1.0, 1.0], [10, 300], [False, False], seed=0)
    assert np.bincount(schedule).tolist() == [10, 300]


def test_all_auxiliary_is_refused():
    with pytest.raises(ValueError):
        draw_task_order([1.0], [10], [True])
