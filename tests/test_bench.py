"""`reasonbench bench`: one row per model x task with positive throughputs, the parameter count
of `reasonbench info`, counted FLOPs, no MFU on the CPU; bad options fail in one line. No
timing assertions: timings are figures, not pass/fail."""

import json
import re

import pytest

from reasonbench.tools import bench

from .conftest import call_cli

TINY = ["--preset", "smoke", "--steps", "2", "--warmup", "1", "--eval-batches", "1", "--flops-examples", "1",
        "--device", "cpu"]


def info_params(model: str, task: str) -> int:
    result = call_cli("info", "--model", model, "--task", task, "--preset", "smoke")
    assert result.returncode == 0, result.stderr
    return int(re.search(r"parameters\s+([\d,]+)", result.stdout).group(1).replace(",", ""))


def check_row(row: dict, model: str, task: str) -> None:
    assert (row["model"], row["task"], row["preset"], row["status"]) == (model, task, "smoke", "ok"), row
    assert row["params"] == info_params(model, task)
    train, evaluation = row["train"], row["eval"]
    assert train["timed_batches"] == 2 and train["optimizer_steps"] == 2
    assert train["examples_per_s"] > 0 and train["steps_per_s"] > 0 and evaluation["examples_per_s"] > 0
    # examples = batch size x timed batches
    assert train["examples_per_s"] == pytest.approx(train["steps_per_s"] * row["batch_size"])
    assert train["flops_per_step"] > 0 and evaluation["flops_per_example"] > 0
    assert train["mfu"] is None and evaluation["mfu"] is None and row["peak_flops"] is None
    assert row["memory"]["peak_bytes"] > 0
    assert row["dtype"] == "fp32" and row["compiled"] is None


def test_bench_rows_in_process(tmp_path):
    out = tmp_path / "bench.json"
    result = call_cli("bench", "--models", "transformer,trm", "--tasks", "sudoku", *TINY, "--no-isolate",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["format"] == "reasonbench-bench" and data["device"] == "cpu"
    assert data["versions"]["torch"] and data["versions"]["lightning"] and "git_commit" in data
    assert data["command"].startswith("reasonbench bench --models transformer,trm")
    assert data["settings"]["preset"] == "smoke" and data["settings"]["isolated"] is False
    assert [(r["model"], r["task"]) for r in data["rows"]] == [("transformer", "sudoku"), ("trm", "sudoku")]
    for row in data["rows"]:
        check_row(row, row["model"], row["task"])
        assert row["memory"]["kind"] == "process_peak_rss_so_far"
    # the recursive model trains one supervision segment per step, with one FLOP-counted phase
    assert list(data["rows"][1]["train"]["flop_phases"]) == ["None"]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "task", "params"] and "MFU" in lines[0]
    assert lines[1].split()[:2] == ["transformer", "sudoku"] and lines[2].split()[:2] == ["trm", "sudoku"]


def test_bench_isolated_row_measures_its_own_memory(tmp_path):
    out = tmp_path / "bench.json"
    result = call_cli("bench", "--models", "transformer", "--tasks", "maze", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())["rows"]
    check_row(row, "transformer", "maze")
    memory = row["memory"]
    assert memory["kind"] == "row_peak_rss_above_start"  # Linux: the peak RSS is reset at the row's start
    assert memory["peak_bytes"] == memory["peak_rss_bytes"] - memory["start_rss_bytes"]


@pytest.mark.parametrize("args, fragment", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--models", "gpt5"], "unknown model 'gpt5'"),
    (["--tasks", "chess"], "unknown task 'chess'"),
    (["--device", "tpu"], "--device"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--steps", "many"], '"steps"'),
    (["--models", "transformer", "--preset", "huge"], "nothing to run with preset 'huge'"),
])
def test_bad_options_fail_in_one_line(args, fragment, tmp_path):
    out = tmp_path / "bench.json"
    result = call_cli("bench", *args, "--out", str(out))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reasonbench: error: ") and fragment in lines[0], lines
    assert not out.exists()


def test_default_matrix_skips_models_without_the_preset():
    pairs, skipped = bench.plan(None, None, "paper")
    assert ("trm", "sudoku") in pairs and ("hrm", "maze") in pairs
    assert {(s["model"], s["task"]) for s in skipped} >= {("transformer", "sudoku"), ("transformer", "maze")}
    assert all(task in ("sudoku", "maze") for _, task in pairs)


def test_peak_flops_table():
    assert bench.peak_flops("NVIDIA H100 80GB HBM3", bf16=True) == 989.4e12
    assert bench.peak_flops("NVIDIA H100 PCIe", bf16=True) == 756.0e12
    assert bench.peak_flops("NVIDIA H200", bf16=False) == 66.9e12
    assert bench.peak_flops("NVIDIA A100-SXM4-80GB", bf16=True) == 312.0e12
    assert bench.peak_flops("NVIDIA GeForce RTX 4090", bf16=True) is None


def test_help_lists_the_options():
    result = call_cli("bench", "--help")
    assert result.returncode == 0 and "--quick" in result.stdout and "--compile" in result.stdout


def test_table_shows_a_failed_row_in_one_line():
    ok = {"model": "trm", "task": "maze", "status": "ok", "params": 1234,
          "train": {"examples_per_s": 10.0, "steps_per_s": 0.5, "flops_per_step": 2e9, "mfu": 0.25},
          "eval": {"examples_per_s": 20.0}, "memory": {"peak_bytes": 3 * 2**20}}
    failed = {"model": "hrm", "task": "maze", "status": "error", "error": "RuntimeError: boom"}
    lines = bench.table([ok, failed]).splitlines()
    assert lines[1].split() == ["trm", "maze", "1,234", "10.0", "0.50", "20.0", "3.0", "2e+09", "25.0%"]
    assert lines[2].split() == ["hrm", "maze", "error:", "RuntimeError:", "boom"]


def test_fast_path_and_task_options_reach_the_row(tmp_path):
    """``--fast-path`` runs the fused blocks on the CPU too, ``--task.NAME VALUE`` reaches the
    row's task (here a smaller test split: one evaluation batch of 40), both recorded."""
    out = tmp_path / "bench.json"
    result = call_cli("bench", "--models", "trm", "--tasks", "sudoku", *TINY, "--no-isolate", "--fast-path",
                      "--task.num_test", "40", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["status"] == "ok" and row["fast_path"] is True and row["eval"]["examples"] == 40
    assert data["settings"]["fast_path"] is True and data["settings"]["task_options"] == ["--task.num_test", "40"]
    assert "fast path" in result.stdout.splitlines()[-1]


def test_stray_arguments_are_refused():
    result = call_cli("bench", "--models", "trm", "--task.num_test")
    assert result.returncode == 2 and "--task.num_test: expected one argument" in result.stderr


@pytest.mark.slow
def test_compile_takes_the_repeated_block(tmp_path):
    out = tmp_path / "bench.json"
    result = call_cli("bench", "--models", "trm,hrm", "--tasks", "sudoku", *TINY, "--no-isolate", "--compile",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["compiled"] for r in rows] == ["blocks: net", "blocks: high, low"]
    assert all(r["status"] == "ok" and r["train"]["compile_seconds"] is not None for r in rows)
