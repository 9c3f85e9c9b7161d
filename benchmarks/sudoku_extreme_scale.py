"""Sudoku-Extreme at full size: building the paper recipe from reference-sized CSV files, and
what scoring the whole 422,786-puzzle test split with TRM (paper config) costs.

python -m reasonbench_benchmarks.sudoku_extreme_scale [--train-rows 3831994] [--test-rows 422786]
    [--eval-examples 8]

The reference files (HF sapientinc/sudoku-extreme) cannot be downloaded here, so files of the
same size and layout are written from generated puzzles with their digits relabelled at random. Timed: the
first build of the paper recipe (read + validate both files, sample 1,000 training puzzles, 1,000
augmentations each), the cache write, and a later run's cache load. Then the TRM paper model's
evaluation FLOPs per puzzle (every one of its 16 segments runs at evaluation), measured with the
FLOP counter, and a short timed evaluation on this machine; the whole split's FLOPs over a GPU's
dense bf16 peak give the model-FLOP utilisation that 10 minutes would need (a projection, not a
GPU measurement).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reasonbench.config import resolve as config
from reasonbench.execution.build import build_model, make_task
from reasonbench.execution.trainer import quiet_lightning
from reasonbench.tools.bench import PEAK_FLOPS
from reasonbench.record.measure import count_parameters, forward_flops_per_example
from reasonbench.tasks.reference_csv import HEADER
from reasonbench.tasks.sudoku.task import _blanked_puzzles, _distinct

TARGET_SECONDS = 600


def _lines(questions: np.ndarray, answers: np.ndarray) -> bytes:
    """CSV rows ``source,question,answer,rating`` written with numpy (the benchmark's own data,
    so the file is written in seconds, not minutes)."""
    def text(grids: np.ndarray) -> np.ndarray:
        return np.where(grids == 0, ord("."), grids + ord("0")).astype(np.uint8)

    n = len(questions)
    comma = np.full((n, 1), ord(","), dtype=np.uint8)
    row = np.concatenate([np.frombuffer(b"gen,", np.uint8)[None].repeat(n, 0), text(questions), comma,
                          text(answers), comma, np.full((n, 1), ord("0"), np.uint8),
                          np.full((n, 1), ord("\n"), np.uint8)], axis=1)
    return row.tobytes()


def write_file(path: Path, rows: int, base_q: np.ndarray, base_a: np.ndarray, rng: np.random.Generator) -> None:
    """``rows`` rows: the base puzzles with their digits relabelled at random (a symmetry, drawn
    for many rows at once), so the rows differ like the reference's."""
    with path.open("wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        done = 0
        while done < rows:
            n = min(len(base_q), rows - done)
            maps = np.concatenate([np.zeros((n, 1), np.int64), 1 + rng.random((n, 9)).argsort(axis=1)], axis=1)
            q, a = (np.take_along_axis(maps, g[:n].astype(np.int64), axis=1) for g in (base_q, base_a))
            handle.write(_lines(q, a))
            done += n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=3_831_994, help="rows of train.csv (the reference's)")
    parser.add_argument("--test-rows", type=int, default=422_786, help="rows of test.csv (the reference's)")
    parser.add_argument("--distinct", type=int, default=2000, help="generated puzzles the rows are moved from")
    parser.add_argument("--eval-examples", type=int, default=8, help="puzzles evaluated by the timed TRM run")
    args = parser.parse_args()
    torch.manual_seed(0)
    quiet_lightning()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        base_q, base_a, _ = _distinct(_blanked_puzzles(rng, 50), args.distinct, set(), 50, "blanks")
        (root / "data").mkdir()
        write_file(root / "data" / "train.csv", args.train_rows, base_q, base_a, rng)
        write_file(root / "data" / "test.csv", args.test_rows, base_q, base_a, rng)
        sizes = {f.name: f.stat().st_size for f in (root / "data").iterdir()}
        print(f"files: train.csv {args.train_rows:,} rows ({sizes['train.csv'] / 1e6:,.0f} MB), test.csv "
              f"{args.test_rows:,} rows ({sizes['test.csv'] / 1e6:,.0f} MB), written in "
              f"{time.perf_counter() - start:.1f} s")

        os.environ["REASONBENCH_DATA_CACHE"] = str(root / "cache")
        argv = ["--model", "trm", "--task", "sudoku", "--preset", "paper", "--task.path", str(root / "data"),
                "--task.num_test", "null", "--trainer.precision", "32-true"]
        cfg, _ = config.resolve(argv, prog="sudoku_extreme_scale")
        task = make_task(cfg)
        start = time.perf_counter()
        built = task.build()
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        task._save_cached(built)
        save_s = time.perf_counter() - start
        again = make_task(cfg)
        start = time.perf_counter()
        again.setup()
        load_s = time.perf_counter() - start
        sizes = again.sizes()
        print(f"paper recipe built from the files in {build_s:.1f} s ("
              + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
              + f"); cache written in {save_s:.1f} s, loaded by a later run in {load_s:.1f} s")

        model = build_model(cfg, again)
        model.eval()
        test = again.splits["test"]
        flops = forward_flops_per_example(model, test, examples=1)
        n = min(args.eval_examples, len(test))
        batch = {"inputs": test.inputs[:n], "labels": test.labels[:n], "puzzle_ids": test.puzzle_ids[:n]}
        with torch.inference_mode():
            start = time.perf_counter()
            model(batch)
            eval_s = time.perf_counter() - start
        total = flops.mean * len(test)
        cpu_rate = flops.mean * n / eval_s
        params, table = count_parameters(model)
        print(f"TRM paper model ({cfg.model_args.get('mixer')} mixer, {params:,} parameters + a puzzle "
              f"table of {table:,}): "
              f"{flops.mean / 1e9:,.1f} GFLOP per test puzzle at evaluation ({model.halt_max_steps} segments)")
        print(f"this machine ({torch.get_num_threads()} threads, fp32): {n} puzzles in {eval_s:.1f} s "
              f"({cpu_rate / 1e9:,.1f} GFLOP/s): the whole split would take {total / cpu_rate / 86400:,.1f} days")
        print(f"whole test split: {len(test):,} puzzles, {total / 1e15:,.1f} PFLOP")
        for name, bf16_peak, _ in PEAK_FLOPS:
            if name in ("H100", "H200", "A100"):
                best = total / bf16_peak
                print(f"  {name} (bf16 dense peak {bf16_peak / 1e12:,.0f} TFLOP/s): {best:,.0f} s at 100% MFU; "
                      f"{TARGET_SECONDS // 60} minutes need >= {100 * best / TARGET_SECONDS:.0f}% MFU")


if __name__ == "__main__":
    main()
