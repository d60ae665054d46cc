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
during an epoch show how far it got should it be stopped. Aim for 10m: an epoch under
15 s and under 3 GiB. CPU-heavy: run it by hand, once.
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

SIZES = {"10m": (69_878, 10_677, 10_000_054), "100m": (698_780, 10_677, 100_000_540),
         "1m": (6_988, 10_677, 1_000_005), "tiny": (2_000, 500, 50_000)}  # quick checks


def peak_gib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries a parent's
    ru_maxrss into the child it forks and execs, so a fresh worker would start at the
    parent's peak."""
    with open("/proc/self/status") as status:
        line = next(text for text in status if text.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20  # KiB -> GiB


def generate(users: int, items: int, rows: int, path: Path, seed: int) -> dict:
    """In a child process: the keys of the synthetic interactions, saved as .npy."""
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--generate", str(path), str(users), str(items),
                    str(rows), str(seed)], check=True, env=os.environ)
    return {"generate s": round(time.perf_counter() - start, 1)}


def _generate_main(path: str, users: str, items: str, rows: str, seed: str) -> None:
    from uibrec.data.synthetic import synthetic_keys

    keys = synthetic_keys(int(users), int(items), int(rows), seed=int(seed))
    np.save(path, keys)
    print(f"generated {len(keys):,} keys; generator peak {peak_gib():.2f} GiB", flush=True)


class ProgressSampler:
    """Passes draws through and prints how far the epoch got, every ``every`` batches."""

    def __init__(self, sampler, batches: int, every: int, enabled: bool):
        self.sampler, self.batches, self.every, self.enabled = sampler, batches, every, enabled
        self.count, self.start = 0, time.perf_counter()

    def sample(self, users, num_negatives):
        self.count += 1
        if self.enabled and self.count % self.every == 0:
            seconds = time.perf_counter() - self.start
            print(f"  batch {self.count:,}/{self.batches:,} after {seconds:.1f} s "
                  f"(peak {peak_gib():.2f} GiB)", flush=True)
        return self.sampler.sample(users, num_negatives)


def _timed(figures: dict, key: str, func, *args, **kwargs):
    start = time.perf_counter()
    out = func(*args, **kwargs)
    figures[key] = round(time.perf_counter() - start, 2)
    return out


def train_and_measure(keys_path: str, num_users: int, num_items: int, args,
                      parallel=None) -> dict:
    """Split, sample candidates, train ``args.epochs`` epochs and evaluate; figures."""
    from uibrec.config import make_config
    from uibrec.data.candidates import sample_candidates
    from uibrec.data.interactions import IdMap, Interactions
    from uibrec.data.split import leave_one_out
    from uibrec.training import setup_training, train_epoch

    main = parallel is None or parallel.is_main
    figures: dict = {"peak GiB after imports": round(peak_gib(), 2)}
    keys = np.load(keys_path)
    data = Interactions(keys // num_items, keys % num_items, IdMap(np.arange(num_users)),
                        IdMap(np.arange(num_items)), name="synthetic")
    del keys
    split = _timed(figures, "split s", leave_one_out, data, seed=0)
    del data
    candidates = _timed(figures, "candidates s", sample_candidates, split, 100, 0)
    config = make_config({}, {"loss": "uib", "alpha": 8.0, "dropout": 0.1, "dim": 32,
                              "num_negatives": 32, "batch_size": 1024, "lr": 1.0})
    comp, optimizer, sampler, evaluator, users, items = _timed(
        figures, "setup s", setup_training, config, split, candidates, parallel)
    batches = -(-len(users) // config.batch_size)
    figures["peak GiB before training"] = round(peak_gib(), 2)
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        progress = ProgressSampler(sampler, batches, max(1, batches // 10), main)
        stats = train_epoch(comp, optimizer, progress, users, items, config.batch_size,
                            config.weight_decay, generator, parallel)
        epochs.append(stats.seconds)
        if main:
            print(f"epoch {epoch}: {stats.seconds:.1f} s, loss {stats.loss:.4f}", flush=True)
    figures["epoch s"] = [round(s, 2) for s in epochs]
    figures["item scores per s (M)"] = round(
        len(split.train) * (1 + comp.num_negatives) / min(epochs) / 1e6, 2)
    figures["peak GiB after training"] = round(peak_gib(), 2)
    metrics = _timed(figures, "evaluate sampled s", evaluator.evaluate, comp.model, "valid")
    figures["valid ndcg@10"] = round(metrics["ndcg@10"], 4)
    if args.full:
        _timed(figures, "evaluate full s", evaluator.evaluate, comp.model, "valid", "full")
    figures["peak GiB"] = round(peak_gib(), 2)
    figures["train rows"] = len(split.train)
    return figures


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
    if args.size == "10m":
        best, peak = min(figures["epoch s"]), max(figures.get("peak GiB per process",
                                                              [figures["peak GiB"]]))
        ok = best < 15 and peak < 3
        print(f"epoch {best:.1f} s, peak {peak:.2f} GiB -> "
              f"{'within' if ok else 'OUTSIDE'} the aim (15 s, 3 GiB)")


if __name__ == "__main__":
    main()
