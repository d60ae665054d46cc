"""Named datasets: where each is published, which files it has, how to read them.

A dataset is looked for, in order, in the folder given (``data_dir``), in
``$UIBREC_DATA_DIR``, and in the user cache (``$UIBREC_CACHE_DIR`` or
``~/.cache/uibrec/data``). If none holds it, it is downloaded into the cache from its
official address; when that fails (offline), the error says which file to put where.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from uibrec.data.formats import (
    read_amazon_ratings_csv,
    read_amazon_reviews,
    read_indexed_ratings,
    read_lastfm,
    read_recbole_inter,
)
from uibrec.data.interactions import Interactions
from uibrec.data.readers import read_csv_with_header, read_movielens_100k, read_movielens_dat

logger = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    """A named dataset is in none of the folders searched and could not be downloaded."""


@dataclass(frozen=True)
class DatasetFile:
    """One acceptable file for a dataset, relative to a data folder, and its reader."""

    path: str
    reader: Callable[..., Interactions]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    url: str  # official download address
    files: tuple[DatasetFile, ...]  # in order of preference
    # archive member -> path under the cache folder, for what the download unpacks
    unpack: dict = field(default_factory=dict)
    citation: str = ""


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


register_dataset(DatasetSpec(
    name="ml-100k",
    description="MovieLens 100K (GroupLens): 100,000 ratings, 943 users, 1,682 movies",
    url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    files=(DatasetFile("ml-100k/u.data", read_movielens_100k),),
    unpack={"ml-100k/u.data": "ml-100k/u.data"},
    citation="F. M. Harper and J. A. Konstan. The MovieLens Datasets. ACM TiiS 5(4), 2015.",
))
register_dataset(DatasetSpec(
    name="ml-1m",
    description="MovieLens 1M (GroupLens): 1,000,209 ratings, 6,040 users, 3,706 movies",
    url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    files=(
        DatasetFile("ml-1m/ratings.dat", read_movielens_dat),
        DatasetFile("ml-1m/ratings.dat.gz", read_movielens_dat),
        # A complete csv copy (user,item,rating) whose item numbers follow MovieID order.
        DatasetFile("ml-1m/ratings.csv.gz", read_csv_with_header),
        DatasetFile("ml-1m/ratings.csv", read_csv_with_header),
    ),
    unpack={"ml-1m/ratings.dat": "ml-1m/ratings.dat"},
    citation="F. M. Harper and J. A. Konstan. The MovieLens Datasets. ACM TiiS 5(4), 2015.",
))
register_dataset(DatasetSpec(
    name="ml-10m",
    description="MovieLens 10M (GroupLens): 10,000,054 ratings, 69,878 users, 10,677 movies",
    url="https://files.grouplens.org/datasets/movielens/ml-10m.zip",
    files=(
        DatasetFile("ml-10M100K/ratings.dat", read_movielens_dat),  # the archive's folder
        DatasetFile("ml-10m/ratings.dat", read_movielens_dat),
        DatasetFile("ml-10M100K/ratings.dat.gz", read_movielens_dat),
        DatasetFile("ml-10m/ratings.dat.gz", read_movielens_dat),
    ),
    unpack={"ml-10M100K/ratings.dat": "ml-10M100K/ratings.dat"},
    citation="F. M. Harper and J. A. Konstan. The MovieLens Datasets. ACM TiiS 5(4), 2015.",
))
_AMAZON_BASE = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
register_dataset(DatasetSpec(
    name="aiv",
    description="Amazon Instant Video 5-core (McAuley 2015): 37,126 ratings, 5,130 users, "
                "1,685 items",
    url=_AMAZON_BASE + "reviews_Amazon_Instant_Video_5.json.gz",
    files=(
        DatasetFile("amazon-instant-video-5/reviews_Amazon_Instant_Video_5.json.gz",
                    read_amazon_reviews),
        DatasetFile("reviews_Amazon_Instant_Video_5.json.gz", read_amazon_reviews),
        # An indexed copy: user index, item index, rating (no timestamps, no raw IDs).
        DatasetFile("amazon-instant-video-5/ratings.tsv", read_indexed_ratings),
        # Every rating of the category (also at _AMAZON_BASE); its 5-core is rebuilt here,
        # which may differ slightly from the review-based 5-core.
        DatasetFile("amazon-instant-video-5/ratings_Amazon_Instant_Video.csv",
                    partial(read_amazon_ratings_csv, k_core=5)),
        DatasetFile("ratings_Amazon_Instant_Video.csv",
                    partial(read_amazon_ratings_csv, k_core=5)),
    ),
    unpack={"reviews_Amazon_Instant_Video_5.json.gz":
            "amazon-instant-video-5/reviews_Amazon_Instant_Video_5.json.gz"},
    citation="J. McAuley, C. Targett, Q. Shi, A. van den Hengel. Image-based recommendations "
             "on styles and substitutes. SIGIR 2015.",
))
register_dataset(DatasetSpec(
    name="lastfm",
    description="Last.fm hetrec2011-lastfm-2k user_artists: 92,834 listening pairs, 1,892 "
                "users, 17,632 artists; listening counts kept as the rating column",
    url="https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
    files=(
        DatasetFile("lastfm-2k/user_artists.dat", read_lastfm),
        DatasetFile("hetrec2011-lastfm-2k/user_artists.dat", read_lastfm),
    ),
    # The archive holds its files at the top level.
    unpack={"user_artists.dat": "hetrec2011-lastfm-2k/user_artists.dat"},
    citation="I. Cantador, P. Brusilovsky, T. Kuflik. 2nd Workshop on Information "
             "Heterogeneity and Fusion in Recommender Systems (HetRec 2011). RecSys 2011.",
))


def cache_dir() -> Path:
    root = os.environ.get("UIBREC_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "uibrec"


def search_dirs(data_dir=None) -> list[Path]:
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get("UIBREC_DATA_DIR"):
        dirs.append(Path(os.environ["UIBREC_DATA_DIR"]))
    dirs.append(cache_dir() / "data")
    return dirs


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known} "
                       "(or give the path of an interaction file)")
    return DATASETS[name]


def locate(name: str, data_dir=None) -> tuple[Path, DatasetFile] | None:
    """The first file of dataset ``name`` found in the search folders, or None."""
    spec = get_spec(name)
    for folder in search_dirs(data_dir):
        for candidate in spec.files:
            path = folder / candidate.path
            if path.is_file():
                return path, candidate
    return None


def download(name: str, timeout: float = 30.0) -> Path:
    """Fetch dataset ``name`` from its official address into the cache."""
    spec = get_spec(name)
    target = cache_dir() / "data"
    target.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s from %s", name, spec.url)
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        archive = Path(tmp) / Path(spec.url).name
        with urllib.request.urlopen(spec.url, timeout=timeout) as response:
            with open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for member, dest in spec.unpack.items():
                    (target / dest).parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(member) as src, open(target / dest, "wb") as out:
                        shutil.copyfileobj(src, out)
        else:
            dest = target / next(iter(spec.unpack.values()))
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(archive, dest)
    return target


def read_file(path, **read_options) -> Interactions:
    """An interaction file by its kind: RecBole ``.inter``, Amazon review JSON lines
    (``.json``, ``.json.gz``), else a delimited file read with ``read_options``."""
    from uibrec.data.readers import read_delimited

    name = Path(path).name.lower()
    if name.endswith(".inter"):
        return read_recbole_inter(path, **read_options)
    if name.endswith((".json", ".json.gz")):
        return read_amazon_reviews(path, **read_options)
    return read_delimited(path, **read_options)


def load_dataset(name_or_path, data_dir=None, download_missing: bool = True,
                 **read_options) -> Interactions:
    """Load a registered dataset by name, or an interaction file by path.

    Args:
        name_or_path: a name from ``uibrec.DATASETS`` (``"ml-1m"``, ...) or the path of a
            delimited file, read with :func:`~uibrec.data.readers.read_delimited` and
            ``read_options`` (``sep``, ``header``, ``columns``).
        data_dir: a folder to look in first.
        download_missing: fetch a missing named dataset from its official address.
    """
    if str(name_or_path) not in DATASETS:
        path = Path(name_or_path)
        if path.is_file():
            return read_file(path, **read_options)
        if path.is_dir():
            raise ValueError(f"{path}: is a folder; expected an interaction file (csv, tsv, "
                             f".inter, .json) or a dataset name ({', '.join(sorted(DATASETS))})"
                             "; give the folder holding datasets with --data-dir")
        if path.suffix or len(path.parts) > 1:  # looks like a file, not a dataset name
            raise FileNotFoundError(f"{path}: no such file (and not a dataset name: "
                                    f"known datasets are {', '.join(sorted(DATASETS))})")
        get_spec(str(name_or_path))  # raises with the list of known names
    name = str(name_or_path)
    # A mistyped folder would otherwise end in a download attempt and "offline?".
    if data_dir is not None and not Path(data_dir).is_dir():
        what = "is not a folder" if Path(data_dir).exists() else "no such folder"
        raise FileNotFoundError(f"{data_dir}: {what} (the data folder, --data-dir)")
    found = locate(name, data_dir)
    if found is None and download_missing:
        try:
            download(name)
        except OSError as exc:
            logger.warning("download of %s failed: %s", name, exc)
        found = locate(name, data_dir)
    if found is None:
        spec = get_spec(name)
        folders = ", ".join(str(d) for d in search_dirs(data_dir))
        expected = " or ".join(f.path for f in spec.files)
        raise DatasetNotFoundError(
            f"dataset {name!r} not found and could not be downloaded (offline?). "
            f"Download {spec.url}, and put {expected} under one of: {folders} "
            "(set --data-dir or UIBREC_DATA_DIR to choose the folder)."
        )
    path, entry = found
    logger.info("reading %s from %s", name, path)
    data = entry.reader(path, name=name)
    data.name = name
    return data
