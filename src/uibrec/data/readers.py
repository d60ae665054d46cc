"""Readers for interaction files: MovieLens' official formats and any delimited file.

Every reader returns :class:`~uibrec.data.interactions.Interactions`. A malformed line
raises :class:`DataFormatError` naming the file, the line number and what was expected.
"""

from __future__ import annotations

import gzip
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from uibrec.data.interactions import Interactions

logger = logging.getLogger(__name__)

COLUMNS = ("user", "item", "rating", "timestamp")


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names file and line."""

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}, line {line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def _open_text(path: Path, encoding: str):
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="replace")
    return open(path, encoding=encoding, errors="replace", newline="")


def _line_of_row(path: Path, row: int, header: bool, encoding: str) -> int:
    """File line number (1-based) of data row ``row`` (0-based), skipping blank lines."""
    seen = -1 if not header else -2
    with _open_text(path, encoding) as handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                seen += 1
                if seen == row:
                    return number
    return row + 1 + int(header)


def read_delimited(
    path,
    sep: str | None = None,
    header: bool = False,
    columns: dict | None = None,
    name: str | None = None,
    encoding: str = "utf-8",
) -> Interactions:
    """Read a delimited text file (csv, tsv, gzip or not) of interactions.

    Args:
        path: the file.
        sep: field separator; by default ``,`` for ``.csv`` names and a tab otherwise.
            A multi-character separator such as ``::`` is accepted.
        header: whether the first non-blank line holds column names.
        columns: where each field is, as ``{"user": 0, "item": 1, "rating": 2,
            "timestamp": 3}``; positions, or column names when ``header`` is true.
            ``rating`` and ``timestamp`` are optional. Default: user and item in the
            first two fields, nothing else.
        name: the dataset's name in logs; the file name by default.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if sep is None:
        sep = "," if ".csv" in path.name else "\t"
    columns = dict(columns or {"user": 0, "item": 1})
    unknown = set(columns) - set(COLUMNS)
    if unknown or "user" not in columns or "item" not in columns:
        raise ValueError(f"columns must name 'user' and 'item' (and may name rating, timestamp); "
                         f"got {sorted(columns)}")
    frame = _read_frame(path, sep, header, encoding)
    return _frame_to_interactions(frame, path, columns, header, name or path.name, encoding)


def _read_frame(path: Path, sep: str, header: bool, encoding: str) -> pd.DataFrame:
    # A multi-character separator made of one repeated character ("::") is read as that
    # character with the empty fields between dropped: the C parser stays usable.
    single = sep if len(sep) == 1 else None
    if single is None and len(set(sep)) == 1:
        single = sep[0]
    try:
        frame = pd.read_csv(
            path,
            sep=single if single is not None else sep,
            engine="c" if single is not None else "python",
            header=0 if header else None,
            dtype=str if header else None,
            encoding=encoding,
            encoding_errors="replace",
            skip_blank_lines=True,
            skipinitialspace=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise DataFormatError(path, None, "the file is empty") from exc
    except pd.errors.ParserError as exc:
        message = f"cannot be parsed with separator {sep!r}: {exc}"
        raise DataFormatError(path, None, message) from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, None, f"is not {encoding} text: {exc}") from exc
    if single is not None and single != sep:
        # "a::b::c" split on ":" gives a, "", b, "", c: keep every len(sep)-th field.
        frame = frame.iloc[:, :: len(sep)]
        if not header:
            frame.columns = range(frame.shape[1])
    if len(frame) == 0:
        raise DataFormatError(path, None, "the file has no data rows")
    return frame


def _frame_to_interactions(frame, path, columns, header, name, encoding) -> Interactions:
    def column(key):
        spec = columns[key]
        if header and isinstance(spec, str):
            if spec not in frame.columns:
                found = list(frame.columns)
                raise DataFormatError(path, 1, f"no column {spec!r} in header {found}")
            return frame[spec]
        if not isinstance(spec, int) or spec >= frame.shape[1] or spec < 0:
            raise DataFormatError(
                path, None, f"expected a field {spec!r} for {key}, but lines have "
                f"{frame.shape[1]} fields (is the separator right?)"
            )
        return frame.iloc[:, spec]

    values = {key: column(key) for key in columns}
    for key, series in values.items():
        missing = series.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            line = _line_of_row(path, row, header, encoding)
            raise DataFormatError(path, line, f"expected at least {frame.shape[1]} fields; "
                                  f"the {key} field is missing")
    numeric = {}
    for key in ("rating", "timestamp"):
        if key in values:
            numeric[key] = _numeric(values[key], key, path, header, encoding)
    users = _ids(values["user"])
    items = _ids(values["item"])
    return Interactions.from_raw(
        users, items, rating=numeric.get("rating"), timestamp=numeric.get("timestamp"), name=name
    )


def _numeric(series: pd.Series, key: str, path, header: bool, encoding: str) -> np.ndarray:
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        line = _line_of_row(path, row, header, encoding)
        raise DataFormatError(path, line, f"expected a number for {key}, got {series.iloc[row]!r}")
    return converted.to_numpy()


def _ids(series: pd.Series) -> np.ndarray:
    """Raw IDs as integers when every value is an integer, else as stripped strings."""
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    text = series.astype(str).str.strip()
    as_int = pd.to_numeric(text, errors="coerce")
    if not as_int.isna().any() and (as_int == np.round(as_int)).all():
        return as_int.to_numpy(dtype=np.int64)
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


def read_csv_with_header(path, name: str | None = None) -> Interactions:
    """A csv with a ``user,item[,rating][,timestamp]`` header (e.g. the ML-1M csv copy)."""
    with _open_text(Path(path), "utf-8") as handle:
        first = handle.readline().strip().split(",")
    columns = {name.strip().lower(): name for name in first if name.strip().lower() in COLUMNS}
    if "user" not in columns or "item" not in columns:
        raise DataFormatError(path, 1, f"expected a header naming user and item, got {first}")
    return read_delimited(path, sep=",", header=True, columns=columns, name=name)
