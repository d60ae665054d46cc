"""Amazon, Last.fm and RecBole readers on small files in their official formats."""

import gzip
import json
import logging

import pytest

from uibrec.data.formats import (
    read_amazon_ratings_csv,
    read_amazon_reviews,
    read_indexed_ratings,
    read_lastfm,
    read_recbole_inter,
)
from uibrec.data.readers import DataFormatError


def review(user, item, rating, time, **extra) -> str:
    record = {"reviewerID": user, "asin": item, "reviewerName": "x", "helpful": [0, 0],
              "reviewText": "Fine: a film, \"quoted\".", "overall": rating,
              "summary": "ok", "unixReviewTime": time, "reviewTime": "05 3, 2014", **extra}
    return json.dumps(record)


def write_reviews(path, lines):
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_amazon_reviews_json(tmp_path):
    path = write_reviews(tmp_path / "reviews_Amazon_Instant_Video_5.json.gz", [
        review("A2", "B00I3MPDP4", 5.0, 1399075200),
        "",
        review("A1", "B00I3MPDP4", 3.0, 1388707200),
        review("A2", "B000GFDAUG", 4.0, 1361923200),
    ])
    data = read_amazon_reviews(path)
    assert data.to_frame().values.tolist() == [
        ["A2", "B00I3MPDP4", 5.0, 1399075200], ["A1", "B00I3MPDP4", 3.0, 1388707200],
        ["A2", "B000GFDAUG", 4.0, 1361923200]]
    assert data.report == {"rows read": 3, "blank lines": 1, "negative ratings": 0}


def test_amazon_reviews_as_python_dicts(tmp_path):
    path = write_reviews(tmp_path / "r.json.gz", ["{'reviewerID': 'A1', 'asin': 'B1', "
                                                  "'overall': 4.0, 'unixReviewTime': 7}"])
    assert read_amazon_reviews(path).to_frame().values.tolist() == [["A1", "B1", 4.0, 7]]


def test_amazon_reviews_bad_lines(tmp_path):
    path = write_reviews(tmp_path / "r.json.gz", [review("A1", "B1", 5.0, 1),
                                                  '{"reviewerID": "A2", "overall": 5.0}'])
    with pytest.raises(DataFormatError, match=r"r.json.gz, line 2: the review has no 'asin'"):
        read_amazon_reviews(path)
    path = write_reviews(tmp_path / "r.json.gz", [review("A1", "B1", 5.0, 1), "", "A2,B1,5,1"])
    with pytest.raises(DataFormatError, match=r"line 3: expected one JSON object per line, got "
                                              r"'A2,B1,5,1'"):
        read_amazon_reviews(path)
    path = write_reviews(tmp_path / "r.json.gz", [review("A1", "B1", 5.0, 1), "",
                                                  review("A2", "B1", float("nan"), 2)])
    with pytest.raises(DataFormatError, match=r"line 3: expected a number for overall, got nan"):
        read_amazon_reviews(path)


def test_amazon_reviews_negative_rating_dropped_and_counted(tmp_path, caplog):
    path = write_reviews(tmp_path / "r.json.gz", [review("A1", "B1", 5.0, 1),
                                                  review("A2", "B1", -1.0, 2)])
    with caplog.at_level(logging.WARNING):
        data = read_amazon_reviews(path)
    assert len(data) == 1 and list(data.user_map.ids) == ["A1"]
    assert data.report["negative ratings"] == 1 and "negative rating" in caplog.text


def test_amazon_ratings_csv_given_to_the_json_reader(tmp_path):
    path = tmp_path / "reviews.json.gz"
    path.write_bytes(gzip.compress(b"A1,B1,5.0,1\n"))
    with pytest.raises(DataFormatError, match="line 1: expected one JSON object per line"):
        read_amazon_reviews(path)


def test_empty_review_file(tmp_path):
    path = write_reviews(tmp_path / "r.json.gz", [""])
    with pytest.raises(DataFormatError, match="holds only blank lines"):
        read_amazon_reviews(path)


# A 2-core example worked by hand: u3 has one rating, so it goes; then item i3 is left with
# one rating (u2's), so it goes; then every user and item has two.
CSV_ROWS = ["u1,i1,5.0,10", "u1,i2,4.0,11", "u2,i1,3.0,12", "u2,i2,2.0,13", "u2,i3,1.0,14",
            "u3,i3,5.0,15", "u1,i1,5.0,16"]


def test_amazon_ratings_csv(tmp_path):
    path = tmp_path / "ratings_Amazon_Instant_Video.csv"
    path.write_text("\n".join(CSV_ROWS) + "\n")
    data = read_amazon_ratings_csv(path)
    assert len(data) == 7 and list(data.user_map.ids) == ["u1", "u2", "u3"]
    assert data.timestamp.tolist() == [10, 11, 12, 13, 14, 15, 16]


def test_amazon_ratings_csv_k_core(tmp_path):
    path = tmp_path / "ratings_Amazon_Instant_Video.csv"
    path.write_text("\n".join(CSV_ROWS) + "\n")
    data = read_amazon_ratings_csv(path, k_core=2)
    assert sorted(map(tuple, data.to_frame()[["user_id", "item_id"]].values.tolist())) == [
        ("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2")]
    assert data.report == {
        "rows read": 7, "blank lines": 0, "negative ratings": 0,
        "2-core: duplicate rows": 1, "2-core: rows of filtered users/items": 2,
        "2-core: users filtered out": 1, "2-core: items left without interactions": 1}


def test_amazon_ratings_csv_with_a_header_is_refused(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating,timestamp\nu1,i1,5.0,10\n")
    with pytest.raises(DataFormatError, match="line 1: looks like a header"):
        read_amazon_ratings_csv(path)


def test_indexed_ratings_tsv(tmp_path):
    path = tmp_path / "ratings.tsv"
    path.write_text("0\t0\t2\n1\t0\t5\n0\t3\t1\n")
    data = read_indexed_ratings(path)
    assert data.num_users == 2 and data.item_map.ids.tolist() == [0, 3]
    assert data.rating.tolist() == [2.0, 5.0, 1.0] and data.timestamp is None


def write_lastfm(path):
    path.write_bytes(b"userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n"
                     b"\r\n3\t51\t228")
    return path


def test_lastfm_keeps_the_listening_count_as_weight(tmp_path):
    data = read_lastfm(write_lastfm(tmp_path / "user_artists.dat"))
    assert data.to_frame().values.tolist() == [[2, 51, 13883], [2, 52, 11690], [3, 51, 228]]
    assert data.report == {"rows read": 3, "blank lines": 1, "negative ratings": 0}


def test_lastfm_without_weight(tmp_path):
    data = read_lastfm(write_lastfm(tmp_path / "user_artists.dat"), weight=False)
    assert data.rating is None and len(data) == 3


def test_lastfm_without_its_header(tmp_path):
    path = tmp_path / "user_artists.dat"
    path.write_bytes(b"2\t51\t13883\r\n")
    with pytest.raises(DataFormatError, match="line 1: a header was declared, but this line "
                                              "looks like data"):
        read_lastfm(path)


def test_recbole_inter(tmp_path):
    path = tmp_path / "ml.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    data = read_recbole_inter(path)
    assert data.to_frame().values.tolist() == [[196, 242, 3.0, 881250949],
                                               [186, 302, 3.0, 891717742]]


def test_recbole_inter_without_types(tmp_path):
    path = tmp_path / "ml.inter"
    path.write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(DataFormatError, match="line 1: expected a typed RecBole header"):
        read_recbole_inter(path)
