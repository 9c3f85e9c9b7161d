import numpy as np
import pytest
import torch

from reasonbench.util.errors import UserError
from reasonbench.tasks.sudoku import SudokuTask
from reasonbench.tasks.sudoku import data as sd
from reasonbench.tasks.sudoku.grid import canonical_form, is_consistent, is_solved_grid, parse_grid

Q = "..............3.85..1.2.......5.7.....4...1...9.......5......73..2.1........4...9"
A = "987654321246173985351928746128537694634892157795461832519286473472319568863745219"


def small(**kwargs) -> SudokuTask:
    args = dict(num_train=20, num_val=4, num_test=8, num_blanks=10, batch_size=4, eval_batch_size=8)
    task = SudokuTask(**{**args, **kwargs})
    task.setup()
    return task


def test_reference_encoding():
    ids = sd.encode(parse_grid(Q))
    assert ids.dtype == np.int64 and ids.shape == (81,)
    assert ids[0] == 1 and ids[14] == 4  # blank -> 1, digit 3 -> 4
    assert set(np.unique(sd.encode(parse_grid(A)))) == set(range(2, 11))
    assert (sd.decode(ids) == parse_grid(Q)).all()
    meta = small().metadata
    assert (meta.vocab_size, meta.seq_len, meta.num_puzzle_ids, meta.pad_id) == (11, 81, 1, 0)


def test_generated_splits_sizes_labels_and_validity():
    task = small()
    assert task.sizes() == {"val": 4, "test": 8, "train": 20}
    for split in task.splits.values():
        for q_ids, a_ids in zip(split.inputs, split.labels):
            q, a = sd.decode(q_ids.numpy()), sd.decode(a_ids.numpy())
            assert (q == 0).sum() == 10 and is_solved_grid(a) and is_consistent(q, a)
        assert (split.puzzle_ids == 0).all()
    batch = next(iter(task.train_dataloader()))
    assert set(batch) == {"inputs", "labels", "puzzle_ids"}
    assert batch["inputs"].shape == (4, 81) and batch["labels"].min() >= 2  # every cell supervised


def test_generation_is_deterministic_and_seeded():
    a, b, c = small(), small(), small(data_seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert torch.equal(a.splits["test"].inputs, b.splits["test"].inputs)


def test_no_test_puzzle_is_equivalent_to_a_training_puzzle():
    task = small(num_train=40, num_test=20, num_blanks=4)
    forms = {name: {canonical_form(sd.decode(x.numpy())) for x in task.splits[name].inputs}
             for name in ("train", "val", "test")}
    assert len(forms["test"]) == 20
    assert not forms["test"] & (forms["train"] | forms["val"])


def test_augmentations_multiply_training_set_and_stay_valid():
    task = small(augmentations=3)
    train = task.splits["train"]
    assert len(train) == 80 and len(task.splits["test"]) == 8  # test is never augmented
    for q_ids, a_ids in zip(train.inputs[20:], train.labels[20:]):
        q, a = sd.decode(q_ids.numpy()), sd.decode(a_ids.numpy())
        assert is_solved_grid(a) and is_consistent(q, a)
    # each copy is the same puzzle up to symmetry
    for k in (0, 20, 40, 60):
        assert canonical_form(sd.decode(train.inputs[k].numpy())) == canonical_form(sd.decode(train.inputs[0].numpy()))


def write_csv(path, rows):
    path.write_text("\n".join(["source,question,answer,rating", *rows]) + "\n")


def test_reads_reference_directory(tmp_path):
    rng = np.random.default_rng(0)
    from reasonbench.tasks.sudoku.grid import make_puzzle, random_solved_grid

    def rows(n):
        out = []
        for _ in range(n):
            a = random_solved_grid(rng)
            out.append(f"gen,{sd.format_grid(make_puzzle(a, rng, 30))},{sd.format_grid(a)},7")
        return out

    write_csv(tmp_path / "train.csv", rows(12))
    write_csv(tmp_path / "test.csv", rows(5))
    task = small(path=str(tmp_path), num_train=8, num_val=2, num_test=None)
    assert task.sizes() == {"val": 2, "test": 5, "train": 8}
    assert (task.splits["test"].info["rating"] == 7).all()


@pytest.mark.parametrize("bad, message", [
    (f"x,{Q[:-1]},{A},1", "expected 81 cells, got 80"),
    (f"x,{Q},{A[:-1]}1,1", "answer is not a solved Sudoku grid"),
    (f"x,{Q[:-1]}8,{A},1", "answer contradicts a clue"),
    (f"x,{Q},{A}", "expected 4 fields, got 3"),
    (f"x,{Q},{A},hard", "rating 'hard' is not an integer"),
])
def test_invalid_row_names_file_and_line(tmp_path, bad, message):
    path = tmp_path / "data.csv"
    write_csv(path, [f"x,{Q},{A},0", f"x,{Q},{A},0", bad, f"x,{Q},{A},0"])
    with pytest.raises(UserError, match=rf"data.csv:4: .*{message}"):
        sd.read_csv(path)
    rows = sd.read_csv(path, skip_invalid=True)
    assert len(rows.questions) == 3 and rows.skipped == 1


def test_rows_checked_in_chunks_agree_with_the_row_by_row_check(tmp_path, monkeypatch):
    """The vectorised reader keeps and refuses exactly the rows ``_parse_row`` keeps and
    refuses, in file order, across chunk boundaries (chunks of 4 rows here)."""
    monkeypatch.setattr(sd, "_CHUNK_ROWS", 4)
    rng = np.random.default_rng(3)
    from reasonbench.tasks.sudoku.grid import augment, format_grid
    good = []
    for i in range(9):
        q, a = augment(parse_grid(Q), parse_grid(A), rng)
        good.append(f"s{i},{format_grid(q)},{format_grid(a)},{i}")
    odd_but_valid = [f"w, {Q.replace('.', '0')} ,{A}, ", f"n,{Q},{A},-4"]  # padding, '0' blanks, no/negative rating
    bad = [f"x,{Q},{A},1,2", f"x,{Q[:-1]}\u0665,{A},2", f"x,{Q},{A[:9] * 9},1", f"x,{Q},{A},{10**30}"]
    rows = good[:3] + bad[:1] + good[3:5] + odd_but_valid + bad[1:] + good[5:]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(["source,question,answer,rating", *rows]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"data.csv:5: expected 4 fields, got 5"):
        sd.read_csv(path)
    got = sd.read_csv(path, skip_invalid=True)
    kept = [r for r in rows if r not in bad]
    assert got.skipped == 4 and got.sources == [r.split(",")[0] for r in kept]
    want = [sd._parse_row(r.split(",")) for r in kept]
    assert np.array_equal(got.questions, np.stack([w[0] for w in want]))
    assert np.array_equal(got.answers, np.stack([w[1] for w in want]))
    assert got.ratings.tolist() == [w[2] for w in want] and got.ratings[6] == -4 and got.ratings[5] == 0
    path.write_text("\n".join(["source,question,answer,rating", *good[:5], bad[3]]) + "\n")
    with pytest.raises(UserError, match=r"data.csv:7: rating 10{30} is out of range"):
        sd.read_csv(path)


def test_bad_header_is_line_one(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(f"q,a\n{Q},{A}\n")
    with pytest.raises(UserError, match=r"data.csv:1: expected header"):
        sd.read_csv(path)


def test_render_marks_wrong_cells():
    task = small()
    split = task.splits["test"]
    wrong = split.labels[0].clone()
    wrong[0] = 2 if wrong[0] != 2 else 3
    picture = task.render(split.inputs[0], wrong, split.labels[0])
    assert picture.count("*") == 1 and len(picture.splitlines()) == 11


def test_built_data_is_cached_by_recipe(data_cache):
    first = small(data_seed=7)
    path = first.cache_path()
    assert path.is_file() and path.parent.parent == data_cache
    again = small(data_seed=7)
    assert again.fingerprint == first.fingerprint
    assert torch.equal(again.splits["train"].labels, first.splits["train"].labels)
    path.write_bytes(b"corrupt")  # a broken cache file is rebuilt, not trusted
    rebuilt = small(data_seed=7)
    assert rebuilt.fingerprint == first.fingerprint
    assert small(data_seed=8).cache_path() != path


def test_edited_csv_is_not_served_from_cache(tmp_path):
    path = tmp_path / "all.csv"
    write_csv(path, [f"x,{Q},{A},{k}" for k in range(12)])
    before = small(path=str(path), num_train=4, num_val=2, num_test=3).cache_path()
    write_csv(path, [f"x,{Q},{A},{k}" for k in range(13)])
    assert small(path=str(path), num_train=4, num_val=2, num_test=3).cache_path() != before


def test_extreme_generator_gives_unique_minimal_rated_puzzles_whatever_the_workers(monkeypatch):
    from reasonbench.tasks.sudoku.grid import count_solutions, rating

    args = dict(generator="extreme", num_train=3, num_val=1, num_test=2, hard_fraction=0.5, hard_mean=3.0)
    one = small(workers=1, **args)
    assert one.recipe()["hard"] == [0.5, 3.0] and one.recipe()["num_blanks"] is None
    test = one.splits["test"]
    for q_ids, a_ids, r in zip(test.inputs, test.labels, test.info["rating"]):
        q, a = sd.decode(q_ids.numpy()), sd.decode(a_ids.numpy())
        assert count_solutions(q) == 1 and is_consistent(q, a) and rating(q) == int(r)
        # minimal: no clue can go
        for cell in np.flatnonzero(q):
            probe = q.copy()
            probe[cell] = 0
            assert count_solutions(probe) == 2
    monkeypatch.setenv("REASONBENCH_DATA_CACHE", "off")  # build again for real, in two processes
    two = small(workers=2, **args)
    assert two.fingerprint == one.fingerprint


def test_extreme_generator_uses_every_available_core_by_default(monkeypatch):
    """workers 0 starts one process per core this process may use (a fake pool counts them,
    running the same function in threads); the puzzles are those of one process."""
    from concurrent.futures import ThreadPoolExecutor

    from reasonbench.tasks.sudoku import task as sudoku_task

    started = []

    class CountingPool(ThreadPoolExecutor):
        def __init__(self, workers, mp_context=None):  # noqa: ANN001
            started.append(workers)
            super().__init__(workers)

    monkeypatch.setenv("REASONBENCH_DATA_CACHE", "off")
    args = dict(generator="extreme", num_train=3, num_val=1, num_test=2, hard_fraction=0.5, hard_mean=3.0)
    one = small(workers=1, **args)
    monkeypatch.setattr(sudoku_task, "ProcessPoolExecutor", CountingPool)
    monkeypatch.setattr(sudoku_task, "available_cores", lambda: 5)
    every = small(**args)  # workers 0: the default
    assert started and set(started) == {5}
    assert every.fingerprint == one.fingerprint
    started.clear()
    assert small(workers=3, **args).fingerprint == one.fingerprint and set(started) == {3}


def test_available_cores_follow_the_affinity_mask():
    import os

    from reasonbench.tasks.sudoku.task import available_cores

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cores() == expected >= 1
