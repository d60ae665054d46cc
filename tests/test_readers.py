"""Delimited and MovieLens readers: formats, and every bad-input case with its exact outcome."""

import gzip
import logging
import zipfile

import numpy as np
import pytest

from uibrec.data.readers import (
    DataFormatError,
    read_csv_with_header,
    read_delimited,
    read_movielens_dat,
    read_movielens_movies,
)
from uibrec.data.split import prepare

FOUR = {"user": 0, "item": 1, "rating": 2, "timestamp": 3}
THREE = {"user": 0, "item": 1, "rating": 2}


def write(path, text: str | bytes):
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def error_of(path, **options) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        read_delimited(path, **options)
    return info.value


# --- formats ------------------------------------------------------------------------------


def test_movielens_dat_reads_double_colon_fields_and_half_stars(tmp_path):
    path = write(tmp_path / "ratings.dat", "1::122::5::838985046\n1::185::3.5::838983525\n"
                                           "7::122::0.5::838983421\n")
    data = read_movielens_dat(path)
    assert data.to_frame().values.tolist() == [
        [1, 122, 5.0, 838985046], [1, 185, 3.5, 838983525], [7, 122, 0.5, 838983421]]
    assert data.report == {"rows read": 3, "blank lines": 0, "negative ratings": 0}


def test_movielens_dat_gzip(tmp_path):
    path = write(tmp_path / "ratings.dat.gz", gzip.compress(b"1::2::3::4\n5::6::7::8\n"))
    assert len(read_movielens_dat(path)) == 2


def test_crlf_header_file_with_named_columns(tmp_path):
    path = write(tmp_path / "user_artists.dat", "userID\tartistID\tweight\r\n2\t51\t13883\r\n"
                                                "2\t52\t11690\r\n3\t51\t7")
    data = read_delimited(path, header=True,
                          columns={"user": "userID", "item": "artistID", "rating": "weight"})
    assert data.to_frame().values.tolist() == [[2, 51, 13883], [2, 52, 11690], [3, 51, 7]]
    assert data.report["blank lines"] == 0


def test_csv_with_header_finds_columns_by_name(tmp_path):
    path = write(tmp_path / "r.csv", "item,user,rating\n10,1,5\n11,1,4\n")
    data = read_csv_with_header(path)
    assert data.to_frame().values.tolist() == [[1, 10, 5.0], [1, 11, 4.0]]


def test_string_and_non_contiguous_ids(tmp_path):
    path = write(tmp_path / "r.tsv", "u9\tB0\nu1\tA7\nu9\t007\n")
    data = read_delimited(path)
    assert list(data.user_map.ids) == ["u1", "u9"]
    assert list(data.item_map.ids) == ["007", "A7", "B0"]  # "007" stays text
    assert data.user_idx.tolist() == [1, 0, 1] and data.item_idx.tolist() == [2, 1, 0]

    path = write(tmp_path / "n.tsv", "100\t5\n3\t900\n100\t900\n")
    data = read_delimited(path)
    assert data.user_map.ids.tolist() == [3, 100] and data.item_map.ids.tolist() == [5, 900]
    assert data.user_idx.tolist() == [1, 0, 1] and data.item_idx.tolist() == [0, 1, 1]


def test_movies_dat_is_latin1_and_keeps_single_colons(tmp_path):
    path = write(tmp_path / "movies.dat",
                 "73::Mis\xe9rables, Les (1995)::Drama|Musical\n"
                 "260::Star Wars: Episode IV (1977)::Action\n".encode("latin-1"))
    movies = read_movielens_movies(path)
    assert movies["title"].tolist() == ["Misérables, Les (1995)", "Star Wars: Episode IV (1977)"]
    assert movies["genres"].tolist() == [["Drama", "Musical"], ["Action"]]
    assert movies["item_id"].tolist() == [73, 260]


# --- bad input ----------------------------------------------------------------------------


def test_header_where_none_was_declared(tmp_path):
    path = write(tmp_path / "r.tsv", "userID\tartistID\tweight\n2\t51\t13\n")
    err = error_of(path, columns=THREE)
    assert err.line == 1
    assert str(err) == (f"{path}, line 1: looks like a header (userID, artistID, weight), but "
                        "none was declared; pass header=True "
        "(read_options={header: true} from the CLI)")


def test_header_of_user_item_only_file_is_detected_from_the_numbers_below(tmp_path):
    path = write(tmp_path / "r.tsv", "user\titem\n1\t2\n3\t4\n")
    assert error_of(path).line == 1


def test_header_declared_but_absent(tmp_path):
    path = write(tmp_path / "r.tsv", "1\t2\t5\n3\t4\t1\n")
    err = error_of(path, header=True, columns=THREE)
    assert str(err) == (f"{path}, line 1: a header was declared, but this line looks like "
                        "data ('1\\t2\\t5'); pass header=False "
        "(read_options={header: false} from the CLI)")


def test_header_without_the_named_column(tmp_path):
    path = write(tmp_path / "r.tsv", "a\tb\n1\t2\n")
    err = error_of(path, header=True, columns={"user": "user", "item": "b"})
    assert str(err) == f"{path}, line 1: no column 'user' in the header ['a', 'b']"


def test_another_separator_is_named(tmp_path):
    path = write(tmp_path / "r.tsv", "1,2,5\n3,4,1\n")
    err = error_of(path, sep="\t", columns=THREE)
    assert str(err) == (f"{path}, line 1: has 1 field(s) separated by '\\t', but item is "
                        "expected in field 2 ('1,2,5'); the line looks separated by ','")


def test_lone_colon_in_a_double_colon_file(tmp_path):
    path = write(tmp_path / "ratings.dat", "1::2::3::4\n5:6::7::8\n")
    with pytest.raises(DataFormatError, match=r"line 2: fields must be separated by '::'"):
        read_movielens_dat(path)


def test_latin1_bytes_in_a_utf8_file(tmp_path):
    path = write(tmp_path / "r.tsv", b"1\t2\n\n3\tCaf\xe9\n")
    err = error_of(path)
    assert err.line == 3
    assert "is not utf-8 text: byte 0xE9 at column 6" in str(err)
    assert "encoding='latin-1'" in str(err)
    data = read_delimited(path, encoding="latin-1")
    assert list(data.item_map.ids) == ["2", "Café"]


def test_blank_lines_are_skipped_and_counted(tmp_path, caplog):
    path = write(tmp_path / "r.tsv", "\n1\t2\t5\n\n   \n3\t4\t1\n\n")
    with caplog.at_level(logging.INFO, logger="uibrec.data.readers"):
        data = read_delimited(path, columns=THREE)
    assert len(data) == 2 and data.report["blank lines"] == 4
    assert "skipped 4 blank lines" in caplog.text
    report = {}
    prepare(data, min_user=1, report=report)
    assert report["blank lines"] == 4


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    path = write(tmp_path / "r.tsv", "\n1\t2\t5\n\n\n3\t4\tfive\n")
    err = error_of(path, columns=THREE)
    assert str(err) == f"{path}, line 5: expected a number for rating, got 'five'"


def test_too_few_fields(tmp_path):
    path = write(tmp_path / "r.tsv", "1\t2\t5\n3\t4\n")
    err = error_of(path, columns=THREE)
    assert str(err) == (f"{path}, line 2: too few fields: the rating field (field 3 of 3, "
                        "separator '\\t') is missing or empty")


def test_too_many_fields(tmp_path):
    path = write(tmp_path / "r.tsv", "1\t2\t5\n3\t4\t1\t9\n")
    err = error_of(path, columns=THREE)
    assert str(err) == f"{path}, line 2: too many fields: 4 where line 1 has 3 (separator '\\t')"


def test_too_many_fields_in_a_double_colon_file(tmp_path):
    path = write(tmp_path / "ratings.dat", "1::2::3::4\n\n5::6::7::8::9\n")
    with pytest.raises(DataFormatError) as info:
        read_movielens_dat(path)
    assert str(info.value) == (f"{path}, line 3: too many fields: 5 where line 1 has 4 "
                               "(separator '::')")


@pytest.mark.parametrize("value", ["five", "NaN", "nan", "inf", "-inf"])
def test_rating_that_is_not_a_finite_number(tmp_path, value):
    path = write(tmp_path / "r.tsv", f"1\t2\t5\n3\t4\t{value}\n")
    err = error_of(path, columns=THREE)
    assert str(err) == f"{path}, line 2: expected a number for rating, got {value!r}"


def test_non_numeric_timestamp(tmp_path):
    path = write(tmp_path / "ratings.dat", "1::2::3::4\n5::6::7::soon\n")
    with pytest.raises(DataFormatError, match=r"line 2: expected a number for timestamp, got "
                                              r"'soon'"):
        read_movielens_dat(path)


def test_negative_ratings_are_dropped_and_counted(tmp_path, caplog):
    path = write(tmp_path / "r.tsv", "1\t2\t5\n1\t3\t-1\n8\t9\t-0.5\n1\t4\t0\n")
    with caplog.at_level(logging.WARNING):
        data = read_delimited(path, columns=THREE)
    assert data.to_frame().values.tolist() == [[1, 2, 5.0], [1, 4, 0.0]]
    assert list(data.user_map.ids) == [1]  # user 8 only had a dropped row
    assert data.report == {"rows read": 4, "blank lines": 0, "negative ratings": 2}
    assert "dropped 2 rows with a negative rating" in caplog.text
    report = {}
    prepare(data, min_user=1, report=report)
    assert report["raw rows"] == 4 and report["negative ratings"] == 2


def test_duplicate_rows_are_kept_by_the_reader_and_collapsed_with_a_count(tmp_path):
    path = write(tmp_path / "ratings.dat", "1::2::5::30\n1::2::3::10\n1::3::4::20\n")
    data = read_movielens_dat(path)
    assert len(data) == 3
    report = {}
    clean = prepare(data, min_user=1, report=report)
    assert report["duplicate rows"] == 1
    assert clean.to_frame().values.tolist() == [[1, 2, 3.0, 10], [1, 3, 4.0, 20]]  # earliest


def test_empty_file(tmp_path):
    path = write(tmp_path / "r.tsv", "")
    assert str(error_of(path)) == f"{path}: is empty"


def test_file_of_blank_lines(tmp_path):
    path = write(tmp_path / "r.tsv", "\n \n\n")
    assert str(error_of(path)) == f"{path}: holds only blank lines"


def test_header_only(tmp_path):
    path = write(tmp_path / "r.csv", "user,item\n")
    with pytest.raises(DataFormatError, match="has a header but no data rows"):
        read_csv_with_header(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_delimited(tmp_path / "nothing.tsv")


# --- files that are not what their name says ------------------------------------------------


def test_gzip_content_under_a_plain_name_is_read_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "r.tsv", gzip.compress(b"1\t2\n3\t4\n"))
    with caplog.at_level(logging.WARNING):
        assert len(read_delimited(path)) == 2
    assert "the name says plain text but the content is gzip" in caplog.text


def test_plain_text_under_a_gz_name_is_read_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "r.tsv.gz", "1\t2\n3\t4\n")
    with caplog.at_level(logging.WARNING):
        assert len(read_delimited(path)) == 2
    assert "the name says gzip but the content is plain text" in caplog.text


def test_zip_archive_is_refused(tmp_path):
    path = tmp_path / "ratings.dat"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("ml-1m/ratings.dat", "1::2::3::4\n")
    with pytest.raises(DataFormatError) as info:
        read_movielens_dat(path)
    assert str(info.value) == f"{path}: is a zip archive: unpack it and give the file inside"


def test_html_page_is_refused(tmp_path):
    path = write(tmp_path / "ratings.dat", "<!DOCTYPE html>\n<html><body>Not found</body>")
    with pytest.raises(DataFormatError, match=r"is an HTML page, not data \(a failed download"):
        read_movielens_dat(path)


def test_binary_file_is_refused(tmp_path):
    path = write(tmp_path / "r.tsv", bytes(range(256)))
    assert str(error_of(path)) == f"{path}: holds binary data, not text"


def test_json_lines_are_refused_by_the_delimited_reader(tmp_path):
    path = write(tmp_path / "r.tsv", '{"reviewerID": "A", "asin": "B"}\n')
    with pytest.raises(DataFormatError, match="line 1: holds JSON, not delimited fields"):
        read_delimited(path)


def test_movies_file_read_as_ratings(tmp_path):
    path = write(tmp_path / "ratings.dat", "1::Toy Story (1995)::Animation|Comedy\n")
    with pytest.raises(DataFormatError) as info:
        read_movielens_dat(path)
    assert str(info.value).startswith(f"{path}, line 1: has 3 field(s) separated by '::', "
                                      "but timestamp is expected in field 4")


def test_ratings_read_as_movies(tmp_path):
    path = write(tmp_path / "movies.dat", "1::2::3::4\n")
    with pytest.raises(DataFormatError, match=r"line 1: expected MovieID::Title::Genres"):
        read_movielens_movies(path)


def test_ids_keep_their_order_of_magnitude(tmp_path):
    # A float-looking file (" 7" parses as a float) still gives integer IDs.
    path = write(tmp_path / "r.csv", "1, 7\n2, 8\n")
    data = read_delimited(path)
    assert data.item_map.ids.dtype == np.int64 and data.item_map.ids.tolist() == [7, 8]


@pytest.mark.parametrize("spec", [-1, 1.5, True, None])
def test_column_that_is_not_a_position_or_name(tmp_path, spec):
    # -1 ended in "error: -1" (a KeyError from pandas) after a warning that item=-1 is read.
    path = write(tmp_path / "r.tsv", "1\t2\n3\t4\n")
    with pytest.raises(ValueError, match=f"columns: item must be a field position \\(0 for "
                                         f"the first\\) or a header name; got {spec!r}"):
        read_delimited(path, columns={"user": 0, "item": spec})


# --- reader options -----------------------------------------------------------------------


def test_unknown_encoding_names_the_option(tmp_path):
    # Was a LookupError traceback from the codec registry.
    path = write(tmp_path / "r.tsv", "1\t2\n")
    with pytest.raises(ValueError) as info:
        read_delimited(path, encoding="klingon")
    assert str(info.value) == ("read_options encoding: unknown text encoding 'klingon'; "
                               "expected a codec name such as utf-8 or latin-1")


@pytest.mark.parametrize("value", ["yes-please", 1, None])
def test_header_that_is_not_true_or_false(tmp_path, value):
    # "yes-please" was "invalid literal for int()", naming neither option nor expectation.
    path = write(tmp_path / "r.tsv", "1\t2\n")
    with pytest.raises(ValueError) as info:
        read_delimited(path, header=value)
    assert str(info.value) == f"read_options header: expected true or false, got {value!r}"


@pytest.mark.parametrize("columns, header, text, expected", [
    ({"user": 0, "item": 0}, False, "1\t2\n", "user and item both map to field 1"),
    ({"user": 0, "item": 1, "rating": 1}, False, "1\t2\n",
     "item and rating both map to field 2"),
    # names match the header case-insensitively: "U" is the user's field again
    ({"user": "u", "item": "U"}, True, "u\ti\n1\t2\n", "user and item both map to field 1"),
])
def test_two_columns_mapped_to_one_field(tmp_path, columns, header, text, expected):
    # user and item in one field used to give 0 users and 0 items, silently.
    path = write(tmp_path / "r.tsv", text)
    with pytest.raises(ValueError) as info:
        read_delimited(path, header=header, columns=columns)
    assert str(info.value) == (f"read_options columns: {expected}; each column needs a "
                               "field of its own")


def test_header_over_text_ids_is_detected_by_its_column_names(tmp_path):
    # Neither the header nor the IDs below are numbers, and only user and item are read:
    # the header line used to become a user "user" with an item "item".
    path = write(tmp_path / "r.csv", "user,item,rating,ts\nu0,i34,5,100\nu1,i2,4,101\n")
    err = error_of(path)
    assert str(err) == (f"{path}, line 1: looks like a header (user, item), but none was "
                        "declared; pass header=True (read_options={header: true} from the CLI)")
    data = read_delimited(path, header=True)
    assert data.user_map.ids.tolist() == ["u0", "u1"]


def test_text_ids_that_are_not_column_names_are_data(tmp_path):
    path = write(tmp_path / "r.csv", "alice,book\nbob,film\n")
    assert read_delimited(path).user_map.ids.tolist() == ["alice", "bob"]


def test_cli_reader_option_errors_are_one_line(tmp_path, monkeypatch, capsys):
    import sys

    from uibrec.cli import run

    path = write(tmp_path / "r.tsv", "1\t2\n")
    monkeypatch.setattr(sys, "argv", ["uibrec", "data", "stats", "--read-options",
                                      "{encoding: klingon}", str(path)])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("error: read_options encoding: unknown text encoding "
                                       "'klingon'; expected a codec name such as utf-8 or "
                                       "latin-1\n")
