"""Contributors' tools: ``new-plugin`` writes plugins that train as generated, the example
out-of-tree package is found and passes the conformance kit, and the kit catches real faults
with a message that says what to change."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from reasonbench.config import registry
from reasonbench.tools import conformance as testing
from reasonbench.model.module import ReasoningModule, ReasoningOutput

from .conftest import QUIET, ROOT, call_cli

TASKS = registry.list_tasks()


@pytest.fixture
def isolated_registry():
    """Plugins made by a test stay in it: registry and imported modules restored after."""
    modules = set(sys.modules)
    registry.refresh()
    yield
    registry.refresh()
    for name in set(sys.modules) - modules:
        if name.startswith(("reasonbench_rbtest", "rbtest_")):
            del sys.modules[name]


# --- new-plugin ---------------------------------------------------------------------------

def test_new_plugin_package_installs_and_trains(tmp_path, monkeypatch, isolated_registry):
    target = tmp_path / "reasonbench-rbtestloop"
    result = call_cli("new-plugin", "rbtestloop", "--package", str(target))
    assert result.returncode == 0, result.stderr
    package = target / "reasonbench_rbtestloop"
    assert (package / "model.py").is_file() and (target / "tests" / "test_rbtestloop.py").is_file()
    assert sorted(p.relative_to(package / "presets").as_posix()
                  for p in package.rglob("*.yaml")) == sorted(f"{t}/{p}.yaml" for t in TASKS for p in ("mini", "smoke"))
    project = tomllib.loads((target / "pyproject.toml").read_text())
    assert project["project"]["name"] == "reasonbench-rbtestloop"
    assert project["project"]["dependencies"] == ["reasonbench"]
    entry_points = project["project"]["entry-points"]["reasonbench.models"]
    assert entry_points == {"rbtestloop": "reasonbench_rbtestloop.model:RbtestloopModel"}
    assert project["tool"]["setuptools"]["package-data"] == {"reasonbench_rbtestloop": ["presets/**/*.yaml"]}

    # installed as pip leaves a package: its dist-info, with the entry points its pyproject declares
    info = target / "reasonbench_rbtestloop-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: reasonbench-rbtestloop\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[reasonbench.models]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    monkeypatch.syspath_prepend(str(target))
    registry.refresh()
    assert registry.entries("model")["rbtestloop"].dist == "reasonbench-rbtestloop"
    for task in TASKS:  # builds, runs forward and backward on every task from its own presets
        subject = testing.subject("rbtestloop", task)
        testing.check_forward(subject)
        testing.check_backward(subject)
    record = testing.check_record("rbtestloop", "sudoku", tmp_path / "results", steps=4)
    assert record["cost"]["train_steps"] == 4 and record["cost"]["params"] > 0


def test_new_plugin_in_tree_writes_the_checkout_and_declares_it(tmp_path, isolated_registry):
    checkout = tmp_path / "checkout"
    (checkout / "plugins").mkdir(parents=True)
    original = (ROOT / "pyproject.toml").read_text()
    (checkout / "pyproject.toml").write_text(original)
    result = call_cli("new-plugin", "rbtest-tree", "--in-tree", "--root", str(checkout))
    assert result.returncode == 0, result.stderr
    model_file = checkout / "plugins" / "rbtest_tree" / "model.py"
    assert model_file.is_file() and (checkout / "tests" / "test_rbtest_tree.py").is_file()
    presets = checkout / "plugins" / "rbtest_tree" / "presets"
    assert sorted(p.relative_to(presets).as_posix() for p in presets.rglob("*.yaml")) == \
        sorted(f"{t}/{p}.yaml" for t in TASKS for p in ("mini", "smoke"))
    # one folder, one test, one pyproject line: the entry point (the package is found by setup.py)
    assert {p.relative_to(checkout).parts[0] for p in checkout.rglob("*") if p.is_file()} == \
        {"plugins", "tests", "pyproject.toml"}
    before, after = tomllib.loads(original), tomllib.loads((checkout / "pyproject.toml").read_text())
    models = after["project"]["entry-points"]["reasonbench.models"]
    assert models.pop("rbtest-tree") == "reasonbench_plugins.rbtest_tree:RbtestTreeModel"
    assert after == before
    added = set((checkout / "pyproject.toml").read_text().splitlines()) - set(original.splitlines())
    assert added == {'rbtest-tree = "reasonbench_plugins.rbtest_tree:RbtestTreeModel"'}

    # the generated model trains on its own smoke preset
    spec = importlib.util.spec_from_file_location("rbtest_tree_model", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = yaml.safe_load((presets / "maze" / "smoke.yaml").read_text())["model"]
    subject = testing.Subject.from_class(module.RbtestTreeModel, "maze", args)
    testing.check_backward(subject)
    testing.check_no_state_leak(subject)


@pytest.mark.parametrize("args, message", [
    (["Bad Name"], "use lowercase letters"),
    (["trm"], "model name 'trm' is taken"),
    (["class"], "is a Python keyword"),
    (["ok", "--in-tree", "--package", "x"], "--package and --in-tree exclude each other"),
    (["ok", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_new_plugin_refuses_with_one_line_and_writes_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = call_cli("new-plugin", *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_new_plugin_refuses_a_taken_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = call_cli("new-plugin", "rbtestfree", "--package", str(tmp_path / "mine"))
    assert result.returncode == 2 and "exists and is not empty" in result.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


# --- the example out-of-tree package ------------------------------------------------------

def _example_installed() -> None:
    try:
        md.distribution("reasonbench-loopnet")
    except md.PackageNotFoundError:
        pytest.skip("examples/reasonbench-loopnet is not installed (`make install` installs it)")


def test_example_plugin_is_discovered_from_outside():
    _example_installed()
    registry.refresh()
    listed = call_cli("list")
    line = next(l for l in listed.stdout.splitlines() if l.split()[:2] == ["model", "loopnet"])
    assert line.split()[2] == "ok" and line.endswith("(from reasonbench-loopnet)")
    cls = registry.get_model("loopnet")
    assert Path(sys.modules[cls.__module__].__file__).is_relative_to(ROOT / "examples" / "reasonbench-loopnet")


def test_example_plugin_passes_the_kit_and_runs(tmp_path):
    _example_installed()
    registry.refresh()
    checked = call_cli("check-plugin", "loopnet")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].startswith("check-plugin loopnet (reasonbench_loopnet.model:LoopnetModel, from reasonbench-loopnet)")
    assert sum(l.startswith("PASS") for l in lines) == 1 + 9 * len(TASKS) + 1  # imports, 9 per task, record
    assert lines[-1].startswith(f"{2 + 9 * len(TASKS)} passed, 0 failed, 0 skipped")
    # one thread, as the kit runs: on a shared 2-core machine two threads wait on each other
    run = testing.one_thread(call_cli)("run", "--model", "loopnet", "--task", "sudoku", "--preset", "smoke",
                                       "--out", str(tmp_path), *QUIET)
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "loopnet" / "sudoku" / "smoke" / "seed0.json").read_text())
    assert record["status"] == "completed" and record["cost"]["train_steps"] == 24


# --- the kit catches faults ---------------------------------------------------------------

class Tiny(ReasoningModule):
    """A conforming model: embedding, tanh, head."""

    def __init__(self, metadata, optim=None, hidden_size: int = 16) -> None:
        super().__init__(metadata, optim)
        self.embed = nn.Embedding(metadata.vocab_size, hidden_size)
        self.head = nn.Linear(hidden_size, metadata.vocab_size)

    def hidden(self, batch):
        return torch.tanh(self.embed(batch["inputs"]))

    def forward(self, batch):
        return ReasoningOutput(logits=self.head(self.hidden(batch)))


class WrongShape(Tiny):
    def forward(self, batch):
        return ReasoningOutput(logits=self.head(self.hidden(batch))[:, 1:])


class UnusedParameter(Tiny):
    def __init__(self, metadata, optim=None) -> None:
        super().__init__(metadata, optim)
        self.gate = nn.Linear(16, 16)  # built, never called


class Stateful(Tiny):
    def __init__(self, metadata, optim=None) -> None:
        super().__init__(metadata, optim)
        self.memory = None

    def forward(self, batch):
        h = self.hidden(batch)
        if self.memory is not None:
            h = h + self.memory
        self.memory = h.mean(0).detach()  # the previous batch leaks into the next
        return ReasoningOutput(logits=self.head(h))


@dataclass
class Counter:
    seen: int = 0


class ObjectInState(Tiny):
    def get_extra_state(self):
        return Counter(3)  # an object: weights_only loading refuses it

    def set_extra_state(self, state) -> None:
        pass


class Unseeded(Tiny):
    def __init__(self, metadata, optim=None) -> None:
        super().__init__(metadata, optim)
        rng = np.random.default_rng()  # fresh entropy, whatever the seed
        with torch.no_grad():
            self.embed.weight.copy_(torch.from_numpy(rng.normal(size=tuple(self.embed.weight.shape))))


class LazyCache(Tiny):
    def __init__(self, metadata, optim=None) -> None:
        super().__init__(metadata, optim)
        self.scale = None

    def forward(self, batch):
        if self.scale is None:  # built on first use: under inference_mode an inference tensor
            self.scale = torch.linspace(0.5, 1.5, batch["inputs"].shape[1]).unsqueeze(-1)
        return ReasoningOutput(logits=self.head(self.hidden(batch) * self.scale))


class PuzzleTableAsWeights(Tiny):
    def __init__(self, metadata, optim=None) -> None:
        super().__init__(metadata, optim)
        self.per_puzzle = nn.Embedding(metadata.num_puzzle_ids, 16)

    def hidden(self, batch):
        return torch.tanh(self.embed(batch["inputs"]) + self.per_puzzle(batch["puzzle_ids"]).unsqueeze(1))


def test_a_conforming_model_passes_every_check():
    subject = testing.Subject.from_class(Tiny, "sudoku")
    for check in testing.MODEL_CHECKS:
        check(subject)


@pytest.mark.parametrize("cls, task, check, problem, fix", [
    (WrongShape, "sudoku", testing.check_forward,
     "logits have shape (4, 80, 11), expected [batch, seq_len, vocab_size] = [4, 81, 11]", "size the head"),
    (UnusedParameter, "sudoku", testing.check_backward,
     "2 of 5 trainable parameters got no gradient: gate.weight, gate.bias", "or delete them"),
    (Stateful, "sudoku", testing.check_no_state_leak,
     "batch A's logits changed after evaluating batch B", "forward keeps state between calls"),
    (ObjectInState, "sudoku", testing.check_checkpoint,
     "offending entries: ['state_dict']['_extra_state'] (tests.test_contrib.Counter)", "keep objects out"),
    (Unseeded, "sudoku", testing.check_determinism,
     "two builds under the same seed differ in embed.weight", "not from an unseeded numpy Generator"),
    (LazyCache, "sudoku", testing.check_inference_mode,
     "a training step after an evaluation under inference_mode raised", "build caches in __init__"),
    (PuzzleTableAsWeights, "arc", testing.check_parameters,
     "'per_puzzle' looks like a per-puzzle table", "use reasonbench.nn.PuzzleEmbedding"),
])
def test_the_kit_names_the_fault_and_the_fix(cls, task, check, problem, fix):
    subject = testing.Subject.from_class(cls, task)
    with pytest.raises(AssertionError) as caught:
        check(subject)
    message = str(caught.value)
    assert problem in message, message
    assert fix in message.split("\nfix: ", 1)[1], message


UNUSED_PLUGIN = """
from torch import nn
from tests.test_contrib import Tiny

class Model(Tiny):
    def __init__(self, metadata, optim=None, hidden_size: int = 16) -> None:
        super().__init__(metadata, optim, hidden_size)
        self.gate = nn.Linear(hidden_size, hidden_size)  # built, never called
"""


def test_check_plugin_command_reports_failures(plugin_path):
    plugin_path("rbtest-unused", "rbtest_unused", UNUSED_PLUGIN, {"rbtestunused": "rbtest_unused:Model"},
                presets={"models/rbtestunused/sudoku/smoke.yaml": "model:\n  hidden_size: 8\n"})
    result = call_cli("check-plugin", "rbtestunused", "--tasks", "sudoku,maze", "--no-record")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "FAIL  sudoku    backward: 2 of 5 trainable parameters got no gradient: gate.weight, gate.bias" in lines
    assert "      fix: use them in the graph of training_loss, or delete them; a tensor that should not learn is a " \
           "buffer (register_buffer) or a parameter with requires_grad=False" in lines
    builds = next(l for l in lines if l.startswith("FAIL  maze      builds"))
    assert "no preset 'smoke' for model 'rbtestunused' on task 'maze'" in builds
    assert sum(l.startswith("SKIP  maze") for l in lines) == 8
    assert lines[-1].startswith("9 passed, 2 failed, 8 skipped")
    unknown = call_cli("check-plugin", "nosuchmodel")
    assert unknown.returncode == 2 and "unknown model 'nosuchmodel'" in unknown.stderr
