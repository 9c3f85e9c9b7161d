"""Own data in one option: with ``--task.path`` the sizes are what the files hold (validation
held out from the training rows), the generated out-of-distribution split is left out with one
line; and the expected training time, told after the first steps."""

from __future__ import annotations

from pathlib import Path

import pytest

import reasonbench as rb
from reasonbench.config import resolve as config
from reasonbench.execution.clock import about, expected_time_line, per_step

from .conftest import QUIET, call_cli


def _export(task: str, folder: Path, train: int, test: int, **settings) -> Path:
    """A reference-layout folder (train.csv, test.csv) of ``train`` and ``test`` rows."""
    source = rb.create_task(task, preset="smoke", num_train=train, num_val=1, num_test=test, **settings)
    folder.mkdir()
    assert source.export_csv("train", folder / "train.csv") == train
    assert source.export_csv("test", folder / "test.csv") == test
    return folder


@pytest.fixture(scope="module")
def sudoku_dir(tmp_path_factory) -> Path:
    return _export("sudoku", tmp_path_factory.mktemp("own") / "sudoku", 120, 45, num_blanks=6)


@pytest.fixture(scope="module")
def maze_dir(tmp_path_factory) -> Path:
    return _export("maze", tmp_path_factory.mktemp("own") / "maze", 60, 20)


@pytest.mark.parametrize("preset", ["mini", "paper"])
def test_sudoku_folder_sizes_shrink_to_the_files(sudoku_dir, preset, capsys) -> None:
    """The mini preset asks for 3,000 + 200 generated puzzles and 1,000 OOD ones, the paper
    preset for 1,000 + 100 from the Hub: the folder holds 120 training rows, so validation
    takes a tenth of them, training the rest, the test the whole file, and one line says the
    OOD split is left out. (No augmentations and a small batch: the folder is small.)"""
    _, cfg = config.resolve_task(["--task", "sudoku", "--preset", preset, "--task.path", str(sudoku_dir),
                                  "--task.augmentations", "0", "--task.batch_size", "32"], "reasonbench data build")
    task_cfg = cfg["task"]
    assert task_cfg["fit_to_files"] is True and task_cfg.get("num_ood", 0) == 0
    err = capsys.readouterr().err
    if preset == "mini":
        assert err.splitlines() == [f"reasonbench: --task.path {sudoku_dir}: no out-of-distribution split "
                                    "(the preset's 1,000 are generated examples, left out with data of your own)"]
    else:
        assert err == ""
    task = rb.create_task("sudoku", **{k: v for k, v in task_cfg.items() if k != "name"})
    assert task.sizes() == {"train": 108, "val": 12, "test": 45}
    assert task.sizes_line() == "108 training, 12 validation (held out from the training rows), 45 test"


def test_a_large_file_keeps_the_presets_sizes(tmp_path) -> None:
    """Files larger than the preset asks for: the preset's protocol holds (e.g. a local copy of
    the paper data), nothing grows."""
    folder = _export("sudoku", tmp_path / "big", 400, 90, num_blanks=6)
    task = rb.create_task("sudoku", preset="smoke", path=str(folder), fit_to_files=True, num_train=100, num_val=20,
                          num_test=50)
    assert task.sizes() == {"train": 100, "val": 20, "test": 50}


def test_data_build_reads_the_folder_as_given(sudoku_dir, data_cache) -> None:
    for preset in ("mini", "paper"):
        result = call_cli("data", "build", "--task", "sudoku", "--preset", preset, "--task.path", str(sudoku_dir),
                          "--task.augmentations", "0", "--task.batch_size", "32")
        assert result.returncode == 0, result.stderr
        assert "val 12, test 45, train 108" in result.stdout


def test_sizes_the_user_sets_stay_set(sudoku_dir, data_cache) -> None:
    _, cfg = config.resolve_task(["--task", "sudoku", "--preset", "mini", "--task.path", str(sudoku_dir),
                                  "--task.num_val", "20", "--task.num_test", "10"], "reasonbench data build")
    assert (cfg["task"]["fit_to_files"], cfg["task"]["num_val"], cfg["task"]["num_test"]) == (False, 20, 10)
    # the smoke preset (the suite's default) holds out 32
    too_many = call_cli("data", "build", "--task", "sudoku", "--task.path", str(sudoku_dir), "--task.num_train", "500")
    assert too_many.returncode == 2
    assert "task.num_train + task.num_val = 532 exceeds the 120 training puzzles available" in too_many.stderr
    ood = call_cli("data", "build", "--task", "sudoku", "--task.path", str(sudoku_dir), "--task.num_ood", "5",
                   "--task.ood_blanks", "12")
    assert ood.returncode == 2 and "needs generated puzzles" in ood.stderr


def test_the_preset_path_is_not_own_data(sudoku_dir) -> None:
    """Without --task.path the preset's sizes hold unfitted, and null sizes need a path."""
    _, cfg = config.resolve_task(["--task", "sudoku", "--preset", "paper"], "reasonbench data build")
    assert (cfg["task"]["num_train"], cfg["task"]["num_val"], cfg["task"]["fit_to_files"]) == (1000, 100, False)
    result = call_cli("data", "build", "--task", "sudoku", "--task.num_train", "null")
    assert result.returncode == 2 and "task.num_train and task.num_val null (sizes from the files) need task.path" \
        in result.stderr


def test_maze_and_arc_folders(maze_dir, tmp_path) -> None:
    _, cfg = config.resolve_task(["--task", "maze", "--preset", "mini", "--task.path", str(maze_dir),
                                  "--task.size", "8", "--task.batch_size", "32"], "reasonbench data build")
    assert (cfg["task"]["fit_to_files"], cfg["task"]["num_ood"]) == (True, 0)
    task = rb.create_task("maze", **{k: v for k, v in cfg["task"].items() if k != "name"})
    assert task.sizes() == {"train": 54, "val": 6, "test": 20}
    # ARC: the smoke preset keeps 6 tasks of each set; a folder of one's own is read whole
    _, arc = config.resolve_task(["--task", "arc", "--preset", "smoke", "--task.path", str(tmp_path)],
                                 "reasonbench data build")
    assert arc["task"]["max_tasks"] is None
    _, kept = config.resolve_task(["--task", "arc", "--preset", "smoke", "--task.path", str(tmp_path),
                                   "--task.max_tasks", "2"], "reasonbench data build")
    assert kept["task"]["max_tasks"] == 2


@pytest.mark.parametrize("seconds, text", [
    (0.2, "about 1 s"), (40.4, "about 40 s"), (89, "about 89 s"), (90, "about 2 min"), (1020, "about 17 min"),
    (5399, "about 90 min"), (5400, "about 1.5 h"), (12_600, "about 3.5 h"), (48 * 3600, "about 2.0 days")])
def test_durations_read_as_said(seconds, text) -> None:
    assert about(seconds) == text


def test_expected_time_line() -> None:
    assert expected_time_line(2000, 0.51) == "expected training time: about 17 min (2,000 steps at 0.51 s/step)"
    assert expected_time_line(2000, 0.51, resumed_at=500) == \
        "expected training time: about 13 min (1,500 steps left of 2,000 at 0.51 s/step)"
    assert [per_step(s) for s in (0.514, 0.0031, 1.0, 9.94, 12.3)] == ["0.51", "0.0031", "1", "9.9", "12"]


def test_a_tiny_run_on_own_data_tells_its_time_and_its_data(sudoku_dir, tmp_path, data_cache) -> None:
    result = call_cli("run", "--model", "transformer", "--task", "sudoku", "--task.path", str(sudoku_dir),
                      "--trainer.max_steps", "12", "--model.hidden_size", "32", "--model.num_layers", "1",
                      *QUIET, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    told = [line for line in lines if line.startswith("expected training time: about ")]
    assert len(told) == 1 and told[0].endswith(" s/step)") and "(12 steps at " in told[0]
    assert lines.index(told[0]) < next(i for i, line in enumerate(lines) if line.startswith("model / task"))
    data = next(line for line in lines if line.startswith("data "))
    # the smoke preset's 256 + 32 shrink to the folder's 120 rows: its 32 held out, 88 left to train
    assert data.split(None, 1)[1] == "88 training, 32 validation (held out from the training rows), 45 test"
