"""Readers for interaction files: any delimited file, and MovieLens' official formats.

Every reader returns :class:`~uibrec.data.interactions.Interactions` whose ``report`` says
what reading counted. Bad input is handled the same way everywhere (each rule has a test):

- A line with too few or too many fields, or a rating or timestamp that is not a finite
  number ("NaN" and "inf" included), raises :class:`DataFormatError` naming file and line.
- A first line that looks like a header when none was declared is an error, and so is a
  declared header that looks like data. (A header is recognised when none of its fields is
  a number while the fields below it are numbers, when a rating or timestamp column is
  read, or when its user and item fields are column names: ``user``, ``user_id``,
  ``userid`` or ``uid`` over ``item``, ``item_id``, ``itemid`` or ``iid``, in any case.
  Otherwise a file of text IDs and no numeric column cannot tell a header from a row.)
- Reader options are checked before the file is read: ``header`` must be true or false,
  ``encoding`` a known codec, and no two columns may map to the same field.
- Blank lines are skipped and counted (``report["blank lines"]``).
- Negative ratings are dropped and counted (``report["negative ratings"]``, with a
  warning): the paper counts every rating as a positive interaction, and a negative rating
  is an explicit dislike, not something to learn as a positive.
- Repeated (user, item) rows are kept here; :func:`uibrec.data.split.prepare` collapses
  them and counts them.
- The file's content decides how it is opened, not its name (see
  :mod:`uibrec.data.textfiles`): zip archives, HTML pages and binary files are refused.
- Text that is not in the declared encoding is an error naming the line (MovieLens files
  are Latin-1 and their readers say so).
"""

from __future__ import annotations

import codecs
import logging
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uibrec.data.interactions import Interactions
from uibrec.data.textfiles import DataFormatError, TextFile

logger = logging.getLogger(__name__)

__all__ = ["COLUMNS", "DataFormatError", "read_delimited", "read_movielens_dat",
           "read_movielens_100k", "read_movielens_movies", "read_csv_with_header"]

COLUMNS = ("user", "item", "rating", "timestamp")
_OTHER_SEPS = ("::", "\t", ",", ";", "|", " ")
# A first line whose user and item fields are among these (lowercased) is a header.
_USER_NAMES = ("user", "user_id", "userid", "uid")
_ITEM_NAMES = ("item", "item_id", "itemid", "iid")


@dataclass(frozen=True)
class _Layout:
    """Where the fields of a delimited file are, read from its first non-blank line."""

    sep: str  # the separator as the user gave it ("::")
    raw_sep: str  # the one character pandas splits on (":")
    stride: int  # raw columns per field: "a::b" splits on ":" into a, "", b
    n_fields: int
    positions: dict  # "user" -> field index, ...
    skip: int  # lines before the data: the header and any blank lines above it
    first_line: int  # number of the first non-blank line

    @property
    def n_raw(self) -> int:
        return self.n_fields * self.stride - (self.stride - 1)

    @property
    def keep(self) -> bytes:
        """A whitespace separator makes a line of separators a row, not a blank line."""
        return self.raw_sep.encode() if self.raw_sep.isspace() else b""


def read_delimited(
    path,
    sep: str | None = None,
    header: bool = False,
    columns: dict | None = None,
    name: str | None = None,
    encoding: str = "utf-8",
) -> Interactions:
    """Read a delimited text file (csv, tsv, compressed or not) of interactions.

    Args:
        path: the file.
        sep: field separator; by default ``,`` for ``.csv`` names and a tab otherwise.
            One character, or one character repeated such as MovieLens' ``::``.
        header: whether the first non-blank line holds column names.
        columns: where each field is, as ``{"user": 0, "item": 1, "rating": 2,
            "timestamp": 3}``; positions, or column names when ``header`` is true.
            ``rating`` and ``timestamp`` are optional. Default: user and item in the
            first two fields, nothing else.
        name: the dataset's name in logs; the file name by default.
        encoding: the text encoding; bytes that are not valid in it are an error.

    Raises:
        DataFormatError: for any of the cases in this module's docstring.
    """
    _check_options(sep, header, encoding)
    text = TextFile.open(path, encoding)
    if sep is None:
        sep = "," if ".csv" in text.path.name else "\t"
    layout = _layout(text, sep, header, _check_columns(columns))
    frame = _read_frame(text, layout)
    data = _frame_to_interactions(frame, text, layout, name or text.path.name)
    blank = max(0, text.count_lines() - len(frame) - int(header))
    data.report = {"rows read": len(frame), "blank lines": blank, **data.report}
    if blank:
        logger.info("%s: skipped %d blank lines", text.path, blank)
    return data


def _check_options(sep, header, encoding) -> None:
    """Option values the CLI passes through as given (``{header: yes-please}``)."""
    if not isinstance(header, bool):
        raise ValueError(f"read_options header: expected true or false, got {header!r}")
    if sep is not None and not isinstance(sep, str):
        raise ValueError(f"read_options sep: expected a character such as ',' or a tab, "
                         f"got {sep!r}")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"read_options encoding: unknown text encoding {encoding!r}; "
                         "expected a codec name such as utf-8 or latin-1") from None


def _check_columns(columns: dict | None) -> dict:
    columns = dict(columns or {"user": 0, "item": 1})
    unknown = set(columns) - set(COLUMNS)
    if unknown or "user" not in columns or "item" not in columns:
        raise ValueError("columns must name 'user' and 'item' (and may name rating, "
                         f"timestamp); got {sorted(columns)}")
    for key, spec in columns.items():
        # A negative position would index pandas' columns from nowhere (a bare KeyError).
        if isinstance(spec, bool) or not isinstance(spec, (int, str)) or (
                isinstance(spec, int) and spec < 0):
            raise ValueError(f"columns: {key} must be a field position (0 for the first) "
                             f"or a header name; got {spec!r}")
    return columns


def _raw_separator(sep: str) -> tuple[str, int]:
    if len(sep) == 1:
        return sep, 1
    if sep and len(set(sep)) == 1:
        return sep[0], len(sep)
    raise ValueError(f"separator {sep!r}: give one character, or one character repeated "
                     "(such as '::')")


def _layout(text: TextFile, sep: str, header: bool, columns: dict) -> _Layout:
    raw_sep, stride = _raw_separator(sep)
    probe = _Layout(sep, raw_sep, stride, 0, {}, 0, 0)
    first = text.first_line(probe.keep)
    if first is None:
        what = "is empty" if text.count_lines() == 0 else "holds only blank lines"
        raise DataFormatError(text.path, None, what)
    number, line = first
    if line.lstrip().startswith(("{", "[")):
        raise DataFormatError(text.path, number, "holds JSON, not delimited fields (Amazon "
                              "review files are read by read_amazon_reviews)")
    fields = line.split(sep)
    if header and all(_is_number(field) for field in fields):
        raise DataFormatError(text.path, number, f"a header was declared, but this line looks "
                              f"like data ({line!r}); pass header=False "
                              "(read_options={header: false} from the CLI)")
    positions = _positions(text, number, fields, header, columns)
    _check_distinct(positions)
    for key, pos in positions.items():
        if pos >= len(fields):
            raise DataFormatError(text.path, number, _too_few(line, sep, len(fields), key, pos))
    unused = sorted(set(range(len(fields))) - set(positions.values()))
    if unused:
        # Not an error (extra columns are common), but never silent.
        logger.warning("%s: lines have %d fields; reading %s, ignoring fields %s (map them "
                       "with columns={rating: N, timestamp: N})", text.path, len(fields),
                       ", ".join(f"{k}={p}" for k, p in positions.items()), unused)
    return _Layout(sep, raw_sep, stride, len(fields), positions,
                   number if header else 0, number)


def _positions(text, number, fields, header, columns) -> dict:
    if not header:
        named = [key for key, spec in columns.items() if not isinstance(spec, int)]
        if named:
            raise ValueError(f"columns {named} are given by name: that needs header=True "
                             "(read_options={header: true} from the CLI)")
        return {key: int(spec) for key, spec in columns.items()}
    names = [field.strip() for field in fields]
    lowered = [field.lower() for field in names]
    out = {}
    for key, spec in columns.items():
        if isinstance(spec, int):
            out[key] = spec
        elif spec in names:
            out[key] = names.index(spec)
        elif str(spec).lower() in lowered:
            out[key] = lowered.index(str(spec).lower())
        else:
            raise DataFormatError(text.path, number, f"no column {spec!r} in the header {names}")
    return out


def _check_distinct(positions: dict) -> None:
    """Two columns in one field would read, say, every user ID as an item ID too."""
    seen: dict = {}
    for key, pos in positions.items():
        if pos in seen:
            raise ValueError(f"read_options columns: {seen[pos]} and {key} both map to field "
                             f"{pos + 1}; each column needs a field of its own")
        seen[pos] = key


def _too_few(line: str, sep: str, n_fields: int, key: str, pos: int) -> str:
    message = (f"has {n_fields} field(s) separated by {sep!r}, but {key} is expected in field "
               f"{pos + 1} ({line[:80]!r})")
    for other in _OTHER_SEPS:
        if other != sep and len(line.split(other)) > pos:
            return f"{message}; the line looks separated by {other!r}"
    return message


def _read_frame(text: TextFile, layout: _Layout) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            text.path, compression=text.compression, encoding=text.encoding,
            encoding_errors="strict", sep=layout.raw_sep, header=None,
            names=range(layout.n_raw), skiprows=layout.skip, engine="c",
            keep_default_na=False, na_values=[""], skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    except pd.errors.ParserError as exc:
        raise _parser_error(text, layout, exc) from exc
    except UnicodeDecodeError as exc:
        raise text.find_undecodable() from exc
    if len(frame) == 0:
        raise DataFormatError(text.path, None, "has a header but no data rows")
    _check_separators(frame, text, layout)
    return frame


def _parser_error(text: TextFile, layout: _Layout, exc: Exception) -> DataFormatError:
    found = re.search(r"line (\d+), saw (\d+)", str(exc))
    if not found:
        return DataFormatError(text.path, None, f"cannot be parsed with separator "
                               f"{layout.sep!r}: {exc}")
    line, raw = int(found.group(1)), int(found.group(2))
    fields = (raw + layout.stride - 1) // layout.stride
    return DataFormatError(text.path, line, f"too many fields: {fields} where line "
                           f"{layout.first_line} has {layout.n_fields} (separator {layout.sep!r})")


def _check_separators(frame: pd.DataFrame, text: TextFile, layout: _Layout) -> None:
    """With "::" read as ":", the raw columns between fields must all be empty."""
    for col in range(1, layout.n_raw, layout.stride) if layout.stride > 1 else ():
        for filler in range(col, col + layout.stride - 1):
            filled = frame[filler].notna().to_numpy()
            if filled.any():
                line = _line_of(text, layout, int(np.flatnonzero(filled)[0]))
                raise DataFormatError(text.path, line, f"fields must be separated by "
                                      f"{layout.sep!r}; found a lone {layout.raw_sep!r}")


def _line_of(text: TextFile, layout: _Layout, row: int) -> int:
    return text.line_of_row(row, layout.skip, layout.keep)


def _frame_to_interactions(frame, text: TextFile, layout: _Layout, name: str) -> Interactions:
    values = {key: frame[pos * layout.stride] for key, pos in layout.positions.items()}
    for key, series in values.items():
        missing = series.isna().to_numpy()
        if missing.any():
            line = _line_of(text, layout, int(np.flatnonzero(missing)[0]))
            raise DataFormatError(text.path, line, f"too few fields: the {key} field (field "
                                  f"{layout.positions[key] + 1} of {layout.n_fields}, separator "
                                  f"{layout.sep!r}) is missing or empty")
    if layout.skip == 0:
        _check_not_header(values, text, layout)
    numeric = {key: _numeric(values[key], key, text, layout)
               for key in ("rating", "timestamp") if key in values}
    users, items = _ids(values["user"]), _ids(values["item"])
    report = {}
    rating = numeric.get("rating")
    if rating is not None:
        keep = rating >= 0
        report["negative ratings"] = int((~keep).sum())
        if not keep.all():
            logger.warning("%s: dropped %d rows with a negative rating",
                           text.path, report["negative ratings"])
            users, items, rating = users[keep], items[keep], rating[keep]
            if "timestamp" in numeric:
                numeric["timestamp"] = numeric["timestamp"][keep]
    data = Interactions.from_raw(users, items, rating=rating,
                                 timestamp=numeric.get("timestamp"), name=name)
    data.report = report
    return data


def _is_number(value) -> bool:
    try:
        return math.isfinite(float(str(value).strip()))
    except ValueError:
        return False


def _check_not_header(values: dict, text: TextFile, layout: _Layout) -> None:
    first = [series.iloc[0] for series in values.values()]
    if any(_is_number(value) for value in first):
        return
    numbers_below = any(
        len(series) > 1 and pd.to_numeric(series.iloc[1:1001], errors="coerce").notna().all()
        for series in values.values()
    )
    named = (str(values["user"].iloc[0]).strip().lower() in _USER_NAMES
             and str(values["item"].iloc[0]).strip().lower() in _ITEM_NAMES)
    if named or numbers_below or "rating" in values or "timestamp" in values:
        shown = ", ".join(str(value) for value in first)
        raise DataFormatError(text.path, layout.first_line, f"looks like a header ({shown}), "
                              "but none was declared; pass header=True "
                              "(read_options={header: true} from the CLI)")


def _numeric(series: pd.Series, key: str, text: TextFile, layout: _Layout) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series):
        converted = series.to_numpy()
    else:
        converted = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(converted)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(text.path, _line_of(text, layout, row),
                              f"expected a number for {key}, got {str(series.iloc[row])!r}")
    return converted.astype(np.float32 if key == "rating" else np.int64)


def _ids(series: pd.Series) -> np.ndarray:
    """Raw IDs as integers when every value is written as an integer, else as text.

    Text is kept when turning it into integers would change it ("007", "1.0"), so that
    two different raw IDs never merge.
    """
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    text = series.astype(str).str.strip()
    as_number = pd.to_numeric(text, errors="coerce")
    if as_number.notna().all() and (as_number == np.round(as_number)).all():
        as_int = as_number.to_numpy(dtype=np.int64)
        if (pd.Series(as_int).astype(str).to_numpy() == text.to_numpy()).all():
            return as_int
    return text.to_numpy(dtype=object)


def read_movielens_dat(path, name: str | None = None) -> Interactions:
    """MovieLens-1M/10M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``."""
    return read_delimited(
        path, sep="::", header=False,
        columns={"user": 0, "item": 1, "rating": 2, "timestamp": 3},
        name=name, encoding="latin-1",
    )


def read_movielens_100k(path, name: str | None = None) -> Interactions:
    """MovieLens-100K ``u.data``: tab-separated user, item, rating, timestamp."""
    return read_delimited(
        path, sep="\t", header=False,
        columns={"user": 0, "item": 1, "rating": 2, "timestamp": 3}, name=name,
    )


def read_movielens_movies(path) -> pd.DataFrame:
    """MovieLens-1M/10M ``movies.dat``: ``MovieID::Title::Genres`` in Latin-1.

    Titles hold single colons ("Star Wars: Episode IV"), so lines are split on ``::``
    itself. Returns a frame with columns ``item_id`` (int), ``title``, ``genres``
    (a list of genre names).
    """
    text = TextFile.open(path, "latin-1")
    rows = []
    with text.binary() as handle:
        for number, raw in enumerate(handle, start=1):
            line = text.decode(raw, number).rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("::")
            if len(fields) != 3 or not fields[0].strip().isdigit():
                raise DataFormatError(text.path, number, f"expected MovieID::Title::Genres, "
                                      f"got {line[:80]!r}")
            rows.append((int(fields[0]), fields[1], fields[2].split("|")))
    if not rows:
        raise DataFormatError(text.path, None, "is empty")
    return pd.DataFrame(rows, columns=["item_id", "title", "genres"])


def read_csv_with_header(path, name: str | None = None) -> Interactions:
    """A csv with a ``user,item[,rating][,timestamp]`` header (e.g. the ML-1M csv copy)."""
    first = TextFile.open(path).first_line()
    if first is None:
        raise DataFormatError(path, None, "is empty")
    names = [field.strip() for field in first[1].split(",")]
    columns = {field.lower(): field for field in names if field.lower() in COLUMNS}
    if "user" not in columns or "item" not in columns:
        raise DataFormatError(path, first[0], f"expected a header naming user and item, got "
                              f"{names}")
    return read_delimited(path, sep=",", header=True, columns=columns, name=name)
