import sys

import pytest

from reasonbench.config import registry
from reasonbench.util.errors import UnknownNameError, UserError

from .conftest import QUIET, run_cli

GOOD = """
from reasonbench_plugins.transformer import TransformerModel

class EchoModel(TransformerModel):
    pass
"""

BROKEN = """
raise ImportError("needs flash_attn, which is not installed")
"""


def test_builtins_are_registered():
    assert "transformer" in registry.list_models()
    assert "sudoku" in registry.list_tasks()
    entry = registry.entries("model")["transformer"]
    assert entry.builtin and entry.dist == "reasonbench"


def test_discovery_is_lazy(plugin_path):
    plugin_path("rbtest-lazy", "rbtest_lazy", GOOD, {"lazyecho": "rbtest_lazy:EchoModel"})
    assert "lazyecho" in registry.list_models()
    assert "rbtest_lazy" not in sys.modules  # listed without importing
    cls = registry.get_model("lazyecho")
    assert cls.__name__ == "EchoModel" and "rbtest_lazy" in sys.modules


def test_broken_plugin_is_isolated(plugin_path):
    plugin_path("rbtest-broken", "rbtest_broken", BROKEN, {"broken": "rbtest_broken:Model"})
    assert registry.get_model("transformer").__name__ == "TransformerModel"
    with pytest.raises(UserError, match="needs flash_attn"):
        registry.get_model("broken")
    assert registry.entries("model")["broken"].status().startswith("broken: ImportError: needs flash_attn")


def test_builtin_wins_and_duplicate_is_reported(plugin_path):
    plugin_path("rbtest-dup", "rbtest_dup", GOOD, {"transformer": "rbtest_dup:EchoModel"})
    entry = registry.entries("model")["transformer"]
    assert entry.builtin
    assert entry.shadowed == ["rbtest_dup:EchoModel (from rbtest-dup)"]
    assert registry.get_model("transformer").__module__ == "reasonbench_plugins.transformer.model"


def test_two_third_party_plugins_with_one_name_conflict(plugin_path):
    plugin_path("rbtest-a", "rbtest_a", GOOD, {"twin": "rbtest_a:EchoModel"})
    plugin_path("rbtest-b", "rbtest_b", GOOD, {"twin": "rbtest_b:EchoModel"})
    with pytest.raises(UserError, match="claimed by both"):
        registry.get_model("twin")


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        registry.get_task("chess")
    assert str(info.value) == "unknown task 'chess'; valid tasks: arc, maze, sudoku"


def test_list_marks_broken_plugin_and_run_of_others_still_works(plugin_path, tmp_path):
    root = plugin_path("rbtest-broken2", "rbtest_broken2", BROKEN, {"broken2": "rbtest_broken2:Model"})
    listed = run_cli("list", extra_path=root)
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if " broken2 " in l)
    assert "broken: ImportError: needs flash_attn" in line
    asked = run_cli("run", "--model", "broken2", "--task", "sudoku", extra_path=root)
    assert asked.returncode == 2
    assert asked.stderr.strip().count("\n") == 0 and "failed to load" in asked.stderr


def test_third_party_plugin_runs_end_to_end_with_its_own_presets(plugin_path, tmp_path):
    presets = {  # beside the model: presets/<task>/<preset>.yaml
        "sudoku/smoke.yaml": """
            model: {hidden_size: 16, num_layers: 1, num_heads: 2}
            trainer: {max_steps: 3, enable_model_summary: false}
            measure: {flops_examples: 2}
        """,
    }
    root = plugin_path("rbtest-echo", "rbtest_echo", GOOD, {"echo": "rbtest_echo:EchoModel"}, presets=presets)
    out = tmp_path / "results"
    result = run_cli("run", "--model", "echo", "--task", "sudoku", "--out", str(out), *QUIET, extra_path=root)
    assert result.returncode == 0, result.stderr
    assert (out / "echo" / "sudoku" / "smoke" / "seed0.json").is_file()


def test_a_model_without_a_preset_for_the_task_runs_on_its_own_defaults_and_says_so(plugin_path, tmp_path):
    """The earlier layout (presets/models/<model>/<task>/) is read too; on a task without one of
    the model's presets the task's preset runs with the model's constructor defaults, which the
    summary and the record say."""
    presets = {"models/echo2/maze/smoke.yaml": "model: {hidden_size: 16, num_layers: 1, num_heads: 2}\n"}
    root = plugin_path("rbtest-echo2", "rbtest_echo2", GOOD, {"echo2": "rbtest_echo2:EchoModel"}, presets=presets)
    info = run_cli("info", "--model", "echo2", "--task", "maze", extra_path=root)
    assert info.returncode == 0, info.stderr
    assert "model       echo2 (preset smoke)\n" in info.stdout
    out = tmp_path / "results"
    result = run_cli("run", "--model", "echo2", "--task", "sudoku", "--out", str(out), "--trainer.max_steps", "2",
                     "--measure.flops_examples", "1", *QUIET, extra_path=root)
    assert result.returncode == 0, result.stderr
    assert "the model's own defaults: it has no 'smoke' preset for sudoku" in result.stdout
    import json
    record = json.loads((out / "echo2" / "sudoku" / "smoke" / "seed0.json").read_text())
    assert record["provenance"]["model_preset"] is False
    info = run_cli("info", "--model", "echo2", "--task", "sudoku", extra_path=root)
    assert "(preset smoke: none for this task, the model's own defaults)" in info.stdout
