"""Published splits read as they are: NCF's files and RecBole's .inter files."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from uibrec.data.fixed_splits import read_ncf_split, read_recbole_split
from uibrec.data.readers import DataFormatError
from uibrec.evaluation import Evaluator


class ItemIndexScores(torch.nn.Module):
    """Scores each item by its own index: the highest index ranks first."""

    def prepare(self):
        pass

    def score(self, user_idx, item_idx):
        return item_idx.to(torch.float32)


def write_ncf(folder: Path, train=True, negative_lines=None) -> Path:
    folder.mkdir(exist_ok=True)
    if train:
        (folder / "toy.train.rating").write_text(
            "0\t1\t5\t100\n0\t2\t4\t101\n1\t0\t3\t102\n1\t3\t2\t103\n2\t5\t1\t104\n")
    (folder / "toy.test.rating").write_text("0\t4\t5\t200\n1\t6\t3\t201\n2\t0\t4\t202\n")
    (folder / "toy.test.negative").write_text("\n".join(negative_lines or [
        "(0,4)\t3\t7\t8", "(1,6)\t7\t2\t5", "(2,0)\t1\t3\t6"]) + "\n")
    return folder


def test_ncf_split_as_published(tmp_path):
    split, candidates = read_ncf_split(write_ncf(tmp_path / "ncf"))
    assert (split.num_users, split.num_items) == (3, 9)  # indices 0..8 as written
    assert split.eval_users.tolist() == [0, 1, 2]
    assert split.test_items.tolist() == [4, 6, 0]
    assert split.valid_items.tolist() == split.test_items.tolist()  # no validation file
    assert candidates.tolist() == [[3, 7, 8], [7, 2, 5], [1, 3, 6]]
    assert split.train.user_idx.tolist() == [0, 0, 1, 1, 2]
    assert split.train.item_idx.tolist() == [1, 2, 0, 3, 5]
    assert split.train.timestamp.tolist() == [100, 101, 102, 103, 104]
    assert split.report == {"train rows": 5, "validation is the test set": True,
                            "candidates equal to the test item": 0,
                            "candidates among training items": 0}


def test_ncf_split_scored_exactly(tmp_path):
    split, candidates = read_ncf_split(write_ncf(tmp_path / "ncf"))
    evaluator = Evaluator(split, candidates)
    # Scores = item index. User 0: 4 vs 3, 7, 8 -> rank 2. User 1: 6 vs 7, 2, 5 -> rank 1.
    # User 2: 0 vs 1, 3, 6 -> rank 3.
    assert evaluator.ranks(ItemIndexScores(), "test").tolist() == [2, 1, 3]
    metrics = evaluator.evaluate(ItemIndexScores(), "test")
    assert metrics["hit@1"] == 0.0 and metrics["hit@10"] == 1.0
    assert metrics["mrr@10"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 4) / 3)


def test_ncf_split_by_prefix_and_unsorted_users(tmp_path):
    folder = write_ncf(tmp_path / "ncf", negative_lines=[
        "(2,0)\t1\t3\t6", "(0,4)\t3\t7\t8", "(1,6)\t7\t2\t5"])
    (folder / "toy.test.rating").write_text("2\t0\t4\t202\n0\t4\t5\t200\n1\t6\t3\t201\n")
    split, candidates = read_ncf_split(folder / "toy")
    assert split.eval_users.tolist() == [0, 1, 2] and split.test_items.tolist() == [4, 6, 0]
    assert candidates.tolist() == [[3, 7, 8], [7, 2, 5], [1, 3, 6]]


def test_ncf_candidates_that_are_positives_are_kept_and_counted(tmp_path, caplog):
    folder = write_ncf(tmp_path / "ncf", negative_lines=[
        "(0,4)\t4\t1\t8", "(1,6)\t7\t2\t5", "(2,0)\t1\t3\t6"])
    with caplog.at_level(logging.WARNING):
        split, candidates = read_ncf_split(folder)
    assert candidates[0].tolist() == [4, 1, 8]
    assert split.report["candidates equal to the test item"] == 1
    assert split.report["candidates among training items"] == 1  # user 0 trained on item 1
    assert "own positives" in caplog.text


def test_ncf_without_train_file(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        split, candidates = read_ncf_split(write_ncf(tmp_path / "ncf", train=False))
    assert len(split.train) == 0 and split.num_users == 3 and candidates.shape == (3, 3)
    assert "no train file" in caplog.text


@pytest.mark.parametrize("lines, message", [
    (["(0,4)\t3\t7\t8", "(1,5)\t7\t2\t5", "(2,0)\t1\t3\t6"],
     r"toy.test.negative, line 2: \(1,5\) is not a test pair of toy.test.rating"),
    (["(0,4)\t3\t7\t8", "(1,6)\t7\t2", "(2,0)\t1\t3\t6"],
     r"toy.test.negative, line 2: 2 negatives where the first line has 3"),
    (["(0,4)\t3\t7\t8", "1\t6\t7\t2\t5", "(2,0)\t1\t3\t6"],
     r"line 2: expected '\(user,item\)' first, got '1'"),
    (["(0,4)\t3\t7\t8", "(1,6)\t7\tx\t5", "(2,0)\t1\t3\t6"],
     r"line 2: expected item indices, got 'x'"),
    (["(0,4)\t3\t7\t8", "(2,0)\t1\t3\t6"],
     r"toy.test.negative: no negatives for 1 test users of toy.test.rating \(e.g. \[1\]\)"),
])
def test_ncf_bad_negatives(tmp_path, lines, message):
    with pytest.raises(DataFormatError, match=message):
        read_ncf_split(write_ncf(tmp_path / "ncf", negative_lines=lines))


def test_ncf_two_test_rows_for_a_user(tmp_path):
    folder = write_ncf(tmp_path / "ncf")
    (folder / "toy.test.rating").write_text("0\t4\t5\t200\n1\t6\t3\t201\n0\t0\t4\t202\n")
    with pytest.raises(DataFormatError, match=r"toy.test.rating, line 3: user 0 has a second "
                                              r"test row"):
        read_ncf_split(folder)


def _shared_data() -> Path | None:
    root = os.environ.get("UIBREC_DATA_DIR") or Path(__file__).parents[1] / ".." / "shared" / "data"
    return Path(root) if Path(root).is_dir() else None


def test_real_ncf_ml1m_test_files():
    data = _shared_data()
    if data is None or not (data / "ml-1m" / "ncf-test").is_dir():
        pytest.skip("shared data folder not found")
    split, candidates = read_ncf_split(data / "ml-1m" / "ncf-test")
    assert (len(split.eval_users), split.num_items) == (6040, 3706)
    assert candidates.shape == (6040, 99) and len(split.train) == 0
    assert split.test_items[:3].tolist() == [25, 133, 207]
    assert candidates[0, :3].tolist() == [1064, 174, 2791]
    # NCF drew these negatives without excluding the held-out item: counted, kept.
    assert split.report["candidates equal to the test item"] == 156


def write_inter(path: Path, rows: list[str]) -> None:
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    + "".join(row + "\n" for row in rows))


def test_recbole_split_with_validation(tmp_path):
    write_inter(tmp_path / "toy.train.inter", ["u2\tb\t5\t1", "u1\ta\t4\t2", "u1\tc\t3\t3"])
    write_inter(tmp_path / "toy.valid.inter", ["u1\tb\t5\t4", "u2\td\t2\t5"])
    write_inter(tmp_path / "toy.test.inter", ["u2\ta\t1\t7", "u1\td\t3\t6"])
    split, candidates = read_recbole_split(tmp_path, "toy")
    assert candidates is None
    assert list(split.user_map.ids) == ["u1", "u2"]
    assert list(split.item_map.ids) == ["a", "b", "c", "d"]
    assert split.eval_users.tolist() == [0, 1]
    assert split.valid_items.tolist() == [1, 3] and split.test_items.tolist() == [3, 0]
    assert split.train.user_idx.tolist() == [1, 0, 0]
    assert split.train.item_idx.tolist() == [1, 0, 2]
    assert split.report == {"train rows": 3, "validation is the test set": False}


def test_recbole_split_without_validation(tmp_path):
    write_inter(tmp_path / "toy.train.inter", ["1\t10\t5\t1", "2\t11\t4\t2"])
    write_inter(tmp_path / "toy.test.inter", ["1\t11\t5\t3", "2\t10\t5\t4"])
    split, _ = read_recbole_split(tmp_path)
    assert split.valid_items.tolist() == split.test_items.tolist() == [1, 0]
    assert split.report["validation is the test set"] is True


def test_recbole_split_that_is_not_leave_one_out(tmp_path):
    write_inter(tmp_path / "toy.train.inter", ["1\t10\t5\t1"])
    write_inter(tmp_path / "toy.test.inter", ["1\t11\t5\t3", "2\t10\t5\t4", "1\t12\t5\t5"])
    with pytest.raises(DataFormatError, match=r"toy.test.inter, line 4: a second row for this "
                                              r"user: only leave-one-out splits"):
        read_recbole_split(tmp_path, "toy")


def test_evaluator_full_ranking_on_a_recbole_split(tmp_path):
    write_inter(tmp_path / "toy.train.inter", ["1\t10\t5\t1", "2\t11\t4\t2", "2\t12\t4\t2"])
    write_inter(tmp_path / "toy.test.inter", ["1\t11\t5\t3", "2\t10\t5\t4"])
    split, _ = read_recbole_split(tmp_path, "toy")
    model = ItemIndexScores()
    model.score_all = lambda users: torch.arange(split.num_items, dtype=torch.float32).repeat(
        len(users), 1)
    # User 1 (trained on item 0): test item 1 vs item 2 -> rank 1. User 2 (trained on 1, 2):
    # test item 0, nothing left to compete -> rank 0.
    ranks = Evaluator(split, None).ranks(model, "test", protocol="full")
    assert ranks.tolist() == [1, 0] and np.all(split.eval_users == [0, 1])
