"""``uibrec data stats``: the paper's Table 3 after its filter and split."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from uibrec.cli import main
from uibrec.data.stats import dataset_stats

# Users 1 and 2 have 5 ratings each; user 3 has 2 and is filtered out, taking item 60
# (only user 3 rated it) with it. User 1 rates item 10 twice (one duplicate). A blank line.
TOY = ["1\t10\t5", "1\t11\t4", "1\t12\t3", "1\t13\t2", "1\t14\t1", "1\t10\t5",
       "", "2\t10\t1", "2\t11\t2", "2\t12\t3", "2\t13\t4", "2\t15\t5", "3\t10\t4", "3\t60\t4"]
TOY_STATS = {
    "raw rows": 13, "users": 2, "items": 6, "train": 6, "valid": 2, "test": 2,
    "density": 10 / 12,
    "removed": {"blank lines": 1, "duplicate rows": 1, "rows of filtered users/items": 2,
                "users filtered out": 1, "items left without interactions": 1},
}


@pytest.fixture
def toy_file(tmp_path):
    path = tmp_path / "toy.tsv"
    path.write_text("\n".join(TOY) + "\n")
    return path


def test_dataset_stats_of_a_file(toy_file):
    stats = dataset_stats(str(toy_file), columns={"user": 0, "item": 1})
    assert stats == {"dataset": str(toy_file), "file": str(toy_file), **TOY_STATS}


def test_cli_json(toy_file):
    result = CliRunner().invoke(main, ["-q", "data", "stats", str(toy_file), "--json"])
    assert result.exit_code == 0, result.output
    (stats,) = json.loads(result.output)
    assert {key: stats[key] for key in TOY_STATS if key != "removed"} == {
        key: value for key, value in TOY_STATS.items() if key != "removed"}
    # Read with the default columns (user, item): no rating column, so no negative count.
    assert stats["removed"] == TOY_STATS["removed"]


def test_cli_table(toy_file):
    result = CliRunner().invoke(main, ["-q", "data", "stats", str(toy_file)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["dataset", "users", "items", "train", "valid", "test",
                                "density"]
    assert lines[1].split() == [str(toy_file), "2", "6", "6", "2", "2", "83.3333%"]
    assert "users filtered out" in result.output and "raw rows" in result.output



def test_cli_reads_a_file_with_a_header_through_read_options(tmp_path):
    # The header error says "pass read_options={header: true}", but data stats had no way
    # to take it. Same toy data, a csv with a header: same table, plus the negative count
    # that reading the rating column adds (0 here: every toy rating is 1 to 5).
    path = tmp_path / "toy.csv"
    path.write_text("u,i,r\n" + "\n".join(line.replace("\t", ",") for line in TOY) + "\n")
    options = "{header: true, columns: {user: u, item: i, rating: r}}"
    result = CliRunner().invoke(main, ["-q", "data", "stats", str(path), "--json",
                                       "--read-options", options])
    assert result.exit_code == 0, result.output
    (stats,) = json.loads(result.output)
    assert stats["removed"] == {"blank lines": 1, "negative ratings": 0,
                                **{k: v for k, v in TOY_STATS["removed"].items()
                                   if k != "blank lines"}}
    assert (stats["users"], stats["items"], stats["train"]) == (2, 6, 6)
    for bad, message in [("header", "expected a mapping such as {header: true}"),
                         ("{hdr: true}", "read_options takes no option 'hdr'")]:
        result = CliRunner().invoke(main, ["data", "stats", str(path), "--read-options", bad])
        assert result.exit_code == 2 and message in result.output, result.output


def _shared_data() -> Path | None:
    root = os.environ.get("UIBREC_DATA_DIR") or Path(__file__).parents[1] / ".." / "shared" / "data"
    return Path(root) if Path(root).is_dir() else None


# The paper's Table 3 (users, items, train, valid = test).
TABLE_3 = {
    "aiv": (5130, 1685, 26866, 5130),
    "lastfm": (1877, 17617, 89047, 1877),
    "ml-1m": (6040, 3706, 988129, 6040),
}


@pytest.mark.parametrize("name", sorted(TABLE_3))
def test_table_3_from_the_shared_data(name, monkeypatch):
    data = _shared_data()
    if data is None:
        pytest.skip("shared data folder not found (set UIBREC_DATA_DIR)")
    monkeypatch.setenv("UIBREC_CACHE_DIR", "/nonexistent-uibrec-cache")
    stats = dataset_stats(name, data, download_missing=False)
    users, items, train, held_out = TABLE_3[name]
    assert (stats["users"], stats["items"], stats["train"]) == (users, items, train)
    assert stats["valid"] == stats["test"] == held_out
    if name == "lastfm":  # 1,892 users before the filter; 15 have fewer than 5 artists
        assert stats["removed"]["users filtered out"] == 15
        assert stats["removed"]["rows of filtered users/items"] == 33
    if name == "ml-1m":
        assert stats["raw rows"] == 1_000_209
