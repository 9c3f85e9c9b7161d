import pytest
import torch
from torch import nn

from reasonbench.record.measure import count_flops, count_parameters, forward_flops_per_example
from reasonbench.record.metrics import ReasoningMetrics, wilson_interval
from reasonbench.model.module import ReasoningModule, ReasoningOutput
from reasonbench.tasks import Split, TaskMetadata

META = TaskMetadata(name="toy", vocab_size=5, seq_len=4, num_puzzle_ids=3, grid_shape=(2, 2))


class Extra(nn.Module):
    counts_as_extra = True

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(3, 7)


class LoopModel(ReasoningModule):
    """Applies one 8x8 linear ``steps = 1 + input[0]`` times: cost depends on the data."""

    def __init__(self) -> None:
        super().__init__(META)
        self.embed = nn.Embedding(5, 8)
        self.mix = nn.Linear(8, 8, bias=False)
        self.head = nn.Linear(8, 5, bias=True)
        self.extra = Extra()

    def forward(self, batch):
        x = self.embed(batch["inputs"])
        steps = 1 + int(batch["inputs"][0, 0])
        for _ in range(steps):
            x = self.mix(x)
        return ReasoningOutput(self.head(x), torch.full((x.shape[0],), steps))


def test_count_parameters_separates_extras():
    params, extra = count_parameters(LoopModel())
    assert (params, extra) == (5 * 8 + 8 * 8 + 8 * 5 + 5, 3 * 7)


def test_flops_match_hand_count():
    layer = nn.Linear(6, 3, bias=False)
    flops, _ = count_flops(layer, torch.randn(2, 4, 6))
    assert flops == 2 * (2 * 4) * 6 * 3  # one multiply-add = 2 FLOPs


def test_forward_flops_are_counted_as_executed_per_example():
    # inputs[0] = 0, 1, 2, 3 -> 1..4 mixing steps; each step 2*L*8*8, head 2*L*8*5 (+ bias adds, uncounted)
    inputs = torch.tensor([[k, 0, 0, 0] for k in range(4)])
    split = Split(inputs, inputs.clone(), torch.zeros(4, dtype=torch.long))
    flops = forward_flops_per_example(LoopModel(), split, examples=4)
    per_step, head = 2 * 4 * 8 * 8, 2 * 4 * 8 * 5
    expected = [s * per_step + head for s in (1, 2, 3, 4)]
    assert flops.examples == 4
    assert flops.mean == pytest.approx(sum(expected) / 4)
    assert flops.p95 == expected[-1]


@pytest.mark.parametrize("k, n, low, high", [
    (5, 10, 0.2366, 0.7634),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),
])
def test_wilson_interval_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_metrics_on_known_predictions():
    labels = torch.tensor([[1, 2, 3], [1, 2, 3], [-100, -100, -100], [4, -100, 4]])
    preds = torch.tensor([[1, 2, 3], [1, 0, 3], [0, 0, 0], [4, 0, 4]])
    metrics = ReasoningMetrics(extra=("valid_path",))
    metrics.update(preds, labels, steps=torch.tensor([2, 4, 6, 8]),
                   extra={"valid_path": torch.tensor([True, True, True, False])})
    result = metrics.compute()
    assert result["n_test_examples"] == 3  # the unsupervised row is not an example
    assert result["exact_correct"] == 2
    assert result["exact_accuracy"] == pytest.approx(2 / 3)
    assert result["token_accuracy"] == pytest.approx(7 / 8)
    assert result["mean_steps"] == pytest.approx(5.0)
    assert result["valid_path"] == pytest.approx(2 / 3)  # the unsupervised row's True is not counted
