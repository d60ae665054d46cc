"""Seconds per epoch and peak memory of MF+UIB on synthetic data of MovieLens-10M's size.

    PYTHONPATH=src python benchmarks/synthetic_epoch.py              # 10M rows (ML-10M)
    PYTHONPATH=src python benchmarks/synthetic_epoch.py --size 100m  # 100M rows
    PYTHONPATH=src python benchmarks/synthetic_epoch.py --processes 2

Sizes: ``10m`` is ML-10M's 69,878 users, 10,677 items and 10,000,054 interactions;
``100m`` has ten times the users and the interactions over the same items (the same
density). Interactions come from :mod:`uibrec.data.synthetic` (Zipf item popularity),
generated in a child process so that the peak memory reported is the training process's.
The data is then split (leave-one-out), 100 candidates are drawn per user, and MF with the
UIB loss (d = 32, M = 32 negatives, batch 1024, Adagrad) trains for ``--epochs`` epochs.
Prints the seconds of each step, item scores per second, the time to evaluate every user
(sampled; by full ranking with ``--full``), and peak resident memory; progress lines
during an epoch show how far it got should it be stopped, and ``--epoch-limit SECONDS``
stops it and reports the partial epoch (with ``--no-eval``, no candidates are drawn: only
the epoch is timed). Aim for 10m: an epoch under 15 s and under 3 GiB. CPU-heavy: run
it by hand, once.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# As uibrec/__init__.py does, before torch loads OpenMP: spinning threads on a busy machine
# made epochs 10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from memory import peak_gib  # noqa: E402  (benchmarks/memory.py)

SIZES = {"10m": (69_878, 10_677, 10_000_054), "100m": (698_780, 10_677, 100_000_540),
         "1m": (6_988, 10_677, 1_000_005), "tiny": (2_000, 500, 50_000)}  # quick checks



def generate(users: int, items: int, rows: int, path: Path, seed: int) -> dict:
    """In a child process: the keys of the synthetic interactions, saved as .npy."""
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--generate", str(path), str(users), str(items),
                    str(rows), str(seed)], check=True, env=os.environ)
    seconds = round(time.perf_counter() - start, 1)
    print(f"generate s: {seconds}", flush=True)
    return {"generate s": seconds}


def _generate_main(path: str, users: str, items: str, rows: str, seed: str) -> None:
    from uibrec.data.synthetic import synthetic_keys

    keys = synthetic_keys(int(users), int(items), int(rows), seed=int(seed))
    np.save(path, keys)
    print(f"generated {len(keys):,} keys; generator peak {peak_gib():.2f} GiB", flush=True)


class EpochTimeUp(Exception):
    """The epoch ran past ``--epoch-limit``: its partial figures are reported."""


class ProgressSampler:
    """Passes draws through, prints how far the epoch got every ``every`` batches, and
    stops the epoch after ``limit`` seconds."""

    def __init__(self, sampler, batches: int, every: int, enabled: bool, limit: float | None):
        self.sampler, self.batches, self.every, self.enabled = sampler, batches, every, enabled
        self.limit, self.count, self.start = limit, 0, time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def sample(self, users, num_negatives):
        if self.limit is not None and self.seconds() > self.limit:
            raise EpochTimeUp
        self.count += 1
        if self.enabled and self.count % self.every == 0:
            print(f"  batch {self.count:,}/{self.batches:,} after {self.seconds():.1f} s "
                  f"(peak {peak_gib():.2f} GiB)", flush=True)
        return self.sampler.sample(users, num_negatives)


def _timed(figures: dict, key: str, show: bool, func, *args, **kwargs):
    start = time.perf_counter()
    out = func(*args, **kwargs)
    figures[key] = round(time.perf_counter() - start, 2)
    if show:
        print(f"{key}: {figures[key]} (peak {peak_gib():.2f} GiB)", flush=True)
    return out


def _split(keys_path: str, num_users: int, num_items: int):
    from uibrec.data.interactions import IdMap, Interactions
    from uibrec.data.split import leave_one_out

    keys = np.load(keys_path)
    data = Interactions(keys // num_items, keys % num_items, IdMap(np.arange(num_users)),
                        IdMap(np.arange(num_items)), name="synthetic")
    del keys
    return leave_one_out(data, seed=0)


def train_and_measure(keys_path: str, num_users: int, num_items: int, args,
                      parallel=None) -> dict:
    """Split, sample candidates, train ``args.epochs`` epochs and evaluate; figures."""
    from uibrec.config import make_config
    from uibrec.data.candidates import sample_candidates
    from uibrec.training import setup_training

    main = parallel is None or parallel.is_main
    figures: dict = {"peak GiB after imports": round(peak_gib(), 2)}
    split = _timed(figures, "load and split s", main, _split, keys_path, num_users,
                   num_items)
    candidates = None
    if not args.no_eval:
        candidates = _timed(figures, "candidates s", main, sample_candidates, split, 100, 0)
    config = make_config({}, {"loss": "uib", "alpha": 8.0, "dropout": 0.1, "dim": 32,
                              "num_negatives": 32, "batch_size": 1024, "lr": 1.0})
    comp, optimizer, sampler, evaluator, users, items = _timed(
        figures, "setup s", main, setup_training, config, split, candidates, parallel)
    figures["train rows"] = len(split.train)
    figures["peak GiB before training"] = round(peak_gib(), 2)
    _train(figures, comp, optimizer, sampler, users, items, config, args, parallel)
    if not args.no_eval and "partial epoch" not in figures:
        metrics = _timed(figures, "evaluate sampled s", main, evaluator.evaluate,
                         comp.model, "valid")
        figures["valid ndcg@10"] = round(metrics["ndcg@10"], 4)
        if args.full:
            _timed(figures, "evaluate full s", main, evaluator.evaluate, comp.model,
                   "valid", "full")
    figures["peak GiB"] = round(peak_gib(), 2)
    return figures


def _train(figures, comp, optimizer, sampler, users, items, config, args, parallel):
    from uibrec.training import train_epoch

    main = parallel is None or parallel.is_main
    batches = -(-len(users) // config.batch_size)
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        progress = ProgressSampler(sampler, batches, max(1, batches // 20), main,
                                   args.epoch_limit)
        try:
            stats = train_epoch(comp, optimizer, progress, users, items, config.batch_size,
                                config.weight_decay, generator, parallel)
        except EpochTimeUp:
            done = progress.count
            figures["partial epoch"] = {
                "batches": done, "of": batches, "seconds": round(progress.seconds(), 1),
                "projected epoch s": round(progress.seconds() * batches / max(done, 1), 1)}
            figures["item scores per s (M)"] = round(
                done * config.batch_size * (1 + comp.num_negatives) / progress.seconds()
                / 1e6, 2)
            break
        epochs.append(stats.seconds)
        if main:
            print(f"epoch {epoch}: {stats.seconds:.1f} s, loss {stats.loss:.4f}", flush=True)
    if epochs:
        figures["epoch s"] = [round(s, 2) for s in epochs]
        figures["item scores per s (M)"] = round(
            len(users) * (1 + comp.num_negatives) / min(epochs) / 1e6, 2)
    figures["peak GiB after training"] = round(peak_gib(), 2)


def _worker(rank: int, world_size: int, port: int, keys_path: str, sizes, args,
            out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(args.threads)
    from uibrec.distributed import Parallel

    parallel = Parallel.start("cpu")
    try:
        figures = train_and_measure(keys_path, sizes[0], sizes[1], args, parallel)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(figures))
    finally:
        parallel.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    if len(sys.argv) == 7 and sys.argv[1] == "--generate":
        _generate_main(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="10m")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: cores / processes)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also time full ranking")
    parser.add_argument("--no-eval", action="store_true",
                        help="no candidates and no evaluation: time the epoch only")
    parser.add_argument("--epoch-limit", type=float, default=None, metavar="SECONDS",
                        help="stop an epoch after this long and report its partial figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.processes)
    users, items, rows = SIZES[args.size]
    print(f"{args.size}: {users:,} users, {items:,} items, {rows:,} interactions; "
          f"{args.processes} process(es) x {args.threads} thread(s); load "
          f"{open('/proc/loadavg').read().split()[:3]}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        keys_path = str(Path(tmp) / "keys.npy")
        figures = generate(users, items, rows, Path(keys_path), args.seed)
        if args.processes == 1:
            torch.set_num_threads(args.threads)
            figures.update(train_and_measure(keys_path, users, items, args))
        else:
            import torch.multiprocessing as mp

            mp.spawn(_worker, args=(args.processes, _free_port(), keys_path, (users, items),
                                    args, tmp), nprocs=args.processes, join=True)
            ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text())
                     for r in range(args.processes)]
            figures.update(ranks[0])
            figures["peak GiB per process"] = [r["peak GiB"] for r in ranks]
    figures["load after"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(figures, indent=2))
    if args.size == "10m" and "epoch s" in figures:
        best, peak = min(figures["epoch s"]), max(figures.get("peak GiB per process",
                                                              [figures["peak GiB"]]))
        ok = best < 15 and peak < 3
        print(f"epoch {best:.1f} s, peak {peak:.2f} GiB -> "
              f"{'within' if ok else 'OUTSIDE'} the aim (15 s, 3 GiB)")


if __name__ == "__main__":
    main()
