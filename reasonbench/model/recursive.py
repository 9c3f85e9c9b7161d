"""The base of recursive reasoners trained by deep supervision with adaptive halting (HRM,
TRM and their successors).

What they share lives here: the input encoding (scaled token embedding, per-puzzle embedding
prepended as extra positions, RoPE or learned positions), the fixed random initial states, the
answer head and the halting head, and the training loop of the reference code:

* A batch of ``B`` slots persists across optimizer steps. Each step runs one *supervision
  segment* on every slot, carrying the detached state to the next step; slots whose example
  halted are refilled with the next batch's examples (the rest of that batch goes unused, as in
  the reference).
* Halting (ACT): a slot halts after ``halt_max_steps`` segments or when the halting head says so
  (``q_halt > q_continue`` with Q-learning, or ``q_halt > 0``); with probability
  ``halt_exploration_prob`` a slot is forced to run at least a random 2..max segments.
* Loss per segment: stablemax cross-entropy (per example, mean over its supervised cells) plus
  0.5 x binary cross-entropy of the halting logit against "the whole answer is right", plus,
  with Q-learning, of the continue logit against sigmoid(max of the next segment's Q values).
* Evaluation runs every example for all ``halt_max_steps`` segments (so batches stay aligned)
  and reports the segment at which the halting head first said "halt".

A subclass builds its reasoning network and implements ``reason`` (one segment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reasonbench.model import fastpath
from reasonbench.util.distributed import gather_rows, rank_and_world
from reasonbench.record.metrics import ReasoningMetrics
from reasonbench.model.module import ReasoningModule, ReasoningOutput
from reasonbench.nn.layers import Linear, RotaryEmbedding, TokenEmbedding, trunc_normal_
from reasonbench.nn.losses import IGNORE_INDEX, stablemax_cross_entropy
from reasonbench.nn.puzzle import PuzzleEmbedding
from reasonbench.model.optim import OptimConfig
from reasonbench.tasks.base import TaskMetadata
from reasonbench.model.testtime import (ORACLE_STAT, TestTimeCompute, any_exact, convergence_score, logit_movement,
                                        trajectory_noise)
from reasonbench.model.testtime import select as select_trajectory

State = tuple[torch.Tensor, ...]


@dataclass
class Carry:
    """What persists between training steps: the reasoning state of each slot, how many
    segments it has run, whether it halted, and the example it holds."""

    state: State
    steps: torch.Tensor  # int32 [B]
    halted: torch.Tensor  # bool [B]
    data: dict[str, torch.Tensor]


@dataclass
class Segments:
    """What an evaluation pass over all segments yields."""

    logits: torch.Tensor  # [B, L, V] of the last segment
    q_halt: torch.Tensor  # [B]
    q_continue: torch.Tensor  # [B]
    halt_step: torch.Tensor  # [B], 1-based
    step_predictions: torch.Tensor  # [S, B, L]: each segment's answer
    step_residuals: torch.Tensor  # [S, B]: ||z_s - z_{s-1}|| / ||z_{s-1}|| of the answer state
    final_change: torch.Tensor | None = None  # [B]: ||z_T - z_{T-1}|| of the answer state, the last segment
    convergence: torch.Tensor | None = None  # [B]: EqR's convergence score (``testtime.convergence_score``)
    any_right: torch.Tensor | None = None  # [B] bool: some trajectory exactly right (breadth > 1, with labels)


class HaltingHead(nn.Module):
    """Linear(h -> 2) read at the first position: (halt, continue) logits. Zero weights and
    bias -5 start every example at "do not halt" (sigmoid(-5) = 0.007)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = Linear(hidden_size, 2, bias=True)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.fill_(-5.0)

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.linear(state[:, 0])
        q = q.to(torch.promote_types(q.dtype, torch.float32))  # float32 as the reference (float64 stays)
        return q[..., 0], q[..., 1]


class RecursiveReasoningModule(ReasoningModule):
    """Args (shared by HRM, TRM and their successors):
        hidden_size: width of the state.
        num_heads: attention heads (where the network attends).
        expansion: SwiGLU expansion factor.
        pos_encodings: 'rope', 'learned' or 'none'.
        rope_theta: RoPE base.
        puzzle_emb_dim: width of the per-puzzle embedding; 0 = none.
        puzzle_emb_len: positions it occupies in front of the sequence; 0 = ceil(dim / hidden).
        halt_max_steps: supervision segments (16 in the papers); evaluation runs all of them.
        halt_exploration_prob: chance that a slot must run a random minimum of 2..max segments.
        q_continue_loss: Q-learning halting (halt when q_halt > q_continue, bootstrapped continue
            target: HRM); False: halt when q_halt > 0, no continue loss (TRM).
        loss: 'stablemax' (the reference), 'stablemax3' (its third-order form, CMM) or 'softmax'
            cross-entropy.
    """

    decay_all_parameters = True  # the reference's Adam-atan2 decays every weight

    def __init__(self, metadata: TaskMetadata, optim: OptimConfig | None = None, *, hidden_size: int,
                 num_heads: int, expansion: float, pos_encodings: str, rope_theta: float,
                 puzzle_emb_dim: int, puzzle_emb_len: int, halt_max_steps: int,
                 halt_exploration_prob: float, q_continue_loss: bool, loss: str) -> None:
        super().__init__(metadata, optim)
        if hidden_size < 1 or num_heads < 1 or hidden_size % num_heads:
            raise ValueError(f"model.hidden_size {hidden_size} must be a positive multiple of model.num_heads {num_heads}")
        if pos_encodings not in ("rope", "learned", "none"):
            raise ValueError(f"model.pos_encodings must be 'rope', 'learned' or 'none', got {pos_encodings!r}")
        if halt_max_steps < 1:
            raise ValueError(f"model.halt_max_steps must be >= 1, got {halt_max_steps}")
        if not 0 <= halt_exploration_prob <= 1:
            raise ValueError(f"model.halt_exploration_prob must be in [0, 1], got {halt_exploration_prob}")
        if loss not in ("stablemax", "stablemax3", "softmax"):
            raise ValueError(f"model.loss must be 'stablemax', 'stablemax3' or 'softmax', got {loss!r}")
        if puzzle_emb_dim < 0 or puzzle_emb_len < 0:
            raise ValueError("model.puzzle_emb_dim and model.puzzle_emb_len must be >= 0")
        self.hidden_size = hidden_size
        self.halt_max_steps = halt_max_steps
        self.halt_exploration_prob = halt_exploration_prob
        self.q_continue_loss = q_continue_loss
        self.loss_name = loss

        self.puzzle_emb_len = (puzzle_emb_len or -(-puzzle_emb_dim // hidden_size)) if puzzle_emb_dim else 0
        if puzzle_emb_dim > self.puzzle_emb_len * hidden_size:
            raise ValueError(f"model.puzzle_emb_dim {puzzle_emb_dim} does not fit in {self.puzzle_emb_len} positions")
        self.state_len = metadata.seq_len + self.puzzle_emb_len
        self.build_io(metadata, hidden_size, num_heads, pos_encodings, rope_theta, puzzle_emb_dim)
        self._carry: Carry | None = None
        self.depth_results: dict[str, dict[int, dict]] = {}  # split -> depth -> its test results (several depths)

    def build_io(self, metadata: TaskMetadata, hidden_size: int, num_heads: int, pos_encodings: str,
                 rope_theta: float, puzzle_emb_dim: int) -> None:
        """The shared input encoding, answer and halting heads and fixed initial states; a model
        that encodes its state otherwise (SE-RRM's symbol channels) builds its own instead."""
        self.embed = TokenEmbedding(metadata.vocab_size, hidden_size)
        self.puzzle_embedding = PuzzleEmbedding(metadata.num_puzzle_ids, puzzle_emb_dim) if puzzle_emb_dim else None
        self.rotary = (RotaryEmbedding(hidden_size // num_heads, self.state_len, rope_theta)
                       if pos_encodings == "rope" else None)
        if pos_encodings == "learned":
            self.position = nn.Parameter(trunc_normal_(torch.empty(self.state_len, hidden_size), std=1 / math.sqrt(hidden_size)))
        self.head = Linear(hidden_size, metadata.vocab_size)
        self.halt = HaltingHead(hidden_size)
        # fixed random starting states (buffers: saved, not trained)
        self.register_buffer("high_init", trunc_normal_(torch.empty(hidden_size), std=1.0))
        self.register_buffer("low_init", trunc_normal_(torch.empty(hidden_size), std=1.0))

    # --- what a subclass implements ---------------------------------------------------------
    def reason(self, state: State, inputs: torch.Tensor) -> State:
        """One supervision segment: the new state (high level first; the answer is read from
        it). ``inputs`` is the encoded input [B, state_len, h]. Only what should learn from
        this segment may carry gradient."""
        raise NotImplementedError

    # --- shared I/O ---------------------------------------------------------------------------
    def initial_state(self, batch: dict[str, torch.Tensor]) -> State:
        """The state a new example starts from: the fixed random vectors at every position
        (HRM, TRM); a subclass may start from the input instead."""
        shape = (batch["inputs"].shape[0], self.state_len, self.hidden_size)
        return self.high_init.expand(shape), self.low_init.expand(shape)

    def rotary_tables(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """RoPE's (cos, sin) for the state's positions, or None without RoPE."""
        return self.rotary() if self.rotary is not None else None

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token embeddings with the puzzle embedding in front, scaled by sqrt(h)."""
        # the table is looked up unscaled: as in the reference, the sqrt(h) scale applies to the
        # puzzle rows and the learned positions too, in this order (bit-identical outputs)
        x = F.embedding(batch["inputs"], self.embed.weight)
        if self.puzzle_embedding is not None:
            puzzle = self.puzzle_embedding(batch["puzzle_ids"]).to(x.dtype)
            puzzle = F.pad(puzzle, (0, self.puzzle_emb_len * self.hidden_size - puzzle.shape[-1]))
            x = torch.cat([puzzle.view(-1, self.puzzle_emb_len, self.hidden_size), x], dim=1)
        if hasattr(self, "position"):
            x = 0.707106781 * (x + self.position.to(x.dtype))  # keeps the variance of a sum of two
        return self.embed.scale * x

    # The fast path (``fused``, set by ``reasonbench.model.fastpath``) keeps the reasoning state in the
    # autocast dtype, as the reference computes in its bfloat16 ``forward_dtype``: every
    # elementwise kernel moves half the bytes and no linear casts its input first. A class
    # declares ``low_precision_state`` for its own recursion; a subclass that replaces ``reason``
    # or ``recursion`` (an ODE, a fixed-point solver) keeps float32 until it declares it too.
    fused = False
    low_precision_state = False

    def state_dtype(self, device_type: str) -> torch.dtype | None:
        """The dtype the fast path runs the state in under autocast, or None (as it comes)."""
        if not (self.fused and torch.is_autocast_enabled(device_type)):
            return None
        owner = next(c for c in type(self).__mro__ if "low_precision_state" in vars(c))
        own_recursion = all(getattr(type(self), name, None) is getattr(owner, name, None) for name in ("reason", "recursion"))
        return torch.get_autocast_dtype(device_type) if owner.low_precision_state and own_recursion else None

    def segment(self, state: State, batch: dict[str, torch.Tensor]) -> tuple[State, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run one segment: (detached new state, logits [B, L, V], q_halt [B], q_continue [B])."""
        inputs = self.encode(batch)
        dtype = self.state_dtype(inputs.device.type)
        if dtype is not None:
            state, inputs = tuple(s.to(dtype) for s in state), inputs.to(dtype)
        state = self.reason(state, inputs)
        logits = self.head(state[0])[:, self.puzzle_emb_len:]
        q_halt, q_continue = self.halt(state[0])
        return tuple(s.detach() for s in state), logits, q_halt, q_continue

    def supervision_weights(self, steps: torch.Tensor) -> torch.Tensor | None:
        """Per-example weights of this segment's loss given each slot's segment number
        (1-based); None weighs every segment alike (HRM, TRM)."""
        return None

    def halt_signal(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        return q_halt > q_continue if self.q_continue_loss else q_halt > 0

    # --- the fast path (fused blocks on CUDA, REASONBENCH_COMPILE) once the model is on its device
    def on_fit_start(self) -> None:
        super().on_fit_start()
        fastpath.prepare(self)

    def on_test_start(self) -> None:
        fastpath.prepare(self)

    # --- evaluation: every example runs all segments ---------------------------------------
    uniform_eval_cost = True  # evaluation runs every segment on every example
    eval_max_steps: int | None = None  # segments at evaluation; None: halt_max_steps (set by `eval --eval-depth`)
    test_time = TestTimeCompute()  # breadth 1: the plain evaluation (set by `eval --breadth ...`)
    _reading_state: dict[int, dict] | None = None  # per depth read, its test-pass state (several depths)

    def configure_test_time(self, compute: TestTimeCompute) -> None:
        """Evaluate at ``compute``'s depth and breadth from now on (the breadth outside
        training: validation during a fit runs one trajectory). Breadth > 1 also records
        whether any trajectory was right (``oracle_any_trajectory_exact``), apart."""
        self.test_time = compute
        self.eval_max_steps = compute.depth
        if compute.breadth > 1 and ORACLE_STAT not in self.reported_stats:
            self.reported_stats = (*self.reported_stats, ORACLE_STAT)
            self.test_metrics = ReasoningMetrics(self.metadata.extra_metrics, self.reported_stats)

    def run_segments(self, batch: dict[str, torch.Tensor], start: State | None = None) -> Segments:
        """Every segment (``halt_max_steps``, or ``eval_max_steps`` to test deeper than trained)
        on every example, from ``start`` (default: ``initial_state``); the halting step is where
        the halting head first said halt (else the last). Also each segment's answer and how far
        the answer state moved (||f(z) - z|| / ||z||), for the depth curves."""
        steps = self.eval_max_steps or self.halt_max_steps
        return self.run_segments_at(batch, (steps,), start)[steps]

    def run_segments_at(self, batch: dict[str, torch.Tensor], depths: tuple[int, ...],
                        start: State | None = None) -> dict[int, Segments]:
        """``run_segments`` to the last of ``depths`` (ascending), read after each of them as a
        run of that many segments ends: the same numbers, the shallower segments run once."""
        batch_size = batch["inputs"].shape[0]
        state = self.initial_state(batch) if start is None else start
        halt_step = torch.zeros(batch_size, dtype=torch.long, device=batch["inputs"].device)
        # the logits' movement only where the selection reads it: no extra work in a plain evaluation
        scores_convergence = self.test_time.breadth > 1 and self.test_time.select == "convergence"
        answers, residuals, movements, read, last_logits = [], [], [], {}, None
        for step in range(1, depths[-1] + 1):
            before = state[0]
            state, logits, q_halt, q_continue = self.segment(state, batch)
            answers.append(logits.argmax(-1))
            if scores_convergence and last_logits is not None:
                movements.append(logit_movement(logits, last_logits))
            last_logits = logits
            wide = torch.promote_types(before.dtype, torch.float32)  # a bfloat16 state measured in float32
            now, before = state[0].to(wide).flatten(1), before.to(wide).flatten(1)
            change = (now - before).norm(dim=1)
            residuals.append(change / before.norm(dim=1).clamp_min(1e-12))
            first = (halt_step == 0) & self.halt_signal(q_halt, q_continue)
            halt_step = torch.where(first, step, halt_step)
            if step in depths:
                read[step] = Segments(logits, q_halt, q_continue, torch.where(halt_step == 0, step, halt_step),
                                      torch.stack(answers), torch.stack(residuals), change,
                                      convergence_score(movements, batch_size, logits.device)
                                      if scores_convergence else None)
        return read

    def trajectory_start(self, start: State, noise: list[torch.Tensor]) -> State:
        """Where the trajectories of rows whose ``initial_state`` is ``start`` begin at breadth
        > 1: ``start`` plus ``noise`` (one tensor per state tensor, zero in trajectory 0's rows).
        A model whose start is random already may override this to draw its own."""
        return tuple(s + n.to(s.dtype) for s, n in zip(start, noise))

    def run_trajectories(self, batch: dict[str, torch.Tensor]) -> Segments:
        """``run_segments`` at the configured breadth: one plain run at breadth 1; else
        ``breadth`` trajectories per example (``reasonbench.model.testtime``), the one the selection
        rule picks returned with its logits, halting logits and halting step; the depth curves
        stay trajectory 0's (the model's own start). Rows run in chunks of at most the batch's
        size: examples in groups of ``batch // breadth`` with all their trajectories, or (breadth
        above the batch size) one example's trajectories ``batch`` at a time."""
        steps = self.eval_max_steps or self.halt_max_steps
        return self.run_trajectories_at(batch, (steps,))[steps]

    def run_trajectories_at(self, batch: dict[str, torch.Tensor], depths: tuple[int, ...]) -> dict[int, Segments]:
        """``run_trajectories`` to the last of ``depths``, read after each of them: at each, the
        selection rule applied to the trajectories' state there (their answers, last change and
        halting logit at that depth), as a run of that many segments would pick."""
        compute = self.test_time
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if compute.breadth == 1 or fitting:  # validation while training runs one trajectory
            return self._run_to(batch, depths)
        n, k = batch["inputs"].shape[0], compute.breadth
        group = max(1, n // k)  # examples run together with all their trajectories
        per_chunk = max(1, n // group)  # trajectories per chunk: chunk rows <= max(n, 1)
        parts: dict[int, list[Segments]] = {depth: [] for depth in depths}
        for g0 in range(0, n, group):
            part = {key: value[g0:g0 + group] for key, value in batch.items()}
            m = part["inputs"].shape[0]
            runs: list[dict[int, Segments]] = []
            for t0 in range(0, k, per_chunk):
                t1 = min(k, t0 + per_chunk)
                rows = {key: value.repeat(t1 - t0, *([1] * (value.ndim - 1))) for key, value in part.items()}
                base = self.initial_state(rows)
                every = self._start_noise([s.shape[1:] for s in base], rows["inputs"].device)
                noise = [trajectories[t0:t1].repeat_interleave(m, 0) for trajectories in every]
                runs.append(self._run_to(rows, depths, self.trajectory_start(base, noise)))
            for depth in depths:
                parts[depth].append(self._select([run[depth] for run in runs], k, m, part.get("labels")))
        return {depth: self._join(picked) for depth, picked in parts.items()}

    def _run_to(self, batch: dict[str, torch.Tensor], depths: tuple[int, ...],
                start: State | None = None) -> dict[int, Segments]:
        """``run_segments`` (which a subclass may replace) where one depth is read, else
        ``run_segments_at``."""
        if len(depths) == 1:
            return {depths[0]: self.run_segments(batch) if start is None else self.run_segments(batch, start)}
        return self.run_segments_at(batch, depths, start)

    @staticmethod
    def _join(parts: list[Segments]) -> Segments:
        """The picked trajectories of consecutive groups of examples as one batch."""
        if len(parts) == 1:
            return parts[0]
        names = ("logits", "q_halt", "q_continue", "halt_step", "step_predictions", "step_residuals",
                 "final_change", "convergence", "any_right")
        return Segments(**{name: torch.cat([getattr(p, name) for p in parts], dim=1 if name.startswith("step_") else 0)
                           if getattr(parts[0], name) is not None else None for name in names})

    def _start_noise(self, shapes: list[torch.Size], device: torch.device) -> list[torch.Tensor]:
        """Per state tensor (``shapes``: without the batch dimension), every trajectory's
        starting noise [breadth, ...] on ``device`` (trajectory 0: zeros), drawn once per
        configuration and kept for the next batches."""
        compute = self.test_time
        key = (compute, tuple(shapes), device)
        cached = getattr(self, "_noise_cache", None)
        if cached is None or cached[0] != key:
            draws = [[torch.zeros(shape) for shape in shapes]]
            draws += [trajectory_noise(compute.seed, t, shapes, compute.noise) for t in range(1, compute.breadth)]
            noise = [torch.stack([d[i] for d in draws]).to(device) for i in range(len(shapes))]
            cached = self._noise_cache = (key, noise)
        return cached[1]

    def _select(self, runs: list[Segments], k: int, m: int, labels: torch.Tensor | None) -> Segments:
        """One group's ``k`` trajectories of ``m`` examples (rows trajectory-major) -> the picked ones."""
        def per_trajectory(name: str) -> torch.Tensor:
            return torch.cat([getattr(r, name) for r in runs]).view(k, m, *getattr(runs[0], name).shape[1:])

        logits = per_trajectory("logits")
        predictions = logits.argmax(-1)
        final_change, q_halt = per_trajectory("final_change"), per_trajectory("q_halt")
        convergence = per_trajectory("convergence") if runs[0].convergence is not None else None
        pick = select_trajectory(self.test_time.select, predictions, final_change, q_halt, convergence)
        index = torch.arange(m, device=pick.device)
        first = runs[0]  # trajectory 0 leads the first chunk: its depth curve is the model's own
        return Segments(logits[pick, index], q_halt[pick, index], per_trajectory("q_continue")[pick, index],
                        per_trajectory("halt_step")[pick, index], first.step_predictions[:, :m],
                        first.step_residuals[:, :m], final_change[pick, index],
                        convergence[pick, index] if convergence is not None else None,
                        any_exact(predictions, labels) if labels is not None else None)

    def forward(self, batch: dict[str, torch.Tensor]) -> ReasoningOutput:
        return self.output(self.run_trajectories(batch))

    @staticmethod
    def output(run: Segments) -> ReasoningOutput:
        """What an evaluation reads from a run of segments."""
        stats = {ORACLE_STAT: run.any_right.double().mean().item()} if run.any_right is not None else None
        return ReasoningOutput(logits=run.logits, steps=run.halt_step, confidence=torch.sigmoid(run.q_halt),
                               halt_logits=run.q_halt, step_predictions=run.step_predictions,
                               step_residuals=run.step_residuals, stats=stats)

    # --- several depths in one test pass (`eval --eval-depth 1,2,4`) -----------------------
    def reads_depths_in_one_pass(self) -> bool:
        """Whether a test pass can read several depths on its way: the evaluation is this class's
        own (a subclass that builds its output otherwise, or runs its trajectories otherwise,
        would be read at the last depth alone)."""
        cls = type(self)
        return all(getattr(cls, name) is getattr(RecursiveReasoningModule, name)
                   for name in ("forward", "output", "run_trajectories", "run_trajectories_at", "run_segments",
                                "run_segments_at", "_select"))

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        readings = self.test_time.readings
        self.depth_results.pop(self.test_split, None)
        self._reading_state = {depth: self.fresh_test_state() for depth in readings} if len(readings) > 1 else None

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self._reading_state is None:
            return super().test_step(batch, batch_idx)
        runs = self.run_trajectories_at(batch, self.test_time.readings)
        for depth, run in runs.items():  # each depth scored apart, as its own evaluation would be
            with self.swapped_test_state(self._reading_state[depth]):
                self.score_test_batch(batch, self.output(run))

    def on_test_epoch_end(self) -> None:
        if self._reading_state is None:
            return super().on_test_epoch_end()
        for depth, state in self._reading_state.items():
            with self.swapped_test_state(state):
                super().on_test_epoch_end()
        # the pass's own figures are the deepest reading's, as an evaluation at that depth
        self.test_results, self.test_examples, self.test_predictions = (
            self._reading_state[self.test_time.depth][name] for name in ("test_results", "test_examples",
                                                                           "test_predictions"))
        self.depth_results[self.test_split] = {depth: {name: state[name] for name in (
            "test_results", "test_examples", "test_predictions")} for depth, state in self._reading_state.items()}
        self._reading_state = None

    # --- training: one segment per optimizer step, slots carried across steps --------------
    def _refill(self, batch: dict[str, torch.Tensor]) -> tuple[State, torch.Tensor, dict[str, torch.Tensor]]:
        batch_size = batch["inputs"].shape[0]
        carry = self._carry
        if carry is None or carry.halted.shape[0] != batch_size or carry.halted.device != batch["inputs"].device:
            init = self.initial_state(batch)
            return init, torch.zeros(batch_size, dtype=torch.int32, device=batch["inputs"].device), dict(batch)
        halted = carry.halted
        fresh = self.initial_state(batch)
        state = tuple(torch.where(halted.view((-1,) + (1,) * (s.ndim - 1)), f, s) for f, s in zip(fresh, carry.state))
        steps = torch.where(halted, 0, carry.steps)
        data = {k: torch.where(halted.view((-1,) + (1,) * (v.ndim - 1)), v, carry.data[k])
                for k, v in batch.items() if k in carry.data}
        return state, steps, data

    def training_state(self) -> dict[str, object]:
        # the slots persisting between steps, over all processes in rank order (= global batch order)
        if self._carry is None:
            return {}
        carry = self._carry
        return {"carry": {"state": [gather_rows(s.detach()) for s in carry.state], "steps": gather_rows(carry.steps),
                          "halted": gather_rows(carry.halted), "data": {k: gather_rows(v) for k, v in carry.data.items()}}}

    def load_training_state(self, state: dict[str, object]) -> None:
        saved = state.get("carry")
        if not saved:
            return
        rank, world = rank_and_world()
        n = saved["halted"].shape[0] // world

        def mine(t: torch.Tensor) -> torch.Tensor:
            return t[rank * n:(rank + 1) * n].to(self.device)

        self._carry = Carry(tuple(mine(s) for s in saved["state"]), mine(saved["steps"]), mine(saved["halted"]),
                            {k: mine(v) for k, v in saved["data"].items()})

    def training_halted(self, steps: torch.Tensor, last: torch.Tensor, q_halt: torch.Tensor,
                        q_continue: torch.Tensor) -> torch.Tensor:
        """Which training slots halt after this segment (``steps``: segments run, ``last``: at
        the limit): the halting head's signal, delayed for explored slots to a random minimum."""
        halted = last
        if self.halt_max_steps > 1:
            halted = halted | self.halt_signal(q_halt, q_continue)
            n = q_halt.shape[0]
            explore = self.batch_rand(n, q_halt.device) < self.halt_exploration_prob
            min_steps = explore * self.batch_randint(2, self.halt_max_steps + 1, n, steps.device)
            halted = halted & (steps >= min_steps)
        return halted

    # weights of the loss terms of a segment (the reference's: 1, 0.5, 0.5)
    loss_weights: dict[str, float] = {"lm_loss": 1.0, "halt_loss": 0.5, "continue_loss": 0.5}

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms, logs = self.training_terms(batch)
        return sum(self.loss_weights[name] * value for name, value in terms.items()), logs

    def training_terms(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One training segment: the unweighted loss terms (answer, halting, continue) and the
        values to log."""
        batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        state, steps, data = self._refill(batch)
        state, logits, q_halt, q_continue = self.segment(state, data)
        labels = data["labels"]

        with torch.no_grad():
            steps = steps + 1
            last = steps >= self.halt_max_steps
            halted = self.training_halted(steps, last, q_halt, q_continue)
            mask = labels != IGNORE_INDEX
            counts = mask.sum(-1)
            right = (logits.argmax(-1) == labels) & mask
            exact = right.sum(-1) == counts
            target_continue = None
            if self.q_continue_loss and self.halt_max_steps > 1:
                # bootstrapped target from the next segment (no replay buffer: the batch's many
                # slots stand in for parallel environments, as in the reference)
                _, _, next_halt, next_continue = self.segment(state, data)
                target_continue = torch.sigmoid(torch.where(last, next_halt, torch.maximum(next_halt, next_continue)))
        self._carry = Carry(state, steps, halted, data)

        batch_size = labels.shape[0]
        if self.loss_name.startswith("stablemax"):
            per_token = stablemax_cross_entropy(logits, labels, order=3 if self.loss_name == "stablemax3" else 1)
        else:
            per_token = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
        weights = self.supervision_weights(steps)
        per_example = (per_token / counts.clamp_min(1).unsqueeze(-1)).sum(-1)
        halt_per_example = F.binary_cross_entropy_with_logits(q_halt, exact.to(q_halt.dtype), reduction="none")
        if weights is not None:
            per_example, halt_per_example = per_example * weights, halt_per_example * weights
        terms = {"lm_loss": per_example.sum() / batch_size, "halt_loss": halt_per_example.sum() / batch_size}
        if target_continue is not None:
            terms["continue_loss"] = F.binary_cross_entropy_with_logits(q_continue, target_continue,
                                                                        reduction="sum") / batch_size
        logs = {name: value.detach() for name, value in terms.items()}
        # metrics over the examples that finished this step, as the reference reports them (0
        # where none did, as its logger divides by at least 1); masked sums, not masked
        # selections, so that the step never waits for the device to count them
        done = halted & (counts > 0)
        finished = done.sum().clamp_min(1)
        logs["exact_accuracy"] = (exact & done).sum() / finished
        logs["steps"] = torch.where(done, steps, 0).sum() / finished
        logs["halting_accuracy"] = (((q_halt >= 0) == exact) & done).sum() / finished
        return terms, logs

    # --- import of the reference implementation's checkpoints: their architecture ----------
    @classmethod
    def reference_arguments(cls, arch: dict) -> dict:
        """This model's arguments from the reference's ``arch`` config (``all_config.yaml``)."""
        args = {"hidden_size": arch["hidden_size"], "num_heads": arch["num_heads"], "expansion": float(arch["expansion"]),
                "pos_encodings": arch.get("pos_encodings", "rope"), "rope_theta": float(arch.get("rope_theta", 10000.0)),
                "puzzle_emb_dim": int(arch.get("puzzle_emb_ndim", 0)),
                "halt_max_steps": arch["halt_max_steps"], "halt_exploration_prob": arch["halt_exploration_prob"]}
        loss_type = (arch.get("loss") or {}).get("loss_type", "stablemax_cross_entropy")
        args["loss"] = "softmax" if loss_type.startswith("softmax") else "stablemax"
        return args
