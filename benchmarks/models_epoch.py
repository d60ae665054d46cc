"""Seconds per training epoch of the paper's eight configurations on MovieLens-1M.

Settings are the authors' ML-1M choices (NOTES section 5); UIB draws 32 negatives per
positive, BPR and SML one, NCF's BCE four. One epoch each, after the split is built.
CPU seconds are printed beside wall seconds: on a shared machine they vary less.

    PYTHONPATH=src python benchmarks/models_epoch.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from uibrec.config import make_config
from uibrec.data.registry import load_dataset
from uibrec.data.split import leave_one_out, prepare
from uibrec.sampling import NegativeSampler
from uibrec.training import build_components, make_optimizer, train_epoch, use_sparse_gradients

# (model, loss) -> settings, from the ML-1M column of the paper's appendix.
SETTINGS = {
    ("mf", "native"): {"lr": 1.0, "dropout": 0.1},
    ("mf", "uib"): {"lr": 1.0, "dropout": 0.1, "alpha": 8.0},
    ("ncf", "native"): {"lr": 1.0, "dropout": 0.1},
    ("ncf", "uib"): {"lr": 1.0, "dropout": 0.1, "alpha": 8.0},
    ("sml", "native"): {"lr": 1.0, "loss_options": {"lam": 0.3, "gamma": 128.0}},
    ("sml", "uib"): {"lr": 1.0, "alpha": 0.2, "loss_options": {"lam": 0.3, "gamma": 128.0}},
    ("lightgcn", "native"): {"lr": 0.1, "weight_decay": 1e-4},
    ("lightgcn", "uib"): {"lr": 0.3, "weight_decay": 1e-4, "alpha": 8.0},
}


def time_epoch(model: str, loss: str, split, batch_size: int, seed: int = 0) -> dict:
    config = make_config({"model": model, "loss": loss, "batch_size": batch_size,
                          "seed": seed, **SETTINGS[model, loss]})
    torch.manual_seed(seed)
    start = time.perf_counter()
    comp = build_components(config, split.num_users, split.num_items,
                            split.train.user_idx, split.train.item_idx)
    build_seconds = time.perf_counter() - start
    comp.model.sparse_gradients = use_sparse_gradients(config, split.num_users)  # as the trainer
    optimizer = make_optimizer(config, comp.parameters(), comp.model.sparse_parameters())
    sampler = NegativeSampler(split.train.user_idx, split.train.item_idx, split.num_users,
                              split.num_items, seed=seed)
    users = torch.as_tensor(split.train.user_idx)
    items = torch.as_tensor(split.train.item_idx)
    generator = torch.Generator().manual_seed(seed)
    cpu_start = time.process_time()
    stats = train_epoch(comp, optimizer, sampler, users, items, batch_size,
                        config.weight_decay, generator)
    return {"model": model, "loss": comp.loss_name, "negatives": comp.num_negatives,
            "seconds": stats.seconds, "cpu": time.process_time() - cpu_start,
            "build": build_seconds, "train_loss": stats.loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the machines here are small and shared)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--only", nargs="*", metavar="MODEL:LOSS",
                        help="a subset, e.g. lightgcn:native ncf:uib")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = leave_one_out(prepare(load_dataset(args.dataset, args.data_dir)), seed=0)
    print(f"{args.dataset}: {split.num_users} users, {split.num_items} items, "
          f"{len(split.train)} training rows; batch {args.batch_size}, "
          f"{args.threads} thread(s)")
    wanted = [tuple(pair.split(":")) for pair in args.only] if args.only else list(SETTINGS)
    rows = []
    for model, loss in wanted:
        row = time_epoch(model, loss, split, args.batch_size)
        rows.append(row)
        print(f"{model:9s} {row['loss']:8s} M={row['negatives']:<3d} "
              f"{row['seconds']:7.1f} s/epoch (CPU {row['cpu']:.1f} s; build "
              f"{row['build']:.1f} s; loss {row['train_loss']:.4f})", flush=True)
    reference = [r["seconds"] for r in rows if (r["model"], r["loss"]) == ("mf", "uib")]
    if reference:
        print("relative to BPR+UIB:", ", ".join(
            f"{r['model']}+{r['loss']} {r['seconds'] / reference[0]:.2f}x" for r in rows))
    assert np.isfinite([r["train_loss"] for r in rows]).all()


if __name__ == "__main__":
    main()
