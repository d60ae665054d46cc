"""Seconds per training epoch, peak memory, and evaluation time on a real dataset.

    python benchmarks/epoch.py --data-dir ../shared/data [--dataset ml-1m] [--loss uib]
        [--model mf] [--negatives 32] [--epochs 2] [--threads 2]

Prints one line per epoch and a summary: seconds per epoch, item scores per second
(positives plus negatives scored per second), the time to evaluate every user on the
cached candidates and by full ranking, and the process's peak resident memory.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads that spin between small operations made an epoch
# 20x slower whenever another process was busy (see uibrec/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time

import torch
from memory import peak_gib  # benchmarks/memory.py: this script's folder is on sys.path

from uibrec.config import make_config
from uibrec.evaluation import Evaluator
from uibrec.sampling import NegativeSampler
from uibrec.training import (
    build_components,
    load_split,
    make_optimizer,
    train_epoch,
    use_sparse_gradients,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("UIBREC_DATA_DIR"))
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--model", default="mf")
    parser.add_argument("--loss", default="uib")
    parser.add_argument("--alpha", type=float, default=8.0)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--negatives", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other Config setting (value parsed as YAML)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from uibrec.config import parse_value

    extra = dict(pair.split("=", 1) for pair in args.set)
    config = make_config({}, {
        "dataset": args.dataset, "data_dir": args.data_dir, "model": args.model,
        "loss": args.loss, "alpha": args.alpha, "dropout": args.dropout,
        "num_negatives": args.negatives, "batch_size": args.batch_size,
        "output": "/tmp/uibrec-bench", **{k: parse_value(v) for k, v in extra.items()},
    })
    start = time.perf_counter()
    split, candidates = load_split(config)
    print(f"data: {time.perf_counter() - start:.1f}s, {len(split.train):,} training "
          f"interactions, {split.num_users:,} users, {split.num_items:,} items")

    comp = build_components(config, split.num_users, split.num_items,
                            split.train.user_idx, split.train.item_idx)
    comp.model.sparse_gradients = use_sparse_gradients(config, split.num_users)  # as the trainer
    optimizer = make_optimizer(config, comp.parameters(), comp.model.sparse_parameters())
    sampler = NegativeSampler(split.train.user_idx, split.train.item_idx, split.num_users,
                              split.num_items, seed=0)
    users = torch.as_tensor(split.train.user_idx)
    items = torch.as_tensor(split.train.item_idx)
    generator = torch.Generator().manual_seed(0)
    times, cpu_times = [], []
    for epoch in range(1, args.epochs + 1):
        cpu_start = time.process_time()
        stats = train_epoch(comp, optimizer, sampler, users, items, config.batch_size,
                            config.weight_decay, generator)
        times.append(stats.seconds)
        # CPU seconds: on a busy machine wall seconds include the waits for a core.
        cpu_times.append(time.process_time() - cpu_start)
        print(f"epoch {epoch}: {stats.seconds:.2f}s ({cpu_times[-1]:.2f} CPU s) "
              f"loss {stats.loss:.4f}")
    best = min(times)
    scored = len(split.train) * (1 + comp.num_negatives)
    print(f"{args.model}+{comp.loss_name} M={comp.num_negatives}: best epoch {best:.2f}s "
          f"({min(cpu_times):.2f} CPU s), {scored / best / 1e6:.1f}M item scores/s; "
          f"load {open('/proc/loadavg').read().split()[0]}")

    evaluator = Evaluator(split, candidates)
    for protocol in ("sampled", "full"):
        evaluator.evaluate(comp.model, "test", protocol)  # warm up (masks, caches)
        start = time.perf_counter()
        metrics = evaluator.evaluate(comp.model, "test", protocol)
        print(f"evaluate {len(split.eval_users):,} users, {protocol}: "
              f"{time.perf_counter() - start:.3f}s (ndcg@10 {metrics['ndcg@10']:.4f})")
    print(f"peak memory: {peak_gib() * 1024:.0f} MiB")


if __name__ == "__main__":
    main()
