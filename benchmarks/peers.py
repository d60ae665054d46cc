"""uibrec against the peer libraries that install here, on the same MovieLens-1M split.

    PYTHONPATH=src python benchmarks/peers.py --data-dir ../shared/data \
        [--peers-python .venv-peers/bin/python] [--epochs 3] [--target 0.55] [--budget 120]

The split (the paper's: 5-interaction filter, random leave-one-out, 100 cached candidates
per user) is built once, by uibrec, and handed to every library. Each library then runs in
its own fresh process, one after the other, so that peak memory is its own: BPR matrix
factorisation with d = 32 and, where the library has batches, batch 1024. uibrec runs
twice: with BPR (one negative per positive, the peers' task) and with UIB (32 negatives).

Printed per library: seconds per training epoch (median), item scores per second (the
positive and negative scores an epoch computes, per second), the seconds to evaluate the
validation users on the sampled protocol and by the library's own full ranking, peak
resident memory, and the training seconds and epochs to reach a validation NDCG@10 of
``--target`` on the paper's protocol (or the best reached within ``--budget`` training
seconds); then the ratios uibrec-bpr / peer.

Peers: implicit, cornac (< 2.3: its 2.3 wheels need a newer libstdc++ than many systems
have) and RecBole, which needs numpy < 2, pandas < 2.3 and scipy < 1.12, so they live in
their own virtual environment (``pip install -e '.[peers]'`` there, see pyproject's
``peers`` extra); give its interpreter with ``--peers-python``. A peer that does not
import is reported as skipped. Sampled metrics of the peers are computed from their
learned factors by one NumPy function (ties count against, as in uibrec); the full-ranking
time is each library's own top-10 path. Hyperparameters are each library's defaults for
BPR except d and batch; none was tuned here. CPU-heavy: run it once, by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as uibrec does, before torch loads

import numpy as np  # noqa: E402
from memory import peak_gib  # noqa: E402  (benchmarks/memory.py)

LIBRARIES = ("uibrec-bpr", "uibrec-uib", "implicit", "cornac", "recbole")
DIM, BATCH = 32, 1024



def sampled_ndcg(user_vecs, item_vecs, users, targets, candidates, k: int = 10) -> float:
    """NDCG@k of each target among its candidates, scored by dot products; ties count
    against the target (uibrec's rule). ``user_vecs (U, d)``, ``item_vecs (I, d)``."""
    items = np.concatenate([targets[:, None], candidates], axis=1)  # (n, 1+C)
    scores = np.einsum("nd,ncd->nc", user_vecs[users], item_vecs[items])
    ranks = (scores[:, 1:] >= scores[:, :1]).sum(1)
    return float(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).mean())


# ---- one library per process: each returns an object with train_epoch(), ndcg(),
# full_eval() and the number of negatives per positive.


class UibrecRun:
    def __init__(self, data: dict, threads: int, loss: str):
        import torch

        from uibrec.config import make_config
        from uibrec.data.interactions import IdMap, Interactions
        from uibrec.data.split import Split
        from uibrec.training import setup_training

        torch.set_num_threads(threads)
        train = Interactions(data["train_users"], data["train_items"],
                             IdMap(np.arange(int(data["num_users"]))),
                             IdMap(np.arange(int(data["num_items"]))))
        self.split = Split(train, data["eval_users"], data["valid_items"],
                           data["test_items"], seed=0, order="random")
        settings = {"loss": loss, "dim": DIM, "batch_size": BATCH, "dropout": 0.1, "lr": 1.0}
        if loss == "uib":
            settings.update(alpha=8.0, num_negatives=32)
        self.config = make_config({}, settings)
        (self.comp, self.optimizer, self.sampler, self.evaluator, self.users,
         self.items) = setup_training(self.config, self.split, data["candidates"])
        self.negatives = self.comp.num_negatives
        self.generator = torch.Generator().manual_seed(0)

    def train_epoch(self):
        from uibrec.training import train_epoch

        train_epoch(self.comp, self.optimizer, self.sampler, self.users, self.items, BATCH,
                    0.0, self.generator)

    def ndcg(self) -> float:
        return self.evaluator.evaluate(self.comp.model, "valid")["ndcg@10"]

    def full_eval(self):
        self.evaluator.evaluate(self.comp.model, "valid", "full")


class ImplicitRun:
    def __init__(self, data: dict, threads: int):
        import scipy.sparse as sp
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        self.data = data
        shape = (int(data["num_users"]), int(data["num_items"]))
        ones = np.ones(len(data["train_users"]), dtype=np.float32)
        self.user_items = sp.csr_matrix((ones, (data["train_users"], data["train_items"])),
                                        shape=shape)
        # factors=32 plus the item bias implicit adds as one more column.
        self.model = BayesianPersonalizedRanking(factors=DIM, iterations=1,
                                                 num_threads=threads, random_state=0)
        self.negatives = 1

    def train_epoch(self):
        self.model.fit(self.user_items, show_progress=False)  # continues from its factors

    def ndcg(self) -> float:
        d = self.data
        return sampled_ndcg(self.model.user_factors, self.model.item_factors, d["eval_users"],
                            d["valid_items"], d["candidates"])

    def full_eval(self):
        users = self.data["eval_users"]
        self.model.recommend(users, self.user_items[users], N=10,
                             filter_already_liked_items=True)


class CornacRun:
    def __init__(self, data: dict, threads: int):
        import warnings

        from cornac.data import Dataset
        from cornac.models import BPR

        warnings.filterwarnings("ignore", message="Model is already fitted")
        self.data = data
        triples = list(zip(data["train_users"].tolist(), data["train_items"].tolist(),
                           [1.0] * len(data["train_users"])))
        self.train_set = Dataset.from_uir(triples, seed=0)
        self.model = BPR(k=DIM, max_iter=1, num_threads=threads, seed=0)
        self.negatives = 1

    def train_epoch(self):
        self.model.fit(self.train_set)  # a second fit continues from the current factors

    def _vectors(self):
        """Factors in uibrec's indices, the item bias as one more column; items cornac
        never saw in training score 0."""
        d, model = self.data, self.model
        users = np.zeros((int(d["num_users"]), DIM + 1), dtype=np.float32)
        items = np.zeros((int(d["num_items"]), DIM + 1), dtype=np.float32)
        uid, iid = self.train_set.uid_map, self.train_set.iid_map
        users[list(uid.keys()), :DIM] = model.u_factors[list(uid.values())]
        users[:, DIM] = 1.0
        items[list(iid.keys()), :DIM] = model.i_factors[list(iid.values())]
        items[list(iid.keys()), DIM] = model.i_biases[list(iid.values())]
        return users, items

    def ndcg(self) -> float:
        d = self.data
        users, items = self._vectors()
        return sampled_ndcg(users, items, d["eval_users"], d["valid_items"], d["candidates"])

    def full_eval(self):
        uid = self.train_set.uid_map
        for user in self.data["eval_users"].tolist():
            self.model.rank(uid[user], k=10)


class RecboleRun:
    def __init__(self, data: dict, threads: int, folder: Path):
        import torch
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.general_recommender import BPR
        from recbole.trainer import Trainer

        torch.set_num_threads(threads)
        self.data = data
        _write_recbole_files(data, folder / "bench")
        config = Config(model="BPR", dataset="bench", config_dict={
            "data_path": str(folder), "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id"]}, "embedding_size": DIM,
            "train_batch_size": BATCH, "eval_batch_size": 4096, "device": "cpu",
            "use_gpu": False, "show_progress": False, "checkpoint_dir": str(folder),
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            "eval_args": {"mode": "full", "order": "RO", "group_by": "user"},
            "metrics": ["NDCG"], "topk": [10], "seed": 0, "log_wandb": False})
        dataset = create_dataset(config)
        self.train_data, self.valid_data, _ = data_preparation(config, dataset)
        self.model = BPR(config, self.train_data.dataset)
        self.trainer = Trainer(config, self.model)
        tokens = dataset.field2token_id
        self.user_ids = np.array([tokens["user_id"][str(u)]
                                  for u in range(int(data["num_users"]))])
        self.item_ids = np.array([tokens["item_id"].get(str(i), 0)
                                  for i in range(int(data["num_items"]))])
        self.epoch, self.negatives = 0, 1

    def train_epoch(self):
        self.trainer._train_epoch(self.train_data, self.epoch)
        self.epoch += 1

    def ndcg(self) -> float:
        d = self.data
        users = self.model.user_embedding.weight.detach().numpy()[self.user_ids]
        items = self.model.item_embedding.weight.detach().numpy()[self.item_ids]
        return sampled_ndcg(users, items, d["eval_users"], d["valid_items"], d["candidates"])

    def full_eval(self):
        self.trainer.evaluate(self.valid_data, load_best_model=False, show_progress=False)


def _write_recbole_files(data: dict, folder: Path) -> None:
    """RecBole's atomic files for a given split: bench.{train,valid,test}.inter."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": (data["train_users"], data["train_items"]),
             "valid": (data["eval_users"], data["valid_items"]),
             "test": (data["eval_users"], data["test_items"])}
    for name, (users, items) in parts.items():
        lines = "".join(f"{u}\t{i}\n" for u, i in zip(users.tolist(), items.tolist()))
        (folder / f"bench.{name}.inter").write_text("user_id:token\titem_id:token\n" + lines)


def make_run(library: str, data: dict, threads: int, folder: Path):
    if library.startswith("uibrec"):
        return UibrecRun(data, threads, library.split("-")[1])
    if library == "implicit":
        return ImplicitRun(data, threads)
    if library == "cornac":
        return CornacRun(data, threads)
    if library == "recbole":
        return RecboleRun(data, threads, folder)
    raise ValueError(f"unknown library {library!r}; known: {', '.join(LIBRARIES)}")


def measure(library: str, split_path: str, settings: dict) -> dict:
    """Train ``library`` epoch by epoch on the saved split, validating after each epoch,
    until at least ``epochs`` epochs ran and the target is reached or the budget spent."""
    start_gib = peak_gib()
    data = dict(np.load(split_path))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = make_run(library, data, settings["threads"], Path(tmp))
        setup_s = time.perf_counter() - start
        epoch_s, eval_s, ndcgs, reached = [], [], [], None
        while len(epoch_s) < settings["max_epochs"]:
            start = time.perf_counter()
            run.train_epoch()
            epoch_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            ndcgs.append(run.ndcg())
            eval_s.append(time.perf_counter() - start)
            if reached is None and ndcgs[-1] >= settings["target"]:
                reached = len(epoch_s)
            if len(epoch_s) >= settings["epochs"] and (reached or sum(epoch_s) >
                                                       settings["budget"]):
                break
        start = time.perf_counter()
        run.full_eval()
        full_s = time.perf_counter() - start
    rows = len(data["train_users"])
    best = int(np.argmax(ndcgs))
    return {
        "library": library, "setup s": setup_s, "epochs": len(epoch_s),
        "epoch s": float(np.median(epoch_s)),
        "item scores per s": rows * (1 + run.negatives) / float(np.median(epoch_s)),
        "sampled eval s": float(np.median(eval_s)), "full eval s": full_s,
        "peak GiB": peak_gib(), "GiB at start": start_gib,
        "epochs to target": reached,
        "train s to target": float(sum(epoch_s[:reached])) if reached else None,
        "best ndcg@10": ndcgs[best], "best epoch": best + 1,
    }


def build_split(args) -> dict:
    """uibrec's split of the dataset and its cached candidates, as plain arrays."""
    from uibrec.config import make_config
    from uibrec.training import load_split

    config = make_config({}, {"dataset": args.dataset, "data_dir": args.data_dir,
                              "output": tempfile.gettempdir() + "/uibrec-peers"})
    split, candidates = load_split(config)
    return {"train_users": split.train.user_idx, "train_items": split.train.item_idx,
            "num_users": split.num_users, "num_items": split.num_items,
            "eval_users": split.eval_users, "valid_items": split.valid_items,
            "test_items": split.test_items, "candidates": candidates}


def run_library(library: str, python: str, split_path: str, settings: dict) -> dict:
    """One library in a fresh process; a failure to import or run becomes a 'skipped'."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [python, str(Path(__file__).resolve()), "--worker", library, split_path,
               json.dumps(settings)]
    # In the split's folder: RecBole writes log folders into its working directory.
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=Path(split_path).parent)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"library": library, "skipped": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: list[dict], target: float) -> str:
    columns = [("epoch s", "{:.2f}"), ("item scores per s", "{:.3g}"),
               ("sampled eval s", "{:.3f}"), ("full eval s", "{:.2f}"),
               ("peak GiB", "{:.2f}"), ("train s to target", "{:.1f}")]
    lines = [f"{'library':12}" + "".join(f"{name:>19}" for name, _ in columns)
             + f"{'epochs':>8}{'best ndcg@10':>14}"]
    for row in results:
        if "skipped" in row:
            lines.append(f"{row['library']:12} skipped: {row['skipped']}")
            continue
        cells = [fmt.format(row[name]) if row[name] is not None else "not reached"
                 for name, fmt in columns]
        lines.append(f"{row['library']:12}" + "".join(f"{c:>19}" for c in cells)
                     + f"{row['epochs']:>8}{row['best ndcg@10']:>14.4f}")
    ours = next((r for r in results if r["library"] == "uibrec-bpr" and "skipped" not in r),
                None)
    if ours:
        lines += ["", f"ratios uibrec-bpr / peer (seconds, memory and time to NDCG@10 "
                  f"{target}: below 1 is uibrec better; item scores per s: above 1)"]
        for row in results:
            if "skipped" in row or row["library"].startswith("uibrec"):
                continue
            ratio = {name: _ratio(ours[name], row[name]) for name, _ in columns}
            lines.append(f"{row['library']:12}" + "".join(f"{ratio[n]:>19}" for n, _ in columns))
    return "\n".join(lines)


def _ratio(ours, theirs) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}"


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("UIBREC_DATA_DIR"))
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--peers-python", default=str(Path(__file__).resolve().parents[1]
                                                      / ".venv-peers" / "bin" / "python"))
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES))
    parser.add_argument("--epochs", type=int, default=3, help="fewest epochs per library")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.55)
    parser.add_argument("--budget", type=float, default=120.0,
                        help="training seconds per library to reach the target")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    settings = {k: getattr(args, k) for k in ("epochs", "max_epochs", "target", "budget",
                                              "threads")}
    print(f"load {open('/proc/loadavg').read().split()[:3]}; {args.threads} thread(s)",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        split_path = str(Path(tmp) / "split.npz")
        np.savez(split_path, **build_split(args))
        for library in args.libraries:
            python = sys.executable if library.startswith("uibrec") else args.peers_python
            if not Path(python).exists():
                results.append({"library": library, "skipped": f"no interpreter {python}"})
                continue
            print(f"running {library} ...", flush=True)
            results.append(run_library(library, python, split_path, settings))
            print(json.dumps(results[-1]), flush=True)
    print(f"load after {open('/proc/loadavg').read().split()[:3]}\n")
    print(report(results, args.target))


if __name__ == "__main__":
    main()
