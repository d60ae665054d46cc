"""Readers for the other official formats: Amazon reviews, Last.fm (HetRec 2011), RecBole.

Each follows the bad-input rules of :mod:`uibrec.data.readers` and returns
:class:`~uibrec.data.interactions.Interactions` with a ``report`` of what it counted.
"""

from __future__ import annotations

import ast
import json
import logging

import numpy as np

from uibrec.data.interactions import Interactions
from uibrec.data.readers import read_delimited
from uibrec.data.split import k_core
from uibrec.data.textfiles import DataFormatError, TextFile

logger = logging.getLogger(__name__)

AMAZON_FIELDS = {"user": "reviewerID", "item": "asin", "rating": "overall",
                 "timestamp": "unixReviewTime"}
RECBOLE_FIELDS = {"user": "user_id", "item": "item_id", "rating": "rating",
                  "timestamp": "timestamp"}


def _apply_k_core(data: Interactions, k: int | None) -> Interactions:
    if not k:
        return data
    report = dict(data.report)
    data = k_core(data, k, report)
    data.report = report
    logger.info("%s: %d-core kept %d rows, %d users, %d items",
                data.name, k, len(data), data.num_users, data.num_items)
    return data


def read_amazon_reviews(path, name: str | None = None, k_core: int | None = None
                        ) -> Interactions:
    """Amazon review data (McAuley et al. 2015/2016), e.g. ``reviews_Amazon_Instant_Video_5
    .json.gz``: one JSON object per line; ``reviewerID``, ``asin``, ``overall`` (the
    rating) and ``unixReviewTime`` are read, the review text is ignored.

    Lines written as Python dicts (as in some of the full, non-k-core files of that release)
    are accepted too. ``k_core`` applies an iterative user-and-item k-core afterwards (the
    ``*_5`` files are already 5-cores).
    """
    text = TextFile.open(path, "utf-8")
    columns = {key: [] for key in AMAZON_FIELDS}
    blank = 0
    with text.binary() as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                blank += 1
                continue
            record = _review(text, number, raw)
            for key, field in AMAZON_FIELDS.items():
                if field not in record:
                    raise DataFormatError(text.path, number, f"the review has no {field!r}")
                columns[key].append(record[field])
    if not columns["user"]:
        raise DataFormatError(text.path, None, "is empty" if not blank else
                              "holds only blank lines")
    rating = _finite(text, columns["rating"], "overall")
    timestamp = _finite(text, columns["timestamp"], "unixReviewTime").astype(np.int64)
    keep = rating >= 0
    data = Interactions.from_raw(
        np.asarray(columns["user"], dtype=object)[keep],
        np.asarray(columns["item"], dtype=object)[keep],
        rating=rating[keep], timestamp=timestamp[keep], name=name or text.path.name,
    )
    data.report = {"rows read": len(rating), "blank lines": blank,
                   "negative ratings": int((~keep).sum())}
    if not keep.all():
        logger.warning("%s: dropped %d rows with a negative rating", text.path, (~keep).sum())
    return _apply_k_core(data, k_core)


def _review(text: TextFile, number: int, raw: bytes) -> dict:
    line = text.decode(raw, number).strip()
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            record = None
    if not isinstance(record, dict):
        raise DataFormatError(text.path, number, f"expected one JSON object per line, got "
                              f"{line[:60]!r}")
    return record


def _finite(text: TextFile, values: list, field: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        try:
            out[row] = float(value)
        except (TypeError, ValueError):
            out[row] = np.nan
        if not np.isfinite(out[row]):
            line = text.line_of_row(row)
            raise DataFormatError(text.path, line, f"expected a number for {field}, got "
                                  f"{value!r}")
    return out


def read_amazon_ratings_csv(path, name: str | None = None, k_core: int | None = None
                            ) -> Interactions:
    """Amazon's ratings-only files, e.g. ``ratings_Amazon_Instant_Video.csv``: ``user,item,
    rating,timestamp`` without a header, with text IDs. These hold every rating, not a
    k-core: give ``k_core=5`` to rebuild the 5-core (the registry does for ``aiv``)."""
    data = read_delimited(path, sep=",", header=False,
                          columns={"user": 0, "item": 1, "rating": 2, "timestamp": 3},
                          name=name)
    return _apply_k_core(data, k_core)


def read_indexed_ratings(path, name: str | None = None) -> Interactions:
    """A headerless tab-separated file of user index, item index, rating (the local copy of
    AIV 5-core in ``amazon-instant-video-5/ratings.tsv``)."""
    return read_delimited(path, sep="\t", header=False,
                          columns={"user": 0, "item": 1, "rating": 2}, name=name)


def read_lastfm(path, name: str | None = None, weight: bool = True) -> Interactions:
    """hetrec2011-lastfm-2k ``user_artists.dat``: ``userID, artistID, weight`` with a header,
    tab-separated, CRLF line ends. With ``weight`` the listening count is kept in the
    ``rating`` column (every row is still one positive interaction)."""
    columns = {"user": "userID", "item": "artistID"}
    if weight:
        columns["rating"] = "weight"
    return read_delimited(path, sep="\t", header=True, columns=columns, name=name)


def read_recbole_inter(path, name: str | None = None, fields: dict | None = None
                       ) -> Interactions:
    """A RecBole atomic ``.inter`` file: tab-separated, with a typed header such as
    ``user_id:token  item_id:token  rating:float  timestamp:float``.

    ``fields`` maps our columns to RecBole field names (default ``user_id``, ``item_id``,
    ``rating``, ``timestamp``); rating and timestamp are read when present.
    """
    text = TextFile.open(path, "utf-8")
    first = text.first_line()
    if first is None:
        raise DataFormatError(text.path, None, "is empty")
    header = first[1].split("\t")
    names = [column.split(":", 1)[0].strip() for column in header]
    if not all(":" in column for column in header):
        raise DataFormatError(text.path, first[0], f"expected a typed RecBole header "
                              f"(field:type, tab-separated), got {first[1][:80]!r}")
    wanted = dict(RECBOLE_FIELDS, **(fields or {}))
    columns = {key: header[names.index(field)] for key, field in wanted.items()
               if field in names}
    if "user" not in columns or "item" not in columns:
        raise DataFormatError(text.path, first[0], f"no {wanted['user']!r} and "
                              f"{wanted['item']!r} fields in the header {names}")
    return read_delimited(path, sep="\t", header=True, columns=columns, name=name)
