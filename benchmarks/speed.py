"""Speed figures for `make bench`: training and evaluation throughput of every registered
model x task on its smoke preset, the FLOP counter's overhead, and Sudoku data generation.

Prints a table of figures and ratios; never pass/fail. Run: python -m reasonbench_benchmarks.speed
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import reasonbench as rb
from reasonbench.config import registry
from reasonbench.record.measure import count_flops


def _timed(fn, repeat: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def model_rows(preset: str, repeat: int) -> list[str]:
    rows = []
    for model_name in registry.list_models():
        for task_name in registry.list_tasks():
            try:
                task = rb.create_task(task_name, preset=preset)
                model = rb.create_model(model_name, task=task, preset=preset)
            except rb.UserError as exc:
                rows.append(f"{model_name:12s} {task_name:8s} skipped: {exc}")
                continue
            batch = next(iter(task.train_dataloader()))
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def train_step() -> None:
                optimizer.zero_grad(set_to_none=True)
                loss, _ = model.training_loss(batch)
                loss.backward()
                optimizer.step()

            def eval_step() -> None:
                with torch.inference_mode():
                    model(batch)

            model.train()
            t_train = _timed(train_step, repeat)
            model.eval()
            t_eval = _timed(eval_step, repeat)
            t_counted = _timed(lambda: count_flops(eval_step), repeat)
            size = batch["inputs"].shape[0]
            rows.append(f"{model_name:12s} {task_name:8s} {size / t_train:10.1f} {size / t_eval:10.1f} "
                        f"{t_counted / t_eval:9.2f}x")
    return rows


def sudoku_rows(count: int) -> list[str]:
    from reasonbench.tasks.sudoku.grid import canonical_form, make_puzzle, random_solved_grid, rating

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    puzzles = [make_puzzle(random_solved_grid(rng), rng, 50) for _ in range(count)]
    t_gen = time.perf_counter() - start
    start = time.perf_counter()
    ratings = [rating(p) for p in puzzles]
    t_rate = time.perf_counter() - start
    start = time.perf_counter()
    for p in puzzles:
        canonical_form(p)
    t_canon = time.perf_counter() - start
    return [f"sudoku generation (50 blanks, unique): {count / t_gen:8.1f} puzzles/s",
            f"sudoku rating (backtracks):             {count / t_rate:8.1f} puzzles/s (mean rating {np.mean(ratings):.2f})",
            f"sudoku canonical form:                  {count / t_canon:8.1f} puzzles/s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--puzzles", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, preset {args.preset}")
    print(f"{'model':12s} {'task':8s} {'train ex/s':>10s} {'eval ex/s':>10s} {'flop-count':>10s}")
    for row in model_rows(args.preset, args.repeat):
        print(row)
    print("(flop-count: evaluation time under the FLOP counter / plain evaluation time)")
    for row in sudoku_rows(args.puzzles):
        print(row)


if __name__ == "__main__":
    main()
