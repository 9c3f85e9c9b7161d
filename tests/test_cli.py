"""Bad input: one line on stderr, exit code 2, nothing written."""

from pathlib import Path

import pytest
import yaml

from .conftest import QUIET, call_cli, run_cli

BASE = ["run", "--model", "transformer", "--task", "sudoku"]


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reasonbench: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("args, fragments", [
    (["run", "--model", "gpt5", "--task", "sudoku"], ["unknown model 'gpt5'", "valid models: ", "transformer"]),
    (["run", "--model", "transformer", "--task", "chess"], ["unknown task 'chess'", "sudoku"]),
    (["run", "--task", "sudoku"], ["missing --model", "transformer"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'", "'run'"]),
])
def test_unknown_names(args, fragments, tmp_path):
    result = run_cli(*args, "--out", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("extra, fragments", [
    (["--model.hidden_size", "wide"], ['"model.hidden_size"', "wide"]),
    (["--model.depth", "3"], ["--model.depth"]),
    (["--optim.lr", "-1"], ["optim.lr must be > 0"]),
    (["--task.num_blanks", "70"], ["task.num_blanks must be in 1..64"]),
    (["--preset", "huge"], ["no preset 'huge'", "available: ", "smoke"]),
    (["--task.path", "/no/such/sudoku"], ["task.path /no/such/sudoku", "no such file"]),
    (["--config", "/no/such.yaml"], ["/no/such.yaml"]),
])
def test_bad_options_fail_cleanly(extra, fragments, tmp_path):
    out = tmp_path / "out"
    result = call_cli(*BASE, "--out", str(out), *extra, *QUIET)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_bad_key_in_config_file_names_it(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  hidden_sise: 64\n")
    result = call_cli(*BASE, "--config", str(config), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "hidden_sise")


def test_malformed_csv_row_names_file_and_line(tmp_path):
    good_q = "..............3.85..1.2.......5.7.....4...1...9.......5......73..2.1........4...9"
    good_a = "987654321246173985351928746128537694634892157795461832519286473472319568863745219"
    data = tmp_path / "data"
    data.mkdir()
    rows = ["source,question,answer,rating", f"x,{good_q},{good_a},12", f"x,{good_q[:-1]},{good_a},3"]
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    (data / "test.csv").write_text("\n".join(rows[:2]) + "\n")
    result = call_cli(*BASE, "--task.path", str(data), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, f"{data / 'train.csv'}:3:", "81")
    assert not (tmp_path / "out").exists()


def test_unreadable_checkpoint(tmp_path):
    broken = tmp_path / "model.pt"
    broken.write_bytes(b"this is not a checkpoint")
    result = call_cli("eval", "--model", "transformer", "--task", "sudoku", "--checkpoint", str(broken),
                     "--out", str(tmp_path / "out"), *QUIET)
    assert_one_line_error(result, str(broken), "unreadable")
    assert not (tmp_path / "out" / "transformer" / "sudoku" / "smoke" / "seed0.eval.json").exists()


def test_print_config_round_trips(tmp_path):
    first = call_cli(*BASE, "--model.hidden_size", "48", "--seed", "3", "--print_config")
    assert first.returncode == 0, first.stderr
    config = yaml.safe_load(first.stdout)
    assert config["model"] == {"name": "transformer", "hidden_size": 48, "num_layers": 2, "num_heads": 2,
                               "expansion": 4.0, "rope_theta": 10000.0}
    assert config["seed"] == 3 and config["task"]["num_blanks"] == 6  # from the smoke preset
    saved = tmp_path / "run.yaml"
    saved.write_text(first.stdout)
    second = call_cli("run", "--config", str(saved), "--print_config")
    assert second.returncode == 0, second.stderr
    assert yaml.safe_load(second.stdout) == config


def test_list_prints_one_line_per_entry():
    result = run_cli("list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any(l.split()[:3] == ["model", "transformer", "ok"] for l in lines)
    assert any(l.split()[:3] == ["task", "sudoku", "ok"] for l in lines)


def test_info_reports_parameters_and_flops():
    result = call_cli("info", "--model", "transformer", "--task", "sudoku", "--model.hidden_size", "64",
                     "--model.num_heads", "4", "--flops")
    assert result.returncode == 0, result.stderr
    # embedding 11*64 + 2 blocks * (64*192 + 64*64 + 64*2*256 + 256*64) + head 64*11
    expected = 11 * 64 + 2 * (64 * 192 + 64 * 64 + 64 * 512 + 256 * 64) + 64 * 11
    assert f"parameters  {expected:,}" in result.stdout
    assert "FLOPs per example" in result.stdout


@pytest.mark.parametrize("argv", [
    ["--help"], ["list", "--help"], ["run", "--help"], ["eval", "--help"], ["info", "--help"], ["data", "--help"],
    ["data", "build", "--help"], ["data", "export", "-h"], ["data", "build", "--task", "sudoku", "--help"],
    ["leaderboard", "--help"], ["sweep", "--help"], ["bench", "--help"], ["import-checkpoint", "--help"],
    ["new-plugin", "--help"], ["check-plugin", "--help"], ["data", "show", "--task", "maze", "-h"],
    ["eval", "--model", "trm", "--task", "maze", "--help"], ["info", "--model", "hrm", "--task", "arc", "--help"]],
    ids=" ".join)
def test_help_at_every_level_without_other_options(argv):
    result = call_cli(*argv)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("usage: reasonbench"), result.stdout[:200]
    # --model/--task name the model and task: jsonargparse's group-YAML loaders of those names are not offered
    assert "--model CONFIG" not in result.stdout and "--task CONFIG" not in result.stdout


def test_run_defaults_to_the_mini_preset_and_the_environment_may_name_another(monkeypatch):
    monkeypatch.delenv("REASONBENCH_PRESET", raising=False)
    result = call_cli("run", "--model", "trm", "--task", "maze", "--print_config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["preset"] == "mini" and config["task"]["size"] == 6 and config["trainer"]["max_steps"] == 2000
    monkeypatch.setenv("REASONBENCH_PRESET", "smoke")
    assert yaml.safe_load(call_cli("run", "--model", "trm", "--task", "maze", "--print_config").stdout)["preset"] == "smoke"
    monkeypatch.setenv("REASONBENCH_PRESET", "../smoke")
    assert_one_line_error(call_cli("run", "--model", "trm", "--task", "maze", "--print_config"),
                          "REASONBENCH_PRESET '../smoke': not a valid preset name")
