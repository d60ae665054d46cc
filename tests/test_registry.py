"""The dataset registry: official addresses, accepted file names, and loading by name."""

import gzip
import json

import pytest

from uibrec.data.registry import (
    DATASETS,
    DatasetNotFoundError,
    get_spec,
    load_dataset,
    locate,
    read_file,
)


@pytest.fixture(autouse=True)
def no_other_folders(monkeypatch, tmp_path):
    """Only the test's folder is searched: no $UIBREC_DATA_DIR, an empty cache."""
    monkeypatch.delenv("UIBREC_DATA_DIR", raising=False)
    monkeypatch.setenv("UIBREC_CACHE_DIR", str(tmp_path / "cache"))


OFFICIAL = {
    "ml-100k": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "ml-1m": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    "ml-10m": "https://files.grouplens.org/datasets/movielens/ml-10m.zip",
    "aiv": "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
           "reviews_Amazon_Instant_Video_5.json.gz",
    "lastfm": "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_each_dataset_knows_its_official_address_and_what_to_unpack(name):
    spec = get_spec(name)
    assert spec.url == OFFICIAL[name]
    assert spec.unpack and spec.files and spec.citation
    # What the download unpacks is one of the files the dataset is looked for under.
    assert set(spec.unpack.values()) <= {entry.path for entry in spec.files}


def test_registered_names():
    assert {"ml-100k", "ml-1m", "ml-10m", "aiv", "lastfm"} <= set(DATASETS)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="known datasets: aiv, lastfm, ml-100k"):
        get_spec("ml-20m")


def test_missing_dataset_says_what_to_download_and_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("ml-10m", data_dir=tmp_path, download_missing=False)
    message = str(info.value)
    assert OFFICIAL["ml-10m"] in message and "ml-10M100K/ratings.dat" in message


def test_ml10m_under_its_official_folder_name(tmp_path):
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::122::5::838985046\n1::185::4.5::838983525\n"
                                        "2::122::3::868245777\n")
    data = load_dataset("ml-10m", data_dir=tmp_path, download_missing=False)
    assert data.name == "ml-10m" and len(data) == 3 and data.rating.tolist() == [5, 4.5, 3]


def test_aiv_from_the_official_review_file(tmp_path):
    lines = [json.dumps({"reviewerID": f"A{u}", "asin": f"B{i}", "overall": 5.0,
                         "unixReviewTime": 100 * u + i}) for u in range(2) for i in range(3)]
    (tmp_path / "reviews_Amazon_Instant_Video_5.json.gz").write_bytes(
        gzip.compress("\n".join(lines).encode()))
    data = load_dataset("aiv", data_dir=tmp_path, download_missing=False)
    assert (data.num_users, data.num_items, len(data)) == (2, 3, 6)


def test_aiv_from_the_ratings_csv_is_made_a_5_core(tmp_path):
    # Five users each rate the same five items (a 5-core); a sixth user rates one item.
    rows = [f"U{u},I{i},4.0,{u * 10 + i}" for u in range(5) for i in range(5)] + ["U9,I0,1.0,9"]
    (tmp_path / "ratings_Amazon_Instant_Video.csv").write_text("\n".join(rows) + "\n")
    path, _ = locate("aiv", tmp_path)
    assert path.name == "ratings_Amazon_Instant_Video.csv"
    data = load_dataset("aiv", data_dir=tmp_path, download_missing=False)
    assert (data.num_users, data.num_items, len(data)) == (5, 5, 25)
    assert data.report["5-core: users filtered out"] == 1


def test_lastfm_under_the_archive_folder_name(tmp_path):
    folder = tmp_path / "hetrec2011-lastfm-2k"
    folder.mkdir()
    (folder / "user_artists.dat").write_bytes(b"userID\tartistID\tweight\r\n2\t51\t13883\r\n")
    data = load_dataset("lastfm", data_dir=tmp_path, download_missing=False)
    assert data.to_frame().values.tolist() == [[2, 51, 13883]]


def test_files_are_preferred_in_the_registered_order(tmp_path):
    (tmp_path / "amazon-instant-video-5").mkdir()
    (tmp_path / "amazon-instant-video-5" / "ratings.tsv").write_text("0\t0\t5\n")
    (tmp_path / "reviews_Amazon_Instant_Video_5.json.gz").write_bytes(gzip.compress(
        b'{"reviewerID": "A", "asin": "B", "overall": 5.0, "unixReviewTime": 1}\n'))
    path, _ = locate("aiv", tmp_path)
    assert path.name == "reviews_Amazon_Instant_Video_5.json.gz"  # raw IDs and timestamps


def test_read_file_by_kind(tmp_path):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\nu1\ti1\n")
    assert list(read_file(inter).user_map.ids) == ["u1"]
    reviews = tmp_path / "x.json.gz"
    reviews.write_bytes(gzip.compress(
        b'{"reviewerID": "A", "asin": "B", "overall": 5.0, "unixReviewTime": 1}\n'))
    assert list(read_file(reviews).item_map.ids) == ["B"]
    plain = tmp_path / "x.tsv"
    plain.write_text("1\t2\n")
    assert len(load_dataset(str(plain))) == 1


def test_a_folder_given_as_the_dataset_is_named_as_a_folder(tmp_path):
    # It said "no such file", though the folder is there.
    folder = tmp_path / "ml-1m-data"
    folder.mkdir()
    with pytest.raises(ValueError) as info:
        load_dataset(str(folder))
    assert str(info.value) == (
        f"{folder}: is a folder; expected an interaction file (csv, tsv, .inter, .json) or a "
        "dataset name (aiv, lastfm, ml-100k, ml-10m, ml-1m); give the folder holding "
        "datasets with --data-dir")
    with pytest.raises(ValueError, match=f"^{folder}: is a folder, not a file$"):
        read_file(folder)


@pytest.mark.parametrize("make", [None, "file"])
def test_missing_data_dir_is_reported_without_a_download(tmp_path, monkeypatch, make):
    import uibrec.data.registry as registry

    def no_download(name, timeout=30.0):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(registry, "download", no_download)
    data_dir = tmp_path / "datasets"
    if make:
        data_dir.write_text("")
    what = "is not a folder" if make else "no such folder"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("ml-1m", data_dir=data_dir)
    assert str(info.value) == f"{data_dir}: {what} (the data folder, --data-dir)"
