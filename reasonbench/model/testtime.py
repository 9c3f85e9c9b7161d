"""Test-time compute of the recursive models: depth (reasoning segments, ``--max-steps``) x
breadth (``--breadth B`` trajectories per example, one answer chosen by a selection rule).

Trajectory 0 starts where the model always starts (so breadth 1 is the plain evaluation);
trajectory ``k >= 1`` starts from the model's initial state plus seeded Gaussian noise of
standard deviation ``noise`` (``--breadth-noise``): one ``[positions, hidden]`` draw per state
tensor, from a generator seeded by ``(seed, k)``, the same for every example (as the models' own
fixed starting vectors are), so a trajectory does not depend on the batch size, the batch order,
the device count or the chunking. A model that draws random numbers itself while it reasons
(EqR: random starting states and noise at every update, from torch's global generator, as its
reference code does) stays seeded and reproducible, but what it draws for an example depends on
how much was drawn before it: on the examples, trajectories and depth run ahead of it.

Selection rules, one answer per example, none reads the labels:

* ``vote``: the answer most trajectories give (the whole answer, every cell); a tie goes to the
  tied answer first given by the lowest-numbered trajectory (trajectory 0 is the model's own).
* ``residual``: the trajectory whose answer state moved least in its last segment,
  ``||z_T - z_{T-1}||``; ties: lowest number.
* ``convergence``: EqR's convergence top-1 (locuslab/EqR ``evaluators/eval_fn.py``): the
  trajectory whose answer moved least over its last ``CONVERGENCE_WINDOW`` segments, the mean
  over those segments and over positions of ``||logits_t - logits_{t-1}||`` (in float32); at
  depth 1 nothing has moved yet and trajectory 0 is taken; ties: lowest number.
* ``halt``: the trajectory with the highest halting logit after its last segment; ties: lowest
  number.

Whether *any* trajectory was exactly right reads the labels: an upper bound recorded apart
(``oracle_any_trajectory_exact``), never an accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reasonbench.nn.losses import IGNORE_INDEX

SELECTION_RULES = ("vote", "residual", "convergence", "halt")
CONVERGENCE_WINDOW = 3  # segments; EqR's evaluation default (config/eval/depth_breadth.yaml)
MAX_BREADTH = 4096
ORACLE_STAT = "oracle_any_trajectory_exact"


@dataclass(frozen=True)
class TestTimeCompute:
    """How a recursive model is evaluated: ``depth`` segments (None: its trained
    ``halt_max_steps``) x ``breadth`` trajectories chosen by ``select``."""

    __test__ = False  # not a pytest class, whatever its name

    depth: int | None = None
    breadth: int = 1
    select: str = "vote"
    seed: int = 0
    noise: float = 1.0
    # depths whose answers one test pass also reads on its way to ``depth`` (ascending, ``depth``
    # last): each scored as an evaluation at that depth alone would score it; empty: ``depth`` alone
    readings: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check(self.breadth, self.select, self.noise)
        if self.readings and (list(self.readings) != sorted(set(self.readings)) or self.readings[0] < 1
                              or self.readings[-1] != self.depth):
            raise ValueError(f"test-time readings {self.readings} must ascend from >= 1 to the depth {self.depth}")


def check(breadth: int, select: str, noise: float) -> None:
    """ValueError naming the option for a breadth, rule or noise scale that cannot run."""
    if isinstance(breadth, bool) or not isinstance(breadth, int) or not 1 <= breadth <= MAX_BREADTH:
        raise ValueError(f"option --breadth: must be an integer in 1..{MAX_BREADTH}, got {breadth!r}")
    if select not in SELECTION_RULES:
        raise ValueError(f"option --select: must be one of {', '.join(SELECTION_RULES)}, got {select!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (0 <= noise < float("inf")):
        raise ValueError(f"option --breadth-noise: must be a finite number >= 0, got {noise!r}")


def parse_depths(text: str, most: int) -> tuple[int, ...]:
    """``--eval-depth``'s value, one depth or a comma list (``1,2,4``), as ascending distinct
    depths; ValueError naming the option for anything else or a depth outside 1..``most``."""
    try:
        depths = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise ValueError(f"option --eval-depth: must be a depth or a comma list of depths (1,2,4), got {text!r}") from None
    wrong = [d for d in depths if not 1 <= d <= most]
    if wrong:
        raise ValueError(f"option --eval-depth: every depth must be in 1..{most}, got {wrong[0]}")
    return tuple(sorted(set(depths)))


def trajectory_noise(seed: int, trajectory: int, shapes: list[torch.Size], scale: float) -> list[torch.Tensor]:
    """The noise added to trajectory ``trajectory``'s starting state: one float32 tensor per
    state shape (without the batch dimension), drawn on the CPU (the same numbers on every
    device) from a generator seeded by ``(seed, trajectory)``."""
    state = np.random.SeedSequence([seed, trajectory]).generate_state(1, np.uint64)[0]
    generator = torch.Generator().manual_seed(int(state))
    return [scale * torch.randn(tuple(shape), generator=generator, dtype=torch.float32) for shape in shapes]


def select_vote(predictions: torch.Tensor) -> torch.Tensor:
    """Winning trajectory per example of ``predictions`` [K, B, L]: one giving the answer most
    trajectories give; a tie goes to the answer whose first trajectory has the lowest number,
    and the index returned is that first trajectory."""
    k = predictions.shape[0]
    votes = torch.zeros(predictions.shape[:2], dtype=torch.long, device=predictions.device)
    first = torch.zeros_like(votes)
    for j in range(k):  # one trajectory at a time: memory K x B x L, not K x K x B x L
        same = (predictions == predictions[j]).all(-1)  # [K, B]: does trajectory i give j's answer?
        votes[j] = same.sum(0)
        first[j] = same.to(torch.int8).argmax(0)  # the lowest-numbered trajectory with j's answer
    score = votes * k - first  # more votes first, then the earlier answer
    return score.argmax(0)


def select_lowest(values: torch.Tensor) -> torch.Tensor:
    """Per example the trajectory with the lowest value in ``values`` [K, B] (the first on ties;
    NaN counts as the highest)."""
    return torch.nan_to_num(values.float(), nan=float("inf")).argmin(0)


def select_highest(values: torch.Tensor) -> torch.Tensor:
    """Per example the trajectory with the highest value in ``values`` [K, B] (the first on ties;
    NaN counts as the lowest)."""
    return torch.nan_to_num(values.float(), nan=float("-inf")).argmax(0)


def logit_movement(logits: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Per example, how far a segment moved the answer: the mean over positions of
    ``||logits - before||`` over the vocabulary ([B, L, V] each -> [B]), in float32 at least."""
    wide = torch.promote_types(logits.dtype, torch.float32)
    return (logits.to(wide) - before.to(wide)).norm(dim=-1).mean(-1)


def convergence_score(movements: list[torch.Tensor], batch_size: int, device: torch.device) -> torch.Tensor:
    """EqR's convergence score [B]: the mean of the last ``CONVERGENCE_WINDOW`` segments'
    ``logit_movement`` (lower: more converged); NaN before any movement (depth 1)."""
    if not movements:
        return torch.full((batch_size,), float("nan"), device=device)
    return torch.stack(movements[-CONVERGENCE_WINDOW:]).mean(0)


def select(rule: str, predictions: torch.Tensor, final_change: torch.Tensor, q_halt: torch.Tensor,
           convergence: torch.Tensor | None = None) -> torch.Tensor:
    """The trajectory ``rule`` picks per example, from each trajectory's answer [K, B, L], the
    last segment's change of its answer state [K, B], its last halting logit [K, B] and its
    convergence score [K, B] (``convergence_score``)."""
    if rule == "vote":
        return select_vote(predictions)
    if rule == "residual":
        return select_lowest(final_change)
    if rule == "convergence":
        if convergence is None:
            raise ValueError("option --select convergence: this model's evaluation gives no convergence score")
        return select_lowest(convergence)
    if rule == "halt":
        return select_highest(q_halt)
    raise ValueError(f"unknown selection rule {rule!r} (one of {', '.join(SELECTION_RULES)})")


def any_exact(answers: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per example: is any of the answers [K, B, L] exactly right on every supervised cell of
    ``labels`` [B, L]? Reads the labels: an upper bound for analysis, not an accuracy."""
    mask = labels != IGNORE_INDEX
    return ((answers == labels) | ~mask).all(-1).any(0)
