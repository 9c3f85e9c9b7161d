"""loopnet: the conformance kit on every task, then what is particular to this model."""

import pytest

from reasonbench import testing
from reasonbench.measure import forward_flops_per_example

MODEL = "loopnet"


@pytest.mark.parametrize("task", testing.task_names())
@pytest.mark.parametrize("check", testing.MODEL_CHECKS, ids=testing.check_id)
def test_conformance(check, task):
    check(testing.subject(MODEL, task))


def test_a_smoke_run_writes_a_complete_record(tmp_path):
    record = testing.check_record(MODEL, "sudoku", tmp_path)
    assert record["cost"]["params_extra"] == 0  # no per-puzzle table on Sudoku


def test_every_loop_costs_one_network_pass():
    # Replace with tests of your idea; assert numbers, not only that it runs.
    flops = []
    for loops in (2, 3, 4):
        subject = testing.subject(MODEL, "sudoku", loops=loops)
        flops.append(forward_flops_per_example(subject.build(), subject.task.splits["test"], 1).mean)
    assert flops[2] - flops[1] == flops[1] - flops[0] > 0
