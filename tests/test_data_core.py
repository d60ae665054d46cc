import gzip

import numpy as np
import pytest

import uibrec
from uibrec.data import registry
from uibrec.data.readers import DataFormatError, read_csv_with_header, read_movielens_dat
from uibrec.data.split import no_users_left


def test_raw_ids_and_indices_map_both_ways():
    data = uibrec.Interactions.from_raw(["b", "a", "b"], [30, 10, 20])
    assert list(data.user_map.ids) == ["a", "b"]
    assert data.user_idx.tolist() == [1, 0, 1]
    assert data.item_map.to_idx([20, 30]).tolist() == [1, 2]
    assert data.item_map.to_idx("20") == 1  # a number given as text still matches
    assert data.item_map.to_id([2]).tolist() == [30]
    with pytest.raises(KeyError, match="unknown item 99"):
        data.item_map.to_idx([99], kind="item")


def test_movielens_dat_format(tmp_path):
    path = tmp_path / "ratings.dat.gz"
    with gzip.open(path, "wt") as out:
        out.write("1::1193::5::978300760\n1::661::3::978302109\n\n2::1193::4::978298413\n")
    data = read_movielens_dat(path)
    assert len(data) == 3 and data.num_users == 2 and data.num_items == 2
    assert data.rating.tolist() == [5, 3, 4]
    assert data.timestamp.tolist() == [978300760, 978302109, 978298413]
    assert data.item_map.ids.tolist() == [661, 1193]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::1193::5::978300760\n1::661::x::978302109\n")
    with pytest.raises(DataFormatError, match=r"ratings.dat, line 2: expected a number for "
                                              r"rating, got 'x'"):
        read_movielens_dat(path)


def test_csv_header_is_matched_case_insensitively(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("User,Item,Rating\n1,5,3\n2,5,4\n")
    data = read_csv_with_header(path)
    assert data.user_map.ids.tolist() == [1, 2] and data.rating.tolist() == [3, 4]


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(KeyError, match="known datasets: .*ml-100k.*ml-1m"):
        uibrec.load_dataset("ml-2m")


def test_missing_dataset_offline_says_what_to_put_where(tmp_path, monkeypatch):
    def offline(name, timeout=30.0):
        raise OSError("network unreachable")

    monkeypatch.setattr(registry, "download", offline)
    monkeypatch.delenv("UIBREC_DATA_DIR", raising=False)
    (tmp_path / "nothing").mkdir()  # a data folder without the dataset (a missing folder
    # is an error of its own, before any download)
    with pytest.raises(registry.DatasetNotFoundError) as info:
        uibrec.load_dataset("ml-1m", data_dir=tmp_path / "nothing")
    message = str(info.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert "ml-1m/ratings.dat" in message and str(tmp_path / "nothing") in message


def test_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, rows in ((first, "1\t2\t3\t4\n"), (second, "1\t2\t3\t4\n5\t6\t7\t8\n")):
        (folder / "ml-100k").mkdir(parents=True)
        (folder / "ml-100k" / "u.data").write_text(rows)
    monkeypatch.setenv("UIBREC_DATA_DIR", str(second))
    assert len(uibrec.load_dataset("ml-100k", data_dir=first)) == 1
    assert len(uibrec.load_dataset("ml-100k")) == 2


def test_official_ml1m_lines_on_real_data(data_dir):
    data = read_movielens_dat(data_dir / "ml-1m" / "official-users-1-2999" / "ratings.dat.gz")
    assert (len(data), data.num_users, data.num_items) == (487_650, 2_999, 3_615)
    assert np.isin(data.rating, [1, 2, 3, 4, 5]).all()


def test_sorted_unique_is_numpy_unique():
    from uibrec.data.interactions import sorted_unique

    assert sorted_unique(np.array([5, 1, 5, 3, 1])).tolist() == [1, 3, 5]
    assert sorted_unique(np.array([], dtype=np.int64)).tolist() == []
    values = np.random.default_rng(0).integers(0, 50, 400)
    assert np.array_equal(sorted_unique(values), np.unique(values))


def test_no_users_left_counts_in_words():
    report = {"users filtered out": 1, "rows of filtered users/items": 3}
    assert no_users_left(5, report) == (
        "no users left after min_user_interactions=5 (removed 1 user, 3 rows)")
    report = {"users filtered out": 2, "rows of filtered users/items": 1}
    assert no_users_left(2, report).endswith("(removed 2 users, 1 row)")
