"""What a data file really holds, and where its lines are.

Readers open files through :class:`TextFile`, which looks at the first bytes instead of
trusting the name: a gzip file named ``.tsv`` is read as gzip and a plain file named
``.gz`` as plain text (each with a warning), while a zip archive, an HTML page (a failed
download) or a binary file is refused with a :class:`DataFormatError`. It also maps data
rows back to file lines, so that every error can name the line.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}
_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, None: open}
_CHUNK = 1 << 24  # bytes read at a time when counting lines


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names file and line."""

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}, line {line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def sniff_compression(path: Path) -> str | None:
    """The compression the file's first bytes show (``"gzip"``, ``"bz2"``, ``"xz"``)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    found = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
    if found == "zip":
        raise DataFormatError(path, None, "is a zip archive: unpack it and give the file inside")
    named = _SUFFIX.get(path.suffix.lower())
    if found != named:
        logger.warning("%s: the name says %s but the content is %s; reading the content",
                       path, named or "plain text", found or "plain text")
    return found


def _is_blank(raw: bytes, keep: bytes = b"") -> bool:
    """Whether pandas skips this line as blank: nothing but whitespace other than ``keep``
    (a tab separator makes a line holding only a tab a row of empty fields)."""
    return not raw.strip(bytes(c for c in b" \t\r\n\f\v" if c not in keep))


@dataclass(frozen=True)
class TextFile:
    """A text data file, possibly compressed, with its encoding."""

    path: Path
    encoding: str
    compression: str | None

    @classmethod
    def open(cls, path, encoding: str = "utf-8") -> TextFile:
        """Check that ``path`` exists and holds text; raises DataFormatError otherwise."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, not a file")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        text = cls(path, encoding, sniff_compression(path))
        text._check_head()
        return text

    def binary(self):
        """The decompressed bytes, as a binary file object."""
        try:
            return _OPENERS[self.compression](self.path, "rb")
        except OSError as exc:
            raise DataFormatError(self.path, None, f"cannot be read: {exc}") from exc

    def _check_head(self) -> None:
        try:
            with self.binary() as handle:
                head = handle.read(4096)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise DataFormatError(self.path, None, f"is a damaged {self.compression} file: "
                                  f"{exc}") from exc
        if b"\x00" in head:
            raise DataFormatError(self.path, None, "holds binary data, not text")
        start = head.lstrip()[:15].lower()
        if start.startswith((b"<!doctype html", b"<html")):
            raise DataFormatError(self.path, None, "is an HTML page, not data "
                                  "(a failed download?)")

    def first_line(self, keep: bytes = b"") -> tuple[int, str] | None:
        """Number (1-based) and text of the first non-blank line; None for a blank file."""
        with self.binary() as handle:
            for number, raw in enumerate(handle, start=1):
                if not _is_blank(raw, keep):
                    return number, self.decode(raw, number).rstrip("\r\n")
        return None

    def decode(self, raw: bytes, number: int) -> str:
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise self.encoding_error(number, raw, exc) from exc

    def encoding_error(self, number: int, raw: bytes, exc: UnicodeDecodeError):
        byte = raw[exc.start:exc.start + 1].hex().upper()
        hint = (" (MovieLens and other older files are Latin-1: read them with "
                "encoding='latin-1')" if self.encoding.lower().replace("-", "") == "utf8"
                else "")
        return DataFormatError(self.path, number, f"is not {self.encoding} text: byte 0x{byte} "
                               f"at column {exc.start + 1}{hint}")

    def find_undecodable(self) -> DataFormatError:
        """The error for the first line that is not valid in the file's encoding."""
        with self.binary() as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    raw.decode(self.encoding)
                except UnicodeDecodeError as exc:
                    return self.encoding_error(number, raw, exc)
        return DataFormatError(self.path, None, f"is not {self.encoding} text")

    def count_lines(self) -> int:
        """Lines in the file, counting a last line without a line end."""
        lines, last = 0, b"\n"
        with self.binary() as handle:
            while chunk := handle.read(_CHUNK):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return lines + (last != b"\n")

    def line_of_row(self, row: int, skip: int = 0, keep: bytes = b"") -> int:
        """File line (1-based) of data row ``row`` (0-based) as pandas counts rows: the
        first ``skip`` lines and blank lines are not rows."""
        seen = -1
        with self.binary() as handle:
            for number, raw in enumerate(handle, start=1):
                if number > skip and not _is_blank(raw, keep):
                    seen += 1
                    if seen == row:
                        return number
        return row + 1 + skip
