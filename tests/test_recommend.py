"""Recommendations in raw IDs from a saved run, checked on hand-set embeddings."""

import numpy as np
import pytest
import torch
from _tiny_runs import train_tiny, write_tiny_csv

from uibrec.analysis.scores import NoBoundaryError
from uibrec.data.candidates import seen_items_csr
from uibrec.recommend import UnknownIdError, load, recommend, wants


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    return train_tiny(root, "uib"), train_tiny(root, "native")


@pytest.fixture
def hand_run(folders):
    """The UIB run with item j scoring j for every user and boundary 9.5 for all users."""
    run = load(folders[0])
    model, head = run.model, run.boundary
    with torch.no_grad():
        model.user_embedding.zero_()
        model.user_embedding[:, 0] = 1.0
        model.item_embedding.zero_()
        model.item_embedding[:, 0] = torch.arange(model.num_items, dtype=torch.float32)
        head.linear.weight.zero_()
        head.linear.bias.fill_(9.5)
    return run


def _seen(run, user_id):
    indptr, indices = seen_items_csr(run.split()[0])
    u = run.user_map.to_idx(user_id)
    return set(run.item_map.to_id(indices[indptr[u]:indptr[u + 1]]).tolist())


def test_top_k_with_seen_items_kept(hand_run):
    table = recommend(hand_run, [100, 105], k=3, exclude_seen=False)
    # every user: items 14, 13, 12 (raw IDs 1014, 1013, 1012), all above 9.5
    assert table["user_id"].tolist() == [100] * 3 + [105] * 3
    assert table["rank"].tolist() == [1, 2, 3] * 2
    assert table["item_id"].tolist() == [1014, 1013, 1012] * 2
    assert table["score"].tolist() == [14.0, 13.0, 12.0] * 2
    assert table["boundary"].tolist() == [9.5] * 6
    assert table["above_boundary"].all()


def test_seen_items_are_dropped(hand_run):
    table = recommend(hand_run, [100], k=15)
    seen = _seen(hand_run, 100)
    assert not seen & set(table["item_id"])
    assert len(table) == 15 - len(seen)
    expected = [i for i in range(1014, 999, -1) if i not in seen]
    assert table["item_id"].tolist() == expected


def test_only_above_boundary(hand_run):
    table = recommend(hand_run, ["100"], k=8, exclude_seen=False, only_above_boundary=True)
    # items 10..14 score above 9.5; item 9 and below do not: 5 of the 8 remain
    assert table["item_id"].tolist() == [1014, 1013, 1012, 1011, 1010]


def test_wants(hand_run):
    table = wants(hand_run, 100, [1009, 1010, 1003])
    assert table["wanted"].tolist() == [False, True, False]
    assert table["score"].tolist() == [9.0, 10.0, 3.0]
    assert wants(hand_run, 100, [1010], offset=1.0)["wanted"].tolist() == [False]


def test_unknown_ids_get_a_clear_error(hand_run):
    with pytest.raises(UnknownIdError, match="unknown user ID 'nobody'"):
        recommend(hand_run, ["nobody"])
    with pytest.raises(UnknownIdError, match=r"unknown item ID 999.*1000"):
        wants(hand_run, 100, [1000, 999])
    with pytest.raises(ValueError, match="k must be"):
        recommend(hand_run, [100], k=0)


def test_native_run_has_no_boundary(folders):
    table = recommend(folders[1], [100, 101], k=2)
    assert list(table.columns) == ["user_id", "rank", "item_id", "score"]
    assert np.all(np.diff(table["score"].to_numpy().reshape(2, 2), axis=1) <= 0)
    with pytest.raises(NoBoundaryError, match="'bpr' loss.*--loss uib"):
        recommend(folders[1], [100], only_above_boundary=True)
    with pytest.raises(NoBoundaryError):
        wants(folders[1], 100, [1000])


@pytest.mark.parametrize("which", [0, 1])  # the UIB run (with boundary) and the native one
def test_no_users_give_an_empty_table_with_the_usual_columns(folders, which):
    # Was "ValueError: No objects to concatenate".
    run = load(folders[which])
    empty = recommend(run, [], k=3)
    usual = recommend(run, [100], k=3)
    assert len(empty) == 0 and len(usual) == 3
    assert list(empty.columns) == list(usual.columns)
    assert list(empty.columns)[:4] == ["user_id", "rank", "item_id", "score"]
    assert empty.dtypes.equals(usual.dtypes)


def test_user_removed_by_the_filter_is_named_as_such(tmp_path):
    from click.testing import CliRunner

    from uibrec.cli import main

    csv = write_tiny_csv(tmp_path)
    with csv.open("a") as out:  # user 999: two interactions, under the default 5
        out.write("999,1000\n999,1001\n")
    run_dir = train_tiny(tmp_path, "uib")
    with pytest.raises(UnknownIdError) as info:
        recommend(run_dir, [999], k=3)
    assert str(info.value) == (
        f"{run_dir}: user ID 999 was removed by the min_user_interactions=5 filter: it has 2 "
        f"interactions in {csv}")
    result = CliRunner().invoke(main, ["recommend", str(run_dir), "--user", "999"])
    assert "user ID '999' was removed by the min_user_interactions=5 filter" in result.output
    # An ID the file never held keeps the usual message.
    with pytest.raises(UnknownIdError, match="unknown user ID 998: not in this dataset"):
        recommend(run_dir, [998], k=3)
