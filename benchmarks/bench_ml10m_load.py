"""Benchmark: load and split a 10-million-line file in MovieLens-10M's format.

Writes a synthetic ``ratings.dat`` with ML-10M's numbers (10,000,054 ratings, 69,878 users
with at least 20 ratings each, 10,677 movies, non-contiguous IDs, half-star ratings) into a
temporary folder, then loads it in a fresh process (so that peak memory is the loader's)
with the registry's ML-10M reader, cleans it (``prepare``) and splits it
(``leave_one_out``). Prints seconds per step and peak resident memory. Aim: under 30 s and
under 3 GiB. CPU-heavy: run it once, by hand::

    PYTHONPATH=src python benchmarks/bench_ml10m_load.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_RATINGS, N_USERS, N_ITEMS = 10_000_054, 69_878, 10_677
MIN_PER_USER = 20
_RATINGS = np.array(["0.5", "1", "1.5", "2", "2.5", "3", "3.5", "4", "4.5", "5"])


def synthetic_columns(seed: int = 0):
    """User IDs, movie IDs, rating strings and timestamps of every line, users grouped."""
    rng = np.random.default_rng(seed)
    user_ids = np.sort(rng.choice(np.arange(1, 71_568), N_USERS, replace=False))
    item_ids = rng.choice(np.arange(1, 65_134), N_ITEMS, replace=False)
    weights = rng.lognormal(0.0, 0.8, N_USERS)
    counts = MIN_PER_USER + rng.multinomial(N_RATINGS - MIN_PER_USER * N_USERS,
                                            weights / weights.sum())
    assert counts.max() < N_ITEMS and counts.sum() == N_RATINGS
    # Distinct movies per user: an arithmetic walk with a step coprime to N_ITEMS (3 * 3559).
    steps = rng.integers(1, N_ITEMS, N_USERS)
    steps = np.where((steps % 3 == 0) | (steps % 3559 == 0), 1, steps)
    owner = np.repeat(np.arange(N_USERS), counts)
    within = np.arange(N_RATINGS) - np.repeat(np.cumsum(counts) - counts, counts)
    offsets = rng.integers(0, N_ITEMS, N_USERS)
    positions = (offsets[owner] + within * steps[owner]) % N_ITEMS
    ratings = _RATINGS[rng.integers(0, len(_RATINGS), N_RATINGS)]
    timestamps = rng.integers(789_652_009, 1_231_131_736, N_RATINGS)
    return user_ids[owner], item_ids[positions], ratings, timestamps


def write_file(path: Path, seed: int = 0) -> None:
    users, items, ratings, timestamps = synthetic_columns(seed)
    chunk = 1_000_000
    with open(path, "w", encoding="latin-1") as out:
        for start in range(0, N_RATINGS, chunk):
            rows = zip(users[start:start + chunk].tolist(), items[start:start + chunk].tolist(),
                       ratings[start:start + chunk].tolist(),
                       timestamps[start:start + chunk].tolist(), strict=True)
            out.write("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows))


def _rss_gib() -> float:
    with open("/proc/self/status") as status:
        line = next(text for text in status if text.startswith("VmRSS"))
    return int(line.split()[1]) / 2**20


def load_and_split(path: Path) -> dict:
    """Runs in a fresh process: read, prepare and split; seconds and peak memory."""
    from uibrec.data.readers import read_movielens_dat
    from uibrec.data.split import leave_one_out, prepare

    baseline = _rss_gib()
    times = {}
    start = time.perf_counter()
    data = read_movielens_dat(path, name="ml-10m-synthetic")
    times["read s"] = time.perf_counter() - start
    report: dict = {}
    data = prepare(data, min_user=5, report=report)
    times["prepare s"] = time.perf_counter() - start - times["read s"]
    split = leave_one_out(data, seed=0)
    times["total s"] = time.perf_counter() - start
    times["split s"] = times["total s"] - times["read s"] - times["prepare s"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {**{k: round(v, 2) for k, v in times.items()},
            "peak GiB": round(peak, 2), "GiB after imports": round(baseline, 2),
            **split.stats(), "report": report}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--load":
        print(json.dumps(load_and_split(Path(sys.argv[2]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.dat"
        start = time.perf_counter()
        write_file(path)
        print(f"wrote {N_RATINGS:,} lines ({path.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        result = subprocess.run([sys.executable, __file__, "--load", str(path)],
                                capture_output=True, text=True, env=os.environ, check=True)
    stats = json.loads(result.stdout)
    print(json.dumps(stats, indent=2))
    ok = stats["total s"] < 30 and stats["peak GiB"] < 3
    print(f"load + split: {stats['total s']:.1f} s, peak {stats['peak GiB']:.2f} GiB -> "
          f"{'within' if ok else 'OUTSIDE'} the aim (30 s, 3 GiB)")


if __name__ == "__main__":
    main()
