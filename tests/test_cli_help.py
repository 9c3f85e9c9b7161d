"""A command line that explains itself: option descriptions from the docstrings, help ordered
from what a run is made of to how it is run, the closest valid name of a mistyped option or
command, and ``info --flops`` without data or network."""

from __future__ import annotations

import argparse
import socket

import pytest

from reasonbench.config import resolve as config, registry
from reasonbench.config.commandline import closest, edit_distance

from .conftest import call_cli


@pytest.mark.parametrize("model", registry.list_models())
def test_every_model_and_task_option_has_its_description(model) -> None:
    for task in registry.list_tasks():
        parser = config.build_parser(registry.get_model(model), registry.get_task(task))
        prefixes = ("--model.", "--task.", "--optim.", "--measure.")
        options = [a for a in parser._actions if a.option_strings and a.option_strings[0].startswith(prefixes)]
        assert len(options) > 10
        bare = [a.option_strings[0] for a in options if not (a.help or "").strip()]
        assert bare == [], f"{model} on {task}: no description for {bare}"


def test_run_help_lists_model_task_optimizer_then_the_command_then_trainer() -> None:
    result = call_cli("run", "--model", "trm", "--task", "sudoku", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    headings = [line for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert [h.split(" (")[0].split(":")[0] for h in headings] == [
        "model trm", "task sudoku", "--optim.*", "run options", "--measure.*", "Lightning Trainer"]
    assert headings[0].startswith("model trm (--model.*): TRM: ")
    assert "Args:" not in text
    assert text.splitlines()[0] == "usage: reasonbench run --model MODEL --task TASK [--preset PRESET] [OPTION ...]"
    mixer = text[text.index("--model.mixer"):text.index("--model.pos_encodings")]
    assert "'attention' or 'mlp'" in mixer and "default: mlp" in mixer  # the docstring's words, the preset's value
    assert text.index("--model.hidden_size") < text.index("--task.path") < text.index("--optim.lr") \
        < text.index("  --preset PRESET") < text.index("--trainer.max_steps")


def test_eval_depth_is_named_apart_from_the_training_length() -> None:
    text = call_cli("eval", "--model", "trm", "--task", "maze", "--help").stdout
    entry = text[text.index("--eval-depth"):text.index("--checkpoint CHECKPOINT")]
    assert "--max-steps" in entry and "former name" in entry and "--trainer.max_steps" in entry
    for flag in ("--eval-depth", "--max-steps", "--eval_max_steps"):  # the old names still read
        cfg, _ = config.resolve(["--model", "trm", "--task", "maze", "--preset", "smoke", flag, "5"], "reasonbench run")
        assert cfg.eval_max_steps == 5
    bad = call_cli("run", "--model", "trm", "--task", "maze", "--preset", "smoke", "--max-steps", "0")
    assert bad.returncode == 2 and "option --eval-depth: must be in 1..128, got 0" in bad.stderr


@pytest.mark.parametrize("a, b, distance", [
    ("rnu", "run", 1), ("--modle", "--model", 1), ("--trainer.max_step", "--trainer.max_steps", 1),
    ("kitten", "sitting", 3), ("", "ab", 2), ("ab", "", 2), ("same", "same", 0), ("abcd", "badc", 2)])
def test_edit_distance(a, b, distance) -> None:
    assert edit_distance(a, b) == distance == edit_distance(b, a)


def test_closest_takes_near_misses_only() -> None:
    assert closest("rnu", ["list", "run", "eval"]) == "run"
    assert closest("--checkpoint", ["--checkpoint_every"]) is None  # another option, not a typo of it
    assert closest("frobnicate", ["run", "list"]) is None
    assert closest("--trainer.max_setps", ["--trainer.max_steps", "--trainer.min_steps"]) == "--trainer.max_steps"


SUDOKU = ["--model", "trm", "--task", "sudoku", "--preset", "smoke"]


@pytest.mark.parametrize("argv, message", [
    (["rnu"], "argument command: invalid choice: 'rnu', did you mean 'run'? (choose from 'list', 'run',"),
    (["run", *SUDOKU, "--trainer.max_step", "5"],
     "unrecognized option --trainer.max_step: did you mean --trainer.max_steps?"),
    (["run", *SUDOKU, "--trainer.max_step=5"], "unrecognized option --trainer.max_step: did you mean --trainer.max_steps?"),
    (["run", "--modle", "trm", "--task", "sudoku"], "unrecognized option --modle: did you mean --model?"),
    (["eval", "--model", "trm", "--tsak", "sudoku"],
     "unrecognized option --tsak: did you mean --task?"),
    (["run", *SUDOKU, "--model.mixr", "mlp"], "unrecognized option --model.mixr: did you mean --model.mixer?"),
    (["data", "biuld", "--task", "sudoku"], "data: argument action: invalid choice: 'biuld', did you mean 'build'?"),
    (["data", "build", "--task", "sudoku", "--task.pth", "d"], "unrecognized option --task.pth: did you mean --task.path?"),
    (["leaderboard", "--result", "r"], "leaderboard: unrecognized option --result: did you mean --results?"),
    (["run", *SUDOKU, "--frobnicate", "1"], "unrecognized arguments: --frobnicate 1"),  # nothing close: as before
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_typo_names_itself_and_the_closest_valid_name(argv, message, tmp_path) -> None:
    result = call_cli(*argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reasonbench: error: " + message), result.stderr


def test_info_flops_builds_no_data_and_touches_no_network(monkeypatch, tmp_path) -> None:
    """The paper preset reads its Sudoku from the Hub: with the network refused, the Hub
    offline and its cache a folder that does not exist, the count still comes; on the smoke
    preset it equals the count on the real test examples (a TRM's cost does not depend on
    the ids)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-cache"))
    small = ["--model.hidden_size", "32", "--model.num_heads", "2", "--model.puzzle_emb_dim", "0",
             "--model.halt_max_steps", "2", "--model.recursions", "2", "--model.latent_steps", "2"]
    counted = {}
    for preset in ("paper", "smoke"):
        result = call_cli("info", "--model", "trm", "--task", "sudoku", "--preset", preset, "--flops", *small)
        assert result.returncode == 0, result.stderr
        line = next(l for l in result.stdout.splitlines() if l.startswith("forward"))
        assert "1 synthetic example of length 81" in line
        counted[preset] = int(line.split()[1].replace(",", ""))
    assert attempts == [] and not (tmp_path / "no-cache").exists()

    from reasonbench.record import measure
    from reasonbench.execution.build import build_model, make_task

    monkeypatch.undo()
    cfg, _ = config.resolve(["--model", "trm", "--task", "sudoku", "--preset", "smoke", *small], "reasonbench info")
    task = make_task(cfg)
    task.setup("fit")
    real = measure.forward_flops_per_example(build_model(cfg, task), task.splits["test"], 1)
    assert counted["smoke"] == real.mean > 0 and counted["paper"] > 0


def test_the_parser_error_that_explain_rewrites_reads_as_it_expects() -> None:
    # explain() reads jsonargparse's words: what it rewrites must still be what it emits
    parser = config.build_parser(None, None)
    with pytest.raises(argparse.ArgumentError, match="nrecognized arguments: --x"):
        parser.parse_args(["--model.name", "a", "--task.name", "b", "--x"])
