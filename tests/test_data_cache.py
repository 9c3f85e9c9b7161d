"""The data cache trusts only its own files: whatever lies in a recipe's place (another recipe's
valid cache, random bytes, a truncated file, tampered tensors, an older layout) is ignored, the
data rebuilt, and the file replaced by a valid one for this recipe."""

from __future__ import annotations

import os

import pytest
import torch

from reasonbench.tasks import base
from reasonbench.tasks.sudoku import SudokuTask

ARGS = dict(num_train=8, num_val=2, num_test=4, num_blanks=6, batch_size=4, eval_batch_size=4)


def task(**kwargs) -> SudokuTask:
    return SudokuTask(**{**ARGS, **kwargs})


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """How many times the data was built (not loaded from the cache)."""
    calls: list[int] = []
    original = SudokuTask.build

    def counted(self):  # noqa: ANN001, ANN202
        calls.append(self.data_seed)
        return original(self)

    monkeypatch.setattr(SudokuTask, "build", counted)
    return calls


@pytest.fixture
def reference(monkeypatch) -> dict[str, torch.Tensor]:
    """The splits of this recipe built with no cache at all."""
    with monkeypatch.context() as patch:
        patch.setenv("REASONBENCH_DATA_CACHE", "off")
        fresh = task(data_seed=5)
        fresh.setup()
        assert not fresh.cache_path().exists()
    return {name: split.inputs.clone() for name, split in fresh.splits.items()} | {"fingerprint": fresh.fingerprint}


def foreign_cache(path) -> bytes:  # noqa: ANN001
    """A complete, valid cache file of another recipe (another data seed), moved to ``path``."""
    other = task(data_seed=6)
    other.setup()
    data = other.cache_path().read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def truncated(path) -> bytes:  # noqa: ANN001
    """This recipe's own valid cache file, cut in half."""
    own = task(data_seed=5)
    own.setup()
    data = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(data)
    return data


def random_bytes(path) -> bytes:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(4096)
    path.write_bytes(data)
    return data


def tampered(path) -> bytes:  # noqa: ANN001
    """This recipe's own file with its key and recipe intact and one answer changed."""
    own = task(data_seed=5)
    own.setup()
    stored = torch.load(path, weights_only=True)
    stored["splits"]["test"]["labels"][0, 0] = 2 if stored["splits"]["test"]["labels"][0, 0] != 2 else 3
    torch.save(stored, path)
    return path.read_bytes()


def old_layout(path) -> bytes:  # noqa: ANN001
    """This recipe's data in the layout before the cache carried its key and fingerprint."""
    own = task(data_seed=5)
    own.setup()
    stored = torch.load(path, weights_only=True)
    torch.save({"recipe": stored["recipe"], "splits": stored["splits"]}, path)
    return path.read_bytes()


def wrong_structure(path) -> bytes:  # noqa: ANN001
    """This recipe's key and recipe, but a split missing."""
    own = task(data_seed=5)
    own.setup()
    stored = torch.load(path, weights_only=True)
    del stored["splits"]["val"]
    torch.save(stored, path)
    return path.read_bytes()


@pytest.mark.parametrize("plant", [foreign_cache, random_bytes, truncated, tampered, old_layout, wrong_structure])
def test_a_file_in_the_recipes_place_is_rebuilt_not_trusted(plant, builds, reference, data_cache):
    path = task(data_seed=5).cache_path()
    planted = plant(path)
    builds.clear()
    built = task(data_seed=5)
    built.setup()
    assert builds == [5], "the planted file was used instead of building"
    for name, inputs in reference.items():
        if name != "fingerprint":
            assert torch.equal(built.splits[name].inputs, inputs), name
    assert built.fingerprint == reference["fingerprint"]
    # the planted file was replaced, atomically (no temporary left), by a valid one of this recipe
    assert path.read_bytes() != planted
    assert not list(path.parent.glob("*.tmp"))
    stored = torch.load(path, weights_only=True)
    assert stored["format"] == base.CACHE_FORMAT and stored["key"] == built.recipe_key()
    assert stored["fingerprint"] == reference["fingerprint"]
    again = task(data_seed=5)
    again.setup()
    assert builds == [5], "the rebuilt file is used next time"
    assert again.fingerprint == reference["fingerprint"]


def test_a_valid_file_is_loaded_without_building(builds, data_cache):
    first = task(data_seed=9)
    first.setup()
    assert builds == [9]
    second = task(data_seed=9)
    second.setup()
    assert builds == [9] and second.fingerprint == first.fingerprint
    assert torch.equal(second.splits["train"].labels, first.splits["train"].labels)
