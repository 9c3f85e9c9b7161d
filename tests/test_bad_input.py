"""The bad-input catalogue: every malformed input (CLI options, config files, data files,
records, checkpoints) exits with code 2 and one line on stderr naming the option or the file
(and line), with no traceback and nothing half-written; Ctrl-C (and SIGTERM) leave no record.

Each case of the table builds its input under ``tmp_path`` and returns the command line and
the fragments the error line must contain; the checks are the same for every case."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from .conftest import QUIET, call_cli, run_cli
from .test_recursive import _as_reference_checkpoint

PREFIX = "reasonbench: error: "
RUN = ["run", "--model", "transformer", "--task", "sudoku", "--preset", "smoke"]
EVAL = ["eval", "--model", "transformer", "--task", "sudoku", "--preset", "smoke"]
GOOD_Q = "..............3.85..1.2.......5.7.....4...1...9.......5......73..2.1........4...9"
GOOD_A = "987654321246173985351928746128537694634892157795461832519286473472319568863745219"
HEADER = "source,question,answer,rating"
REF = "_orig_mod.model.inner."  # the reference code's key prefix


class NotWeights:  # a pickled custom class: `torch.load(weights_only=True)` refuses it
    def __init__(self) -> None:
        self.payload = [1, 2, 3]


# --- inputs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Real checkpoints, built once (untrained weights, no data built): a transformer one, one
    whose stored config does not match its tensors, an HRM one, and that HRM's weights saved the
    way the reference code saves them (for import-checkpoint)."""
    from reasonbench.config import resolve as cfgmod
    from reasonbench.execution.build import build_model, make_task
    from reasonbench.execution.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")

    def save(model: str, name: str, overrides: dict | None = None, config_from: dict | None = None) -> Path:
        argv = ["--model", model, "--task", "sudoku", "--preset", "smoke"]
        cfg, _ = cfgmod.resolve(argv, overrides={"model": overrides or {}})
        task = make_task(cfg)
        built = build_model(cfg, task, task.planned_metadata()[0])
        if config_from is not None:  # the stored config says one thing, the tensors another
            cfg.config = {**cfg.config, "model": config_from}
        path = root / name
        save_checkpoint(built, cfg, path)
        models[name] = built
        return path

    models: dict = {}
    transformer = save("transformer", "transformer.pt")
    stored = torch.load(transformer, weights_only=True)
    made = {
        "transformer": transformer,
        "wide": save("transformer", "wide.pt", {"hidden_size": 64, "num_heads": 2},
                     config_from=stored["config"]["model"]),
        "hrm": save("hrm", "hrm.pt"),
        "hrm-reference": root / "reference_run" / "step_10",
    }
    made["hrm-reference"].parent.mkdir()
    _as_reference_checkpoint(models["hrm.pt"], made["hrm-reference"])  # as the reference code saves it
    return made


# nine anchors of nine aliases each: 367 bytes that expand to 9**9 values in whatever copies them
BILLION_LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def link(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def sudoku_dir(tmp: Path, bad_row: str) -> Path:
    """A reference-layout folder whose train.csv has ``bad_row`` on line 3."""
    data = tmp / "sudoku-data"
    write(data / "train.csv", f"{HEADER}\nx,{GOOD_Q},{GOOD_A},12\n{bad_row}\n")
    write(data / "test.csv", f"{HEADER}\nx,{GOOD_Q},{GOOD_A},12\n")
    return data


def arc_dir(tmp: Path, text: str) -> Path:
    root = tmp / "arc-data"
    good = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]], "output": [[2]]}]}
    write(root / "training" / "a1.json", json.dumps(good))
    write(root / "training" / "b2.json", text)
    write(root / "evaluation" / "c3.json", json.dumps(good))
    return root


def torch_file(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    return write(dst, data[: len(data) // 2])


def with_tensor(src: Path, dst: Path, key: str, value) -> Path:
    data = torch.load(src, weights_only=True)
    data["state_dict"][key] = value
    return torch_file(dst, data)


def maze_csv(tmp: Path, rating: str | None = None) -> Path:
    """Mazes whose row on line 4 is a cell short, or (``rating``) whose first row has that rating."""
    good_q, good_a = "S   ###     G###", "Sooo###oooooG###"  # 4 x 4: right, down, left, down
    if rating is not None:
        text = f"{HEADER}\nx,{good_q},{good_a},{rating}\n" + f"x,{good_q},{good_a},1\n" * 3
    else:
        text = f"{HEADER}\nx,{good_q},{good_a},1\nx,{good_q},{good_a},1\nx,{good_q[:-1]},{good_a},1\n"
    return write(tmp / "maze.csv", text)


def arc_grid(grid) -> str:  # noqa: ANN001
    """A task file whose first demonstration input is ``grid`` (any JSON value)."""
    return json.dumps({"train": [{"input": grid, "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]})


def arc_run(tmp: Path, text: str | bytes, out: Path) -> list[str]:
    return ["run", "--model", "transformer", "--task", "arc", "--task.path", str(arc_dir(tmp, text)), "--out", str(out)]


B2 = ("arc-data", "training", "b2.json")  # the bad task file of arc_dir
DEEP = 100_000  # nesting past Python's recursion limit


# Each case: (tmp, checkpoints, out) -> (argv, fragments the one error line must contain).
CASES = {
    # --- command-line options -----------------------------------------------------------
    "unknown-command": lambda t, c, o: (["frobnicate"], ["invalid choice: 'frobnicate'", "'run'"]),
    "unknown-model": lambda t, c, o: (["run", "--model", "gpt5", "--task", "sudoku", "--out", str(o)],
                                      ["unknown model 'gpt5'"]),
    "unknown-task": lambda t, c, o: (["run", "--model", "transformer", "--task", "chess", "--out", str(o)],
                                     ["unknown task 'chess'"]),
    "unknown-option": lambda t, c, o: ([*RUN, "--model.nonexistent", "3", "--out", str(o)],
                                       ["--model.nonexistent"]),
    "seed-not-int": lambda t, c, o: ([*RUN, "--seed", "abc", "--out", str(o)], ['"seed"', "abc"]),
    "batch-size-zero": lambda t, c, o: ([*RUN, "--task.batch_size", "0", "--out", str(o)], ["task.batch_size"]),
    "lr-negative": lambda t, c, o: ([*RUN, "--optim.lr", "-1", "--out", str(o)], ["optim.lr"]),
    "max-steps-not-int": lambda t, c, o: ([*RUN, "--trainer.max_steps", "abc", "--out", str(o)],
                                          ['"trainer.max_steps"', "abc"]),
    "max-steps-below-minus-one": lambda t, c, o: ([*RUN, "--trainer.max_steps", "-5", "--out", str(o)],
                                                  ["option --trainer.max_steps:", "-5"]),
    "hidden-size-zero": lambda t, c, o: ([*RUN, "--model.hidden_size", "0", "--out", str(o)],
                                         ["model.hidden_size"]),
    "heads-do-not-divide": lambda t, c, o: ([*RUN, "--model.num_heads", "3", "--out", str(o)],
                                            ["model.num_heads"]),
    "unknown-accelerator": lambda t, c, o: ([*RUN, "--trainer.accelerator", "abacus", "--out", str(o)],
                                            ["option --trainer.accelerator:", "abacus"]),
    "unknown-preset": lambda t, c, o: ([*RUN, "--preset", "huge", "--out", str(o)], ["no preset 'huge'"]),
    "bad-budget": lambda t, c, o: ([*RUN, "--budget", "soon", "--out", str(o)], ["--budget"]),
    "negative-checkpoint-every": lambda t, c, o: ([*RUN, "--checkpoint_every", "-1", "--out", str(o)],
                                                  ["--checkpoint_every"]),
    "eval-without-checkpoint": lambda t, c, o: ([*EVAL, "--out", str(o)], ["required: checkpoint"]),
    "run-with-checkpoint": lambda t, c, o: ([*RUN, "--checkpoint", "x.pt", "--out", str(o)],
                                             ["unrecognized arguments: --checkpoint"]),
    "eval-with-resume": lambda t, c, o: ([*EVAL, "--checkpoint", str(c["transformer"]), "--resume", "--out", str(o)],
                                         ["--resume"]),
    "leaderboard-missing-results": lambda t, c, o: (
        ["leaderboard", "--results", str(t / "nope"), "--out", str(o)], ["--results", str(t / "nope")]),
    "leaderboard-results-is-a-file": lambda t, c, o: (
        ["leaderboard", "--results", str(write(t / "r.json", "{}")), "--out", str(o)],
        [f"--results {t / 'r.json'}: not a folder"]),
    "data-unknown-action": lambda t, c, o: (["data", "frob", "--task", "sudoku"], ["'frob'", "'info', 'build'"]),
    "data-export-bad-split": lambda t, c, o: (
        ["data", "export", "--task", "sudoku", "--split", "dev", "--out", str(o / "x.csv")], ["--split", "dev"]),
    "data-show-index-out-of-range": lambda t, c, o: (
        ["data", "show", "--task", "sudoku", "--index", "99999"], ["--index 99999"]),
    "import-unknown-source": lambda t, c, o: (
        ["import-checkpoint", "--from", "gpt", str(c["transformer"]), "--task", "sudoku", "--out", str(o / "x.pt")],
        ["--from"]),
    # --- config files -------------------------------------------------------------------
    "config-missing": lambda t, c, o: ([*RUN, "--config", str(t / "no.yaml"), "--out", str(o)],
                                       [str(t / "no.yaml")]),
    "config-unclosed-bracket": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "seed: 1\nmodel: {hidden_size: 32\n")), "--out", str(o)],
        [f"{t / 'c.yaml'}:3:1: not valid YAML", "line 2"]),
    "config-is-a-list": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "- seed\n- 1\n")), "--out", str(o)],
        [str(t / "c.yaml"), "mapping"]),
    "config-unknown-key": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "model:\n  hidden_sise: 64\n")), "--out", str(o)],
        ["'model'", "'hidden_sise'", str(t / "c.yaml")]),
    "config-unknown-top-level-key": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "sed: 1\n")), "--out", str(o)], ["'sed'", str(t / "c.yaml")]),
    "config-wrong-type": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "optim:\n  lr: fast\n")), "--out", str(o)],
        ['"optim.lr"', "fast", str(t / "c.yaml")]),
    # --- config files from outside: bounded, never a hang, never their content repeated ----------
    "config-billion-laughs": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", BILLION_LAUGHS)), "--out", str(o)],
        [str(t / "c.yaml"), "more than 20,000 keys and values (aliases expanded)"]),
    "config-too-many-keys": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "model:\n" + "".join(f"  k{i}: 1\n" for i in range(30_000)))),
         "--out", str(o)], [str(t / "c.yaml"), "more than 20,000 keys and values"]),
    "config-too-large": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "seed: 1\n" + "#" * (2 << 20))), "--out", str(o)],
        [str(t / "c.yaml"), "larger than 1 MiB"]),
    "config-nested-deep": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "model: " + "[" * 100_000 + "]" * 100_000)), "--out", str(o)],
        [str(t / "c.yaml"), "nested too deeply"]),
    "config-inline-nested-deep": lambda t, c, o: (
        [*RUN, "--config", "{\"model\": " + "[" * 5000 + "]" * 5000 + "}", "--out", str(o)], ["nested too deeply"]),
    "config-fifo": lambda t, c, o: ([*RUN, "--config", str(fifo(t / "c.yaml")), "--out", str(o)],
                                    [str(t / "c.yaml"), "not a regular file: a FIFO"]),
    "config-dev-zero": lambda t, c, o: ([*RUN, "--config", str(link(t / "c.yaml", "/dev/zero")), "--out", str(o)],
                                        [str(t / "c.yaml"), "not a regular file: a character device"]),
    "config-not-a-config": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "shadow", "root:*:20228:0:99999:7:::\nTOPSECRET:x:1:::\n")), "--out", str(o)],
        [str(t / "shadow"), "not a config file", "not shown"]),
    "callbacks-class-outside-allowed": lambda t, c, o: (
        [*RUN, "--trainer.callbacks.class_path", "evil_module.Foo", "--out", str(o)],
        ["option --trainer.callbacks", "evil_module.Foo", "not imported", "--allow-import"]),
    "logger-class-in-config-outside-allowed": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "trainer:\n  logger:\n    class_path: evil_module.Logger\n")),
         "--out", str(o)], ["option --trainer.logger", "evil_module.Logger", "not imported"]),
    "allow-import-not-a-module": lambda t, c, o: ([*RUN, "--allow-import", "../x", "--out", str(o)],
                                                  ["--allow-import ../x", "module name"]),
    "config-not-utf8": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", b"seed: \xff\xfe\n")), "--out", str(o)],
        [str(t / "c.yaml"), "UTF-8"]),
    # --- data files ---------------------------------------------------------------------
    "sudoku-row-too-short": lambda t, c, o: (
        [*RUN, "--task.path", str(sudoku_dir(t, f"x,{GOOD_Q[:-1]},{GOOD_A},3")), "--out", str(o)],
        [f"{t / 'sudoku-data' / 'train.csv'}:3:"]),
    "sudoku-row-non-digit": lambda t, c, o: (
        [*RUN, "--task.path", str(sudoku_dir(t, f"x,{GOOD_Q[:-1]}x,{GOOD_A},3")), "--out", str(o)],
        [f"{t / 'sudoku-data' / 'train.csv'}:3:"]),
    "sudoku-row-missing-field": lambda t, c, o: (
        [*RUN, "--task.path", str(sudoku_dir(t, f"x,{GOOD_Q}")), "--out", str(o)],
        [f"{t / 'sudoku-data' / 'train.csv'}:3:"]),
    "sudoku-bad-header": lambda t, c, o: (
        [*RUN, "--task.path", str(write(t / "s.csv", f"q,a\n{GOOD_Q},{GOOD_A}\n")), "--out", str(o)],
        [f"{t / 's.csv'}:1:", "header"]),
    "sudoku-csv-not-text": lambda t, c, o: (
        [*RUN, "--task.path", str(write(t / "s.csv", b"\x89PNG\r\n\x1a\n\x00\xff" * 20)), "--out", str(o)],
        [f"{t / 's.csv'}:1:", "UTF-8"]),
    "sudoku-missing-path": lambda t, c, o: ([*RUN, "--task.path", str(t / "none"), "--out", str(o)],
                                            ["task.path", str(t / "none")]),
    "sudoku-dir-without-test-csv": lambda t, c, o: (
        [*RUN, "--task.path", str(write(t / "d" / "train.csv", HEADER + "\n").parent), "--out", str(o)],
        ["task.path", "test.csv"]),
    "maze-row-too-short": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "maze", "--task.size", "4", "--task.min_path_length", "0",
         "--task.path", str(maze_csv(t)), "--out", str(o)], [f"{t / 'maze.csv'}:4:"]),
    "arc-invalid-json": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "arc", "--task.path", str(arc_dir(t, '{"train": [')),
         "--out", str(o)], [str(t / "arc-data" / "training" / "b2.json"), "line 1"]),
    "arc-wrong-structure": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "arc", "--task.path", str(arc_dir(t, '{"train": []}')),
         "--out", str(o)], [str(t / "arc-data" / "training" / "b2.json"), "'train'"]),
    "arc-colour-out-of-range": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "arc", "--task.path",
         str(arc_dir(t, '{"train": [{"input": [[12]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}')),
         "--out", str(o)], [str(t / "arc-data" / "training" / "b2.json"), "colours"]),
    "data-export-unwritable-out": lambda t, c, o: (
        ["data", "export", "--task", "sudoku", "--limit", "2", "--out", str(t / "no" / "dir" / "x.csv")],
        [f"--out {t / 'no' / 'dir' / 'x.csv'}: cannot write"]),
    # --- records ------------------------------------------------------------------------
    "reported-malformed-yaml": lambda t, c, o: (
        ["leaderboard", "--results", str((t / "res").mkdir() or t / "res"), "--out", str(o), "--reported",
         str(write(t / "reported.yaml", "version: 1\nentries: [\n  {model: x\n"))], [f"{t / 'reported.yaml'}:4:1:"]),
    "reported-missing": lambda t, c, o: (
        ["leaderboard", "--results", str((t / "res").mkdir() or t / "res"), "--out", str(o), "--reported",
         str(t / "nope.yaml")], [str(t / "nope.yaml")]),
    "resume-over-truncated-record": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)],
        [str(write(o / "transformer" / "sudoku" / "smoke" / "seed0.json", '{\n  "model": "transf')), ":2"]),
    "resume-from-truncated-last-ckpt": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)],
        [str(truncated(c["transformer"], o / "transformer" / "sudoku" / "smoke" / "seed0" / "checkpoints" / "last.ckpt")),
         "truncated"]),
    # --- checkpoints --------------------------------------------------------------------
    "ckpt-missing": lambda t, c, o: ([*EVAL, "--checkpoint", str(t / "none.pt"), "--out", str(o)],
                                     [str(t / "none.pt"), "no such file"]),
    "ckpt-is-a-directory": lambda t, c, o: ([*EVAL, "--checkpoint", str(t), "--out", str(o)],
                                            [f"checkpoint {t}: not a file"]),
    "ckpt-empty": lambda t, c, o: ([*EVAL, "--checkpoint", str(write(t / "e.pt", b"")), "--out", str(o)],
                                   [str(t / "e.pt"), "empty"]),
    "ckpt-text": lambda t, c, o: ([*EVAL, "--checkpoint", str(write(t / "t.pt", "not a checkpoint\n")), "--out", str(o)],
                                  [str(t / "t.pt"), "not a torch file"]),
    "ckpt-truncated": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(truncated(c["transformer"], t / "half.pt")), "--out", str(o)],
        [str(t / "half.pt"), "truncated"]),
    "ckpt-random-bytes": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(write(t / "r.pt", os.urandom(4096))), "--out", str(o)],
        [str(t / "r.pt"), "not a torch file"]),
    "ckpt-plain-pickle": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(write(t / "p.pt", pickle.dumps({"state_dict": {}}))), "--out", str(o)],
        [str(t / "p.pt"), "not a torch file"]),
    "ckpt-a-list": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(torch_file(t / "l.pt", [1, 2, 3])), "--out", str(o)],
        [str(t / "l.pt"), "state_dict"]),
    "ckpt-dict-without-weights": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(torch_file(t / "d.pt", {"a": 1})), "--out", str(o)],
        [str(t / "d.pt"), "state_dict"]),
    "ckpt-custom-class": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(torch_file(t / "c.pt", {"state_dict": {}, "x": NotWeights()})),
         "--out", str(o)], [str(t / "c.pt"), "NotWeights", "weights_only"]),
    "ckpt-wrong-shapes": lambda t, c, o: ([*EVAL, "--checkpoint", str(c["wide"]), "--out", str(o)],
                                          [str(c["wide"]), "does not fit", "size"]),
    "ckpt-one-tensor-reshaped": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(with_tensor(c["transformer"], t / "s.pt", "embed.weight", torch.zeros(3, 3))),
         "--out", str(o)], [str(t / "s.pt"), "embed.weight"]),
    "ckpt-weight-not-a-tensor": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(with_tensor(c["transformer"], t / "n.pt", "embed.weight", "weights")),
         "--out", str(o)], [str(t / "n.pt"), "embed.weight"]),
    "ckpt-of-another-model": lambda t, c, o: ([*EVAL, "--checkpoint", str(c["hrm"]), "--out", str(o)],
                                              [str(c["hrm"]), "hrm"]),
    "import-random-bytes": lambda t, c, o: (
        ["import-checkpoint", "--from", "trm", str(write(t / "r.pt", os.urandom(2048))), "--task", "sudoku",
         "--out", str(o / "x.pt")], [str(t / "r.pt")]),
    "import-not-a-state-dict": lambda t, c, o: (
        ["import-checkpoint", "--from", "trm", str(torch_file(t / "l.pt", [1, 2])), "--task", "sudoku",
         "--out", str(o / "x.pt")], [str(t / "l.pt"), "state dict"]),
    "import-foreign-keys": lambda t, c, o: (
        ["import-checkpoint", "--from", "trm", str(torch_file(t / "f.pt", {"conv1.weight": torch.zeros(2)})),
         "--task", "sudoku", "--out", str(o / "x.pt")], [str(t / "f.pt")]),
    "import-without-embedding": lambda t, c, o: (
        ["import-checkpoint", "--from", "trm", str(torch_file(t / "h.pt", {REF + "lm_head.weight": torch.zeros(2)})),
         "--task", "sudoku", "--out", str(o / "x.pt")], [str(t / "h.pt"), "embed.weight"]),
    "import-reference-config-not-yaml": lambda t, c, o: (
        ["import-checkpoint", "--from", "hrm", str(c["hrm-reference"]), "--task", "sudoku", "--out", str(o / "x.pt"),
         "--reference-config", str(write(t / "all_config.yaml", "arch: [\n"))], [f"{t / 'all_config.yaml'}:2:1:"]),
    "import-reference-config-incomplete": lambda t, c, o: (
        ["import-checkpoint", "--from", "hrm", str(c["hrm-reference"]), "--task", "sudoku", "--out", str(o / "x.pt"),
         "--reference-config", str(write(t / "all_config.yaml", "arch:\n  hidden_size: 32\n"))],
        [str(t / "all_config.yaml"), "num_heads"]),
    "import-out-under-a-file": lambda t, c, o: (
        ["import-checkpoint", "--from", "hrm", str(c["hrm-reference"]), "--task", "sudoku", "--preset", "smoke",
         "--out", str(write(t / "file", "x") / "x.pt")], [f"--out {t / 'file' / 'x.pt'}: cannot write: {t / 'file'} is a file"]),
    # --- names that become paths: presets, models, tasks -------------------------------------
    "preset-parent-path": lambda t, c, o: ([*RUN, "--preset", "../../x/evil", "--out", str(o)],
                                           ["--preset '../../x/evil': not a valid name", "no '..'"]),
    "preset-with-slash": lambda t, c, o: ([*RUN, "--preset", "tasks/smoke", "--out", str(o)],
                                          ["--preset 'tasks/smoke': not a valid name"]),
    "preset-dot-dot": lambda t, c, o: ([*RUN, "--preset=..", "--out", str(o)], ["--preset '..': not a valid name"]),
    "preset-absolute-path": lambda t, c, o: ([*RUN, "--preset", str(t / "evil"), "--out", str(o)],
                                             [f"--preset '{t / 'evil'}': not a valid name"]),
    "preset-path-in-config": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "preset: ../models/x\n")), "--out", str(o)],
        ["--preset '../models/x': not a valid name"]),
    "preset-path-eval": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(c["transformer"]), "--preset", "../smoke", "--out", str(o)],
        ["--preset '../smoke': not a valid name"]),
    "preset-path-info": lambda t, c, o: (["info", "--model", "transformer", "--task", "sudoku", "--preset", "a/../b"],
                                         ["--preset 'a/../b': not a valid name"]),
    "preset-path-data-info": lambda t, c, o: (["data", "info", "--task", "sudoku", "--preset", "../../tasks/x"],
                                              ["--preset '../../tasks/x': not a valid name"]),
    "preset-path-data-export": lambda t, c, o: (
        ["data", "export", "--task", "maze", "--preset", "../evil", "--out", str(o / "x.csv")],
        ["--preset '../evil': not a valid name"]),
    "model-name-path": lambda t, c, o: (["run", "--model", "../transformer", "--task", "sudoku", "--out", str(o)],
                                        ["unknown model '../transformer'"]),
    "task-name-path-in-config": lambda t, c, o: (
        ["run", "--model", "transformer", "--config", str(write(t / "c.yaml", "task:\n  name: ../sudoku\n")),
         "--out", str(o)], ["unknown task '../sudoku'"]),
    # --- seeds: numpy's range 0..2**32-1 ------------------------------------------------------
    "seed-negative": lambda t, c, o: ([*RUN, "--seed", "-1", "--out", str(o)],
                                      ["option --seed: must be an integer in 0..4294967295", "-1"]),
    "seed-above-numpy-range": lambda t, c, o: ([*RUN, "--seed", str(2**32), "--out", str(o)],
                                               ["option --seed", "0..4294967295", str(2**32)]),
    "seed-too-large-in-config": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", f"seed: {10**20}\n")), "--out", str(o)],
        ["option --seed", "0..4294967295"]),
    "data-seed-negative": lambda t, c, o: ([*RUN, "--task.data_seed", "-1", "--out", str(o)],
                                           ["task.data_seed", "0..4294967295"]),
    "data-seed-above-numpy-range-data-build": lambda t, c, o: (
        ["data", "build", "--task", "maze", "--task.data_seed", str(2**40)], ["task.data_seed", str(2**40)]),
    # --- ARC task files -----------------------------------------------------------------------
    "arc-nested-too-deep": lambda t, c, o: (arc_run(t, "[" * DEEP + "]" * DEEP, o),
                                            [str(t.joinpath(*B2)), "nested too deep"]),
    "arc-nested-too-deep-inside-train": lambda t, c, o: (
        arc_run(t, '{"train": ' + "[" * DEEP + "]" * DEEP + "}", o), [str(t.joinpath(*B2)), "nested too deep"]),
    "arc-nested-too-deep-unclosed": lambda t, c, o: (
        ["data", "info", "--task", "arc", "--task.path", str(arc_dir(t, '{"train": ' + "[" * DEEP))],
        [str(t.joinpath(*B2)), "nested too deep"]),
    "arc-grid-deeper-than-numpy": lambda t, c, o: (
        arc_run(t, arc_grid(json.loads("[" * 200 + "1" + "]" * 200)), o),
        [str(t.joinpath(*B2)), "train[0].input", "equal-length rows"]),
    "arc-grid-not-rectangular": lambda t, c, o: (arc_run(t, arc_grid([[1, 2], [3]]), o),
                                                 [str(t.joinpath(*B2)), "train[0].input", "equal-length rows"]),
    "arc-grid-empty": lambda t, c, o: (arc_run(t, arc_grid([]), o), [str(t.joinpath(*B2)), "non-empty"]),
    "arc-grid-empty-row": lambda t, c, o: (arc_run(t, arc_grid([[]]), o), [str(t.joinpath(*B2)), "non-empty"]),
    "arc-grid-larger-than-30x30": lambda t, c, o: (arc_run(t, arc_grid([[1] * 31] * 31), o),
                                                   [str(t.joinpath(*B2)), "grid 31x31 exceeds 30x30"]),
    "arc-grid-row-too-long": lambda t, c, o: (arc_run(t, arc_grid([[1] * 31]), o),
                                              [str(t.joinpath(*B2)), "grid 1x31 exceeds 30x30"]),
    "arc-colour-float": lambda t, c, o: (arc_run(t, arc_grid([[1, 1.5]]), o),
                                         [str(t.joinpath(*B2)), "colours must be integers 0-9, got 1.5 at row 0, column 1"]),
    "arc-colour-true-among-numbers": lambda t, c, o: (arc_run(t, arc_grid([[1, 2], [True, 3]]), o),
                                                      [str(t.joinpath(*B2)), "got true at row 1, column 0"]),
    "arc-colour-string": lambda t, c, o: (arc_run(t, arc_grid([[1, "3"]]), o), [str(t.joinpath(*B2)), 'got "3"']),
    "arc-colour-null": lambda t, c, o: (arc_run(t, arc_grid([[None]]), o), [str(t.joinpath(*B2)), "got null"]),
    "arc-colour-nan": lambda t, c, o: (
        arc_run(t, '{"train": [{"input": [[NaN]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}', o),
        [str(t.joinpath(*B2)), "got NaN"]),
    "arc-rows-are-strings": lambda t, c, o: (arc_run(t, arc_grid(["12", "34"]), o),
                                             [str(t.joinpath(*B2)), "equal-length rows"]),
    "arc-not-utf8": lambda t, c, o: (arc_run(t, b'{"train": [], "note": "\xff\xfe"}\n', o),
                                     [f"{t.joinpath(*B2)}:1:", "not UTF-8"]),
    "arc-top-level-list": lambda t, c, o: (arc_run(t, "[[1, 2]]", o), [str(t.joinpath(*B2)), "expected an object"]),
    "arc-too-many-augmentations": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "arc", "--task.num_augmentations", str(10**9), "--out", str(o)],
        ["task.num_augmentations", "0..2,903,039"]),
    # --- Sudoku and Maze CSV rows -------------------------------------------------------------
    "sudoku-csv-nul-byte": lambda t, c, o: (
        [*RUN, "--task.path", str(sudoku_dir(t, f"x,{GOOD_Q},{GOOD_A},1\x00")), "--out", str(o)],
        [f"{t / 'sudoku-data' / 'train.csv'}:3:", "rating"]),
    "sudoku-csv-huge-field": lambda t, c, o: (
        [*RUN, "--task.path", str(sudoku_dir(t, "x," + "1" * 200_000 + f",{GOOD_A},1")), "--out", str(o)],
        [f"{t / 'sudoku-data' / 'train.csv'}:3:", "not valid CSV", "field limit"]),
    "sudoku-rating-not-integer": lambda t, c, o: (
        [*RUN, "--task.path", str(sudoku_dir(t, f"x,{GOOD_Q},{GOOD_A},1.5")), "--out", str(o)],
        [f"{t / 'sudoku-data' / 'train.csv'}:3:", "rating '1.5' is not an integer"]),
    "sudoku-rating-5000-digits": lambda t, c, o: (
        [*RUN, "--task.path", str(sudoku_dir(t, f"x,{GOOD_Q},{GOOD_A}," + "9" * 5000)), "--out", str(o)],
        [f"{t / 'sudoku-data' / 'train.csv'}:3:", "is out of range"]),
    "sudoku-header-only": lambda t, c, o: (
        [*RUN, "--task.path", str(write(t / "s.csv", HEADER + "\r\n\r\n")), "--out", str(o)],
        [f"{t / 's.csv'}: no valid puzzles"]),
    "maze-rating-beyond-int64": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "maze", "--task.size", "4", "--task.min_path_length", "0",
         "--task.path", str(maze_csv(t, rating=str(2**70))), "--out", str(o)],
        [f"{t / 'maze.csv'}:2:", "rating", "out of range"]),
    # --- data commands ------------------------------------------------------------------------
    "data-export-limit-negative": lambda t, c, o: (
        ["data", "export", "--task", "sudoku", "--limit", "-5", "--out", str(o / "x.csv")],
        ["--limit -5: must be >= 1"]),
    "data-export-limit-zero": lambda t, c, o: (
        ["data", "export", "--task", "sudoku", "--limit", "0", "--out", str(o / "x.csv")],
        ["--limit 0: must be >= 1", "leave --limit out"]),
    "data-export-limit-not-int": lambda t, c, o: (
        ["data", "export", "--task", "sudoku", "--limit", "all", "--out", str(o / "x.csv")],
        ['"limit"', "Given value: all"]),
    "data-export-split-ood": lambda t, c, o: (
        ["data", "export", "--task", "sudoku", "--split", "ood", "--out", str(o / "x.csv")], ["ood"]),
    "data-export-out-is-a-folder": lambda t, c, o: (
        ["data", "export", "--task", "sudoku", "--limit", "2", "--out", str(t)], [f"--out {t}: cannot write"]),
    "data-show-index-negative": lambda t, c, o: (
        ["data", "show", "--task", "sudoku", "--index", "-1"], ["--index -1 out of range"]),
    "data-show-bad-split": lambda t, c, o: (
        ["data", "show", "--task", "sudoku", "--split", "dev"], ["--split", "dev"]),
    "data-build-out-under-a-file": lambda t, c, o: (
        ["data", "build", "--task", "sudoku", "--out", str(write(t / "file", "x") / "cache")],
        [f"--out {t / 'file' / 'cache'}: cannot write: {t / 'file'} is a file"]),
    # --- values that pass the parser and used to fail later ------------------------------------
    "num-train-too-large": lambda t, c, o: ([*RUN, "--task.num_train", str(10**12), "--out", str(o)],
                                            ["task.num_train", "too large", "GiB of memory"]),
    "num-train-too-large-data-info": lambda t, c, o: (
        ["data", "info", "--task", "sudoku", "--task.num_train", str(10**12)], ["task.num_train", "too large"]),
    "maze-size-too-large": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "maze", "--task.size", str(10**5), "--out", str(o)],
        ["task.size", "too large"]),
    "maze-size-one": lambda t, c, o: (
        ["run", "--model", "transformer", "--task", "maze", "--task.size", "1", "--out", str(o)],
        ["task.size must be >= 2, got 1"]),
    "num-test-zero": lambda t, c, o: ([*RUN, "--task.num_test", "0", "--out", str(o)], ["task.num_test"]),
    "num-train-float-in-config": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "task:\n  num_train: 1.5\n")), "--out", str(o)],
        ['"task.num_train"', "1.5", str(t / "c.yaml")]),
    "hard-mean-nan-in-config": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "task:\n  hard_mean: .nan\n")), "--out", str(o)],
        ["task.hard_mean finite and > 0"]),
    "batch-size-above-training-examples": lambda t, c, o: (
        [*RUN, "--task.batch_size", "100000", "--out", str(o)],
        ["task.batch_size 100000 exceeds the 256 training examples"]),
    "hidden-size-too-large": lambda t, c, o: ([*RUN, "--model.hidden_size", str(10**6), "--out", str(o)],
                                              ["model transformer too large", "--model.hidden_size 1,000,000"]),
    "hidden-size-overflows": lambda t, c, o: ([*RUN, "--model.hidden_size", str(10**9), "--out", str(o)],
                                              ["model transformer too large", "--model.hidden_size 1,000,000,000"]),
    "info-hidden-size-overflows": lambda t, c, o: (
        ["info", "--model", "transformer", "--task", "sudoku", "--model.hidden_size", str(10**9)],
        ["model transformer too large"]),
    "max-steps-zero": lambda t, c, o: ([*RUN, "--trainer.max_steps", "0", "--out", str(o)],
                                       ["option --trainer.max_steps: must be -1 (no limit) or >= 1", "got 0"]),
    "max-epochs-zero": lambda t, c, o: ([*RUN, "--trainer.max_epochs", "0", "--out", str(o)],
                                        ["option --trainer.max_epochs", "got 0"]),
    "devices-more-than-cpu-cores": lambda t, c, o: (
        [*RUN, "--trainer.accelerator", "cpu", "--trainer.devices", "1000", "--out", str(o)],
        ["option --trainer.devices: 1000 training processes on the CPU are too many"]),
    "devices-zero": lambda t, c, o: ([*RUN, "--trainer.devices", "0", "--out", str(o)], ["option --trainer.devices"]),
    "accumulate-grad-batches-zero": lambda t, c, o: (
        [*RUN, "--trainer.accumulate_grad_batches", "0", "--out", str(o)],
        ["option --trainer.accumulate_grad_batches: must be >= 1"]),
    "val-check-interval-zero": lambda t, c, o: ([*RUN, "--trainer.val_check_interval", "0", "--out", str(o)],
                                                ["option --trainer.val_check_interval"]),
    "val-check-interval-fraction-above-one": lambda t, c, o: (
        [*RUN, "--trainer.val_check_interval", "1.5", "--out", str(o)], ["option --trainer.val_check_interval", "1.5"]),
    "limit-train-batches-negative": lambda t, c, o: (
        [*RUN, "--trainer.limit_train_batches", "-1", "--out", str(o)], ["option --trainer.limit_train_batches"]),
    "gradient-clip-negative": lambda t, c, o: ([*RUN, "--trainer.gradient_clip_val", "-1", "--out", str(o)],
                                               ["option --trainer.gradient_clip_val"]),
    "weight-decay-nan": lambda t, c, o: ([*RUN, "--optim.weight_decay", "nan", "--out", str(o)],
                                         ['"optim.weight_decay"', "nan"]),
    "weight-decay-nan-in-config": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "optim:\n  weight_decay: .nan\n")), "--out", str(o)],
        ["optim.weight_decay must be a finite number >= 0, got nan"]),
    "weight-decay-negative": lambda t, c, o: ([*RUN, "--optim.weight_decay", "-0.1", "--out", str(o)],
                                              ["optim.weight_decay", "-0.1"]),
    "lr-inf": lambda t, c, o: ([*RUN, "--optim.lr", "inf", "--out", str(o)],
                               ['"optim.lr"', "inf"]),
    "lr-inf-in-config": lambda t, c, o: (
        [*RUN, "--config", str(write(t / "c.yaml", "optim:\n  lr: .inf\n")), "--out", str(o)],
        ["optim.lr must be > 0 and finite, got inf"]),
    "beta1-one": lambda t, c, o: ([*RUN, "--optim.beta1", "1", "--out", str(o)], ["optim.beta1 must be in [0, 1)"]),
    "eps-negative": lambda t, c, o: ([*RUN, "--optim.eps=-1e-8", "--out", str(o)],
                                     ["optim.eps must be a finite number >= 0, got -1e-08"]),
    "precision-unknown": lambda t, c, o: ([*RUN, "--trainer.precision", "7", "--out", str(o)],
                                          ['"trainer.precision"', "'bf16-mixed'", "Given value: 7"]),
    # --- output paths: checked before anything trains -------------------------------------------
    "out-is-a-file": lambda t, c, o: ([*RUN, "--out", str(write(t / "f", "x"))], [f"--out {t / 'f'}: cannot write",
                                                                                   "is a file"]),
    "out-under-a-file": lambda t, c, o: ([*RUN, "--out", str(write(t / "f", "x") / "sub")],
                                         [f"--out {t / 'f' / 'sub'}: cannot write: {t / 'f'} is a file"]),
    "out-unwritable": lambda t, c, o: ([*RUN, "--out", "/proc/reasonbench-out"], ["--out /proc/reasonbench-out: cannot write"]),
    "out-record-is-a-folder": lambda t, c, o: (
        [*RUN, "--out", str((o / RECORD).mkdir(parents=True) or o)], [str(o / RECORD), "not a file"]),
    "eval-out-is-a-file": lambda t, c, o: ([*EVAL, "--checkpoint", str(c["transformer"]), "--out", str(write(t / "f", "x"))],
                                           [f"--out {t / 'f'}: cannot write"]),
    # --- results are not replaced silently ------------------------------------------------------
    "rerun-over-a-record": lambda t, c, o: ([*RUN, "--out", str(o)],
                                            [f"record {write(o / RECORD, '{}')} exists", "--overwrite", "--resume"]),
    "eval-rerun-over-a-record": lambda t, c, o: (
        [*EVAL, "--checkpoint", str(c["transformer"]), "--out", str(o)],
        [f"record {write(o / RECORD.replace('.json', '.eval.json'), '{}')} exists", "--overwrite"]),
    "rerun-over-an-unfinished-run": lambda t, c, o: (
        [*RUN, "--out", str(o)], [f"{write(o / RUN_DIR / 'checkpoints' / 'last.ckpt', 'x').parent} holds an unfinished",
                                  "--resume", "--overwrite"]),
    "resume-over-an-invalid-record": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)], [str(write(o / RECORD, '{"model": 3}')), "invalid record"]),
    # --- resuming: a checkpoint of another run, or malformed ------------------------------------
    "resume-another-architecture": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)],
        [str(training_ckpt(c["transformer"], o, model="hrm")), "holds a hrm model", "--model hrm"]),
    "resume-another-size": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)], [str(training_ckpt(c["wide"], o)), "does not fit", "shapes"]),
    "resume-step-not-an-int": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)], [str(training_ckpt(c["transformer"], o, global_step="7")), "'global_step'"]),
    "resume-negative-step": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)], [str(training_ckpt(c["transformer"], o, global_step=-4)), "negative"]),
    "resume-without-loops": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)], [str(training_ckpt(c["transformer"], o, loops=None)), "'loops'"]),
    "resume-optimizer-states-not-a-list": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)],
        [str(training_ckpt(c["transformer"], o, optimizer_states={"a": 1})), "'optimizer_states'"]),
    "resume-weight-not-a-tensor": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)],
        [str(training_ckpt(c["transformer"], o, weight="embed.weight")), "'embed.weight' is not a tensor"]),
    "resume-ckpt-a-list": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)],
        [str(torch_file((o / RUN_DIR / "checkpoints").mkdir(parents=True) or o / RUN_DIR / "checkpoints" / "last.ckpt",
                        [1, 2])), "state_dict"]),
    "resume-every-checkpoint-unreadable": lambda t, c, o: (
        [*RUN, "--resume", "--out", str(o)],
        ["no readable checkpoint", str(write(o / RUN_DIR / "checkpoints" / "best.ckpt", os.urandom(64)).parent)]),
}


RECORD = "transformer/sudoku/smoke/seed0.json"
RUN_DIR = "transformer/sudoku/smoke/seed0"


def training_ckpt(source: Path, out: Path, model: str = "transformer", weight: str | None = None, **fields) -> Path:
    """A run folder's last.ckpt holding ``source``'s weights and a training state, with
    ``fields`` replaced (None: left out) and ``weight`` not a tensor."""
    stored = torch.load(source, weights_only=True)
    state = {"state_dict": dict(stored["state_dict"]), "global_step": 3, "epoch": 0, "loops": {}, "optimizer_states": [],
             "lr_schedulers": [], "callbacks": {}, "reasonbench": {"model": model, "config": stored["config"]}}
    for key, value in fields.items():
        state.pop(key) if value is None else state.__setitem__(key, value)
    if weight is not None:
        state["state_dict"][weight] = "not a tensor"
    path = out / RUN_DIR / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return torch_file(path, state)


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file (size, mtime) and folder under ``roots``."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, -1)
            for root in roots if root.exists() for p in sorted(root.rglob("*"))}


# a case also run in a fresh interpreter: what a user really sees on stderr (torch warns about
# such a file), the exit status of the process (the interrupt test below runs the CLI so too)
IN_SUBPROCESS = {"ckpt-plain-pickle"}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_gives_one_line_and_exit_2(case, tmp_path, checkpoints, data_cache):
    out = tmp_path / "out"
    argv, fragments = CASES[case](tmp_path, checkpoints, out)
    argv = [*argv, *(QUIET if argv[0] in ("run", "eval") else [])]
    before = snapshot(tmp_path, data_cache)
    if case in IN_SUBPROCESS:
        result, caught = run_cli(*argv, cwd=tmp_path), []
    else:
        with warnings.catch_warnings(record=True) as caught:  # a warning would be more lines on stderr
            warnings.simplefilter("always")
            result = call_cli(*argv)
    after = snapshot(tmp_path, data_cache)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX) and lines[0][len(PREFIX):].strip(), result.stderr
    assert not [str(w.message) for w in caught]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    # nothing half-written: no record, no temporary, nothing new or changed under tmp_path; a
    # data build's cache may appear (complete and reusable), never a temporary of it
    mine = lambda snap: {k: v for k, v in snap.items() if not k.startswith(str(data_cache))}  # noqa: E731
    assert mine(after) == mine(before)
    assert not [k for k in after if k not in before and k.endswith(".tmp")]
    print(f"{case}: {lines[0]}")


def test_a_class_path_never_imports_a_module_of_the_working_folder(tmp_path):
    """``--trainer.callbacks.class_path NAME.Foo`` run where a NAME.py lies (``python -m`` puts
    the working folder first on the import path): NAME is refused by name, never imported."""
    marker = tmp_path / "MARKER"
    (tmp_path / "planted.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Foo: pass\n")
    for option in ("--trainer.callbacks.class_path", "--trainer.logger", "--trainer.callbacks"):
        result = run_cli(*RUN, option, "planted.Foo", "--out", str(tmp_path / "out"), *QUIET, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "planted.Foo" in result.stderr and "not imported" in result.stderr
        assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_config_that_is_not_one_is_refused_without_its_content(tmp_path):
    secret = "root:$6$TOPSECRET$hash:20228:0:99999:7:::"
    for text in (secret + "\n", secret + "\nline2: [unclosed\n", f"{secret}: 1\n", f"- {secret}\n", f"x y: {secret}\n"):
        path = write(tmp_path / "shadow", text)
        result = call_cli(*RUN, "--config", str(path), "--out", str(tmp_path / "out"), *QUIET)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "TOPSECRET" not in result.stderr and str(path) in result.stderr


def test_the_yaml_of_option_values_is_bounded_too():
    from reasonbench.util.untrusted import UntrustedInput, load_yaml

    with pytest.raises(UntrustedInput, match="more than 20,000 keys"):
        load_yaml(BILLION_LAUGHS, "x")
    with pytest.raises(UntrustedInput, match="more than 20,000 keys"):
        load_yaml("a: &a [*a]\n", "x")  # a recursive alias
    assert load_yaml("a: &a [1, 2]\nb: *a\n", "x") == {"a": [1, 2], "b": [1, 2]}


EVIL_PLUGIN = """
from reasonbench.config import registry

class Model(registry.get_model("transformer")):  # presets of its own, in this package
    pass
"""


def test_names_from_plugins_stay_names(plugin_path, tmp_path):
    """A model preset's ``task_preset`` and a plugin's registered names reach paths too: a
    path there is refused like one typed as --preset (exit 2, one line), nothing read or written."""
    outside = write(tmp_path / "outside" / "evil.yaml", "task:\n  num_train: 3\n")
    plugin_path("rbtest-evil", "rbtest_evil", EVIL_PLUGIN, {"rbtestevil": "rbtest_evil:Model", "rb/evil": "rbtest_evil:Model"},
                presets={"models/rbtestevil/sudoku/smoke.yaml": f"task_preset: ../../../../{outside.parent.name}/evil\n"})
    for argv, fragments in (
            (["run", "--model", "rbtestevil", "--task", "sudoku"], ["smoke.yaml", "task_preset", "not a valid preset name"]),
            (["info", "--model", "rbtestevil", "--task", "sudoku"], ["task_preset", "not a valid preset name"]),
            (["run", "--model", "rb/evil", "--task", "sudoku"], ["--model 'rb/evil': not a valid name"])):
        before = snapshot(tmp_path)
        result = call_cli(*argv, "--out", str(tmp_path / "out"))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(PREFIX), result.stderr
        assert all(f in lines[0] for f in fragments), (fragments, lines[0])
        assert snapshot(tmp_path) == before


def test_interrupted_run_leaves_no_partial_record(tmp_path):
    """Ctrl-C, and the SIGTERM a batch system sends before killing a job, once training is under
    way: exit 130, one line, the checkpoints kept for --resume, no record. Both runs go side by
    side (each waits mostly on its interpreter's start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}  # SLURM: Lightning's requeue
    runs = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / signum.name
        proc = subprocess.Popen([sys.executable, "-m", "reasonbench", *RUN, "--trainer.max_steps", "100000",
                                 "--checkpoint_every", "2", "--out", str(out), *QUIET],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[signum] = (proc, out, out / "transformer" / "sudoku" / "smoke" / "seed0" / "checkpoints" / "last.ckpt")
    try:
        waiting, deadline = set(runs), time.monotonic() + 180
        while waiting:
            for signum in list(waiting):
                proc, _, last = runs[signum]
                assert proc.poll() is None, (signum, proc.communicate())
                if last.exists():  # a periodic checkpoint: training is under way
                    proc.send_signal(signum)
                    waiting.discard(signum)
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        results = {signum: proc.communicate(timeout=120) for signum, (proc, _, _) in runs.items()}
    finally:
        for proc, _, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
    for signum, (proc, out, _) in runs.items():
        stdout, stderr = results[signum]
        assert proc.returncode == 130, (signum, stdout, stderr)
        assert "Traceback" not in stdout + stderr
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("reasonbench: interrupted: at step "), (signum, stderr)
        assert "no record written" in lines[0] and "--resume" in lines[0]
        # no record (the run folder's attempts.json is its cost account, not a record)
        assert not [p for p in out.rglob("*") if p.suffix in (".json", ".tmp") and p.name != "attempts.json"
                    or p.name == "final.pt"]
        assert (out / "transformer" / "sudoku" / "smoke" / "seed0" / "checkpoints" / "last.ckpt").is_file()
