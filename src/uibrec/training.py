"""Training: combines a model, a loss and the negative sampler; early-stops on validation.

One epoch visits every training interaction once in a seeded random order. Every
``eval_every`` epochs the validation metric is computed; the best model is kept and
training stops after ``patience`` validations without improvement (NOTES section 3).
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from uibrec import checkpoint as checkpoints
from uibrec.config import Config
from uibrec.data.candidates import load_or_sample_candidates
from uibrec.data.registry import load_dataset
from uibrec.data.split import Split, leave_one_out, no_users_left, prepare
from uibrec.evaluation import Evaluator
from uibrec.fused import make_fused_step
from uibrec.losses import LOSSES, Loss, LossInput, resolve_loss_name
from uibrec.models import BoundaryHead, Recommender, get_model_class
from uibrec.sampling import NegativeSampler

logger = logging.getLogger(__name__)

DEFAULT_NEGATIVES = {"uib": 32, "bce": 4}  # otherwise 1 (pairwise losses)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; lower the learning rate."""


@dataclass
class Components:
    model: Recommender
    loss: Loss
    boundary: BoundaryHead | None
    loss_name: str
    num_negatives: int

    def modules(self) -> dict:
        found = {"model": self.model, "loss": self.loss}
        if self.boundary is not None:
            found["boundary"] = self.boundary
        return found

    def state_dict(self) -> dict:
        return {name: module.state_dict() for name, module in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state[name])

    def parameters(self):
        for module in self.modules().values():
            yield from module.parameters()


def _accepted(callable_, context: dict, options: dict, what: str) -> dict:
    """Keyword arguments for ``callable_``: the ``context`` entries it takes, and every
    user-given option, which it must take (a misspelt option is an error, not a no-op)."""
    if getattr(callable_, "__init__", None) is torch.nn.Module.__init__:
        params = {}  # a module class without its own constructor takes no settings
    else:
        params = inspect.signature(callable_).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        takes = sorted(set(params) - set(context) - {"self"}) or ["no options"]
        raise ValueError(f"{what} takes no option {', '.join(map(repr, unknown))}; "
                         f"it takes: {', '.join(takes)}")
    return {**{k: v for k, v in context.items() if k in params}, **options}


def build_components(config: Config, num_users: int, num_items: int, train_users=None,
                     train_items=None) -> Components:
    """The model, its loss and (for UIB) its boundary head, as the config names them."""
    model_cls = get_model_class(config.model)
    # ``seed`` reaches models that draw their own random numbers (MF's dropout masks),
    # so that repeats with different seeds differ in those too.
    context = {"num_users": num_users, "num_items": num_items, "dim": config.dim,
               "dropout": config.dropout, "train_users": train_users, "train_items": train_items,
               "seed": config.seed}
    model = model_cls(**_accepted(model_cls, context, config.model_options,
                                  f"model {config.model!r} (model_options)"))
    loss_name = resolve_loss_name(config.model, config.loss, model_cls.native_loss)
    loss_cls = LOSSES[loss_name]
    loss = loss_cls(**_accepted(loss_cls, {**context, "alpha": config.alpha},
                                config.loss_options, f"loss {loss_name!r} (loss_options)"))
    boundary = None
    if loss.needs_boundary:
        boundary = BoundaryHead(config.dim, num_users, config.boundary)
    negatives = config.num_negatives or DEFAULT_NEGATIVES.get(
        "uib" if loss.needs_boundary else loss_name, 1)
    return Components(model, loss, boundary, loss_name, negatives)


def _check_read_options(options: dict) -> None:
    from uibrec.data.readers import read_delimited

    takes = set(inspect.signature(read_delimited).parameters) - {"path", "name"}
    unknown = sorted(set(options) - takes)
    if unknown:
        raise ValueError(f"read_options takes no option {', '.join(map(repr, unknown))}; "
                         f"it takes: {', '.join(sorted(takes))}")


def load_split(config: Config, report: dict | None = None) -> tuple[Split, np.ndarray]:
    """Read, clean and split the configured dataset; load or sample its candidates."""
    split = load_data_split(config, report)
    return split, load_candidates(config, split)


def load_data_split(config: Config, report: dict | None = None) -> Split:
    """Read, clean and split the configured dataset (no candidates)."""
    report = {} if report is None else report
    _check_read_options(config.read_options)
    data = load_dataset(config.dataset, config.data_dir, **config.read_options)
    data = prepare(data, min_user=config.min_user_interactions, report=report)
    # Nothing to train on or to evaluate would otherwise end deep in torch (torch.cat()).
    if data.num_users == 0:
        raise ValueError(f"{no_users_left(config.min_user_interactions, report)} in "
                         f"{config.dataset}; lower it with --set min_user_interactions=N")
    split = leave_one_out(data, seed=config.split_seed, order=config.split_order)
    if len(split.eval_users) == 0:
        raise ValueError(f"no user has the 3 interactions that leave-one-out needs (one each "
                         f"for training, validation and test) in {config.dataset}")
    split.report = report
    return split


def load_candidates(config: Config, split: Split) -> np.ndarray:
    """The split's evaluation candidates, from the cache folder or sampled into it."""
    cache = config.cache_dir or f"{config.output}/.cache"
    return load_or_sample_candidates(split, config.num_candidates, config.candidate_seed,
                                     cache)


def make_optimizer(config: Config, params, sparse_params=()) -> torch.optim.Optimizer:
    """The configured optimiser. ``sparse_params`` will get row-sparse gradients (a
    model's ``sparse_parameters()``); only Adagrad takes them."""
    sparse_ids = {id(p) for p in sparse_params}
    params = [p for p in params if p.requires_grad and id(p) not in sparse_ids]
    sparse_params = [p for p in sparse_params if p.requires_grad]
    if config.optimizer == "adagrad":
        # The fused CPU kernel takes half the time of the foreach one.
        fused = all(p.device.type == "cpu" for p in params)
        options = {"lr": config.lr, "initial_accumulator_value": config.adagrad_init}
        dense = torch.optim.Adagrad(params, fused=fused or None,
                                    foreach=None if fused else True, **options)
        if not sparse_params:
            return dense
        return SplitOptimizer(dense, torch.optim.Adagrad(sparse_params, **options))
    if sparse_params:
        raise ValueError(f"optimizer {config.optimizer!r} takes no sparse gradients; "
                         "use adagrad")
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, foreach=True)
    raise ValueError(f"optimizer must be 'adagrad' or 'adam', got {config.optimizer!r}")


class SplitOptimizer:
    """Two optimisers stepping as one: the fused Adagrad kernel for dense gradients and
    Adagrad's per-tensor path for row-sparse ones, which the fused kernel refuses. The
    update of each parameter is Adagrad's, as with one optimiser over all of them."""

    def __init__(self, *parts: torch.optim.Optimizer):
        self.parts = parts
        self.param_groups = [group for part in parts for group in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        # Adagrad builds its sparse updates from a coalesced gradient; opting out of the
        # invariant checks explicitly (as torch asks) silences its warning.
        with torch.sparse.check_sparse_tensor_invariants(enable=False):
            for part in self.parts:
                part.step()

    def state_dict(self) -> dict:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state: dict) -> None:
        for part, part_state in zip(self.parts, state["parts"], strict=True):
            part.load_state_dict(part_state)


@dataclass
class EpochStats:
    loss: float
    corrupted: float  # share of training samples on the wrong side (NOTES section 6)
    corrupted_pairs: float  # share of (positive, negative) pairs with a wrong side
    seconds: float


@dataclass
class TrainResult:
    components: Components
    history: list = field(default_factory=list)  # one dict per epoch
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    # Seconds of training before this process resumed the run (0 for a fresh one): each
    # history row's ``elapsed`` counts from the run's start, across resumes.
    resumed_seconds: float = 0.0


def _batch_loss(comp: Components, users, pos, negatives, weight_decay: float):
    """Loss of one batch and its :func:`count_corrupted` counts (for the corrupted
    rate), computed from the same scores."""
    model = comp.model
    items = torch.cat([pos.unsqueeze(1), negatives], dim=1)  # (B, 1+M)
    model.prepare(users, items)
    user_vecs = model.users(users)  # (B, d)
    scores = model.score_items(user_vecs, items)  # (B, 1+M)
    batch = LossInput(scores[:, 0], scores[:, 1:], user_idx=users, pos_items=pos,
                      neg_items=negatives)
    if comp.boundary is not None:
        batch.boundary = comp.boundary(user_vecs, users)
    if comp.loss.needs_extras:
        batch.extras = model.loss_extras(user_vecs, items)
    loss = comp.loss(batch)
    if weight_decay:
        loss = loss + weight_decay / 2 * model.regularization(users, pos, negatives)

    with torch.no_grad():
        wrong, samples, pairs = count_corrupted(batch.pos_scores, batch.neg_scores,
                                                batch.boundary)
    return loss, wrong, (samples, pairs)


def count_corrupted(pos_scores: torch.Tensor, neg_scores: torch.Tensor,
                    boundary: torch.Tensor | None = None) -> tuple[torch.Tensor, int, int]:
    """Training samples of a batch on the wrong side, two ways (NOTES section 6).

    Returns ``(wrong, samples, pairs)``: ``wrong`` is the int64 tensor ``[wrong samples,
    wrong pairs]``, left on the device (no sync per batch). Shapes: ``pos_scores (B,)``,
    ``neg_scores (B, M)``, ``boundary (B,)``. Ties are never wrong.

    - Samples, what the loss judges one by one. With a boundary (UIB) every score is a
      sample: a positive is wrong when ``s_p < b_u``, a negative when ``s_n > b_u``, out of
      ``B * (1 + M)``. Without one (BPR, BCE, any native loss) every (positive, negative)
      pair is a sample, wrong when ``s_n > s_p``, out of ``B * M``.
    - Pairs, the same unit for every loss: each drawn (u, p, n) is wrong when, with a
      boundary, ``s_p < b_u`` or ``s_n > b_u``; without one, when ``s_n > s_p``.
    """
    pairs = neg_scores.numel()
    if boundary is not None:
        b = boundary.unsqueeze(1)  # (B, 1)
        pos_wrong = pos_scores.unsqueeze(1) < b  # (B, 1)
        neg_wrong = neg_scores > b  # (B, M)
        wrong = pos_wrong.sum() + neg_wrong.sum()
        wrong_pairs = (pos_wrong | neg_wrong).sum()
        samples = pos_scores.numel() + pairs
    else:
        wrong = wrong_pairs = (neg_scores > pos_scores.unsqueeze(1)).sum()
        samples = pairs
    return torch.stack([wrong, wrong_pairs]), samples, pairs


def batch_bounds(num_rows: int, batch_size: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` row bounds of each batch of an epoch's shuffled rows."""
    return [(lo, min(lo + batch_size, num_rows)) for lo in range(0, num_rows, batch_size)]


def train_epoch(comp: Components, optimizer, sampler: NegativeSampler, train_users, train_items,
                batch_size: int, weight_decay: float, generator: torch.Generator,
                parallel=None) -> EpochStats:
    """One pass over the training interactions in a random order from ``generator``.

    ``parallel`` (a :class:`uibrec.distributed.Parallel`, or None for one process) picks
    this process's rows of each batch, runs the loss through DistributedDataParallel and
    sums the epoch's figures over processes.
    """
    start = time.perf_counter()
    comp.model.train()
    device = train_users.device
    order = torch.randperm(len(train_users), generator=generator).to(device)
    users_all, items_all = train_users[order], train_items[order]
    if parallel is None:
        bounds, batch_loss = batch_bounds(len(order), batch_size), partial(_batch_loss, comp)
    else:
        bounds, batch_loss = parallel.batch_bounds(len(order), batch_size), parallel.batch_loss
    # Sums stay on the training device: no host sync per batch, and no CPU/CUDA mix.
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong_sum = torch.zeros(2, dtype=torch.int64, device=device)
    sizes = np.zeros(3, dtype=np.int64)  # samples, pairs, positives
    # MF with UIB or BPR under Adagrad on the CPU: the whole step in one compiled call.
    fused = make_fused_step(comp, optimizer, weight_decay) if parallel is None else None
    for lo, hi in bounds:
        users, pos = users_all[lo:hi], items_all[lo:hi]
        negatives = sampler.sample(users, comp.num_negatives)  # (B, M)
        if fused is not None:
            fused(users, pos, negatives)
            continue

        loss, wrong, batch_sizes = batch_loss(users, pos, negatives, weight_decay)

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        comp.model.after_step()
        comp.loss.after_step()

        loss_sum += loss.detach() * len(users)
        wrong_sum += wrong
        sizes += (*batch_sizes, len(users))
    if fused is not None:
        loss_sum, wrong_sum, sizes = fused.finish()
    if parallel is not None:
        loss_sum, wrong_sum, sizes = parallel.sum_over_processes(loss_sum, wrong_sum, sizes)
    mean_loss = loss_sum.item() / max(sizes[2], 1)
    if not np.isfinite(mean_loss):
        raise TrainingDivergedError(
            f"the training loss became {mean_loss}; lower the learning rate (lr)")
    wrong, wrong_pairs = wrong_sum.tolist()
    return EpochStats(mean_loss, wrong / max(sizes[0], 1), wrong_pairs / max(sizes[1], 1),
                      time.perf_counter() - start)


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device of a name, with a clear error when torch cannot use it here."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r} is not a device torch knows (cpu, cuda, "
                         "cuda:1, ...)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: CUDA is not available here (torch "
                         f"{torch.__version__}); use --device cpu")
    if device.type == "meta":  # tensors without data: training would fail at the first copy
        raise ValueError("device 'meta' holds no data and cannot train or score; "
                         "use --device cpu or cuda")
    try:
        # A tiny allocation tells whether this torch build can use the device at all
        # (mps, xla, ipu, ... fail here with errors of many types, or a CUDA index is out
        # of range); only then is it worth reading the data.
        torch.ones(1, device=device).add_(1).cpu()
    except Exception as exc:  # torch raises any type for a backend it lacks
        reason = " ".join(str(exc).split(". ")[0].split())[:160]
        raise ValueError(f"device {str(device)!r} cannot be used by torch {torch.__version__} "
                         f"here ({type(exc).__name__}: {reason}); use --device cpu") from exc
    return device


# Row-sparse user gradients pay off once the user table has this many rows per batch row:
# measured per Adagrad step at batch 1024 (d = 32, 1 thread), dense (fused) against
# sparse: 6,040 users 1.1 ms against 1.9; 70,000 users 3.5 against 1.4; 700,000 users 85
# against 1.6.
SPARSE_MIN_USERS_PER_ROW = 8


def use_sparse_gradients(config: Config, num_users: int, parallel=None) -> bool:
    """Whether the user table gets row-sparse gradients: with Adagrad, in one process
    (DistributedDataParallel reduces dense gradients), and a table much larger than a
    batch, where a dense step would mostly rewrite rows the batch never touched."""
    return (config.optimizer == "adagrad" and parallel is None
            and num_users >= SPARSE_MIN_USERS_PER_ROW * config.batch_size)


def setup_training(config: Config, split: Split, candidates: np.ndarray, parallel=None):
    """Components on their device, optimiser, sampler, evaluator and training tensors."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = resolve_device(config.device) if parallel is None else parallel.device
    comp = build_components(config, split.num_users, split.num_items,
                            split.train.user_idx, split.train.item_idx)
    for module in comp.modules().values():
        module.to(device)
    rank = 0
    if parallel is not None:
        parallel.wrap(comp, config.seed)  # after the seeded build: same start everywhere
        rank = parallel.rank
    comp.model.sparse_gradients = use_sparse_gradients(config, split.num_users, parallel)
    optimizer = make_optimizer(config, comp.parameters(), comp.model.sparse_parameters())
    # Each process its own negative stream; process 0 draws what a single process would.
    sampler = NegativeSampler(split.train.user_idx, split.train.item_idx, split.num_users,
                              split.num_items, seed=config.seed + rank, device=device)
    if parallel is None:
        evaluator = Evaluator(split, candidates, device=device)
    else:
        evaluator = parallel.evaluator(split, candidates)
    train_users = torch.as_tensor(split.train.user_idx, device=device)
    train_items = torch.as_tensor(split.train.item_idx, device=device)
    return comp, optimizer, sampler, evaluator, train_users, train_items


@dataclass
class _Loop:
    """What training carries from one epoch to the next, and what a checkpoint saves."""

    comp: Components
    optimizer: torch.optim.Optimizer
    sampler: NegativeSampler
    generator: torch.Generator  # the epochs' order
    result: TrainResult
    epoch: int = 0  # the last finished epoch
    best_score: float = -np.inf
    best_state: dict | None = None
    stale: int = 0  # validations since the best one

    def validated(self, epoch: int, valid: dict, score: float) -> None:
        if score > self.best_score:
            self.best_score, self.stale = score, 0
            self.best_state = copy.deepcopy(self.comp.state_dict())
            self.result.best_epoch, self.result.best_valid = epoch, valid
        else:
            self.stale += 1

    def state_dict(self) -> dict:
        result = self.result
        return {"epoch": self.epoch, "components": self.comp.state_dict(),
                "optimizer": self.optimizer.state_dict(), "best_state": self.best_state,
                "best_score": self.best_score, "best_epoch": result.best_epoch,
                "best_valid": result.best_valid, "stale": self.stale,
                "history": [_plain(row) for row in result.history]}

    def load_state_dict(self, state: dict) -> None:
        self.comp.load_state_dict(state["components"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.stale = state["epoch"], state["stale"]
        self.best_score, self.best_state = state["best_score"], state["best_state"]
        self.result.best_epoch, self.result.best_valid = state["best_epoch"], state["best_valid"]
        self.result.history = list(state["history"])
        self.result.resumed_seconds = _elapsed(self.result.history)

    def random_states(self) -> dict:
        return checkpoints.random_states(self.comp.model, self.sampler, self.generator)

    def set_random_states(self, states: dict) -> None:
        checkpoints.set_random_states(states, self.comp.model, self.sampler, self.generator)


def _plain(row: dict) -> dict:
    # NumPy scalars (figures divided by np.int64 sizes) become Python numbers, which a
    # weights-only torch.load accepts; the values are the same.
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}


def _elapsed(history: list) -> float:
    """Seconds from a run's start to the end of its last epoch in ``history``. Rows
    written before rows had ``elapsed`` count their training seconds only."""
    if not history:
        return 0.0
    if "elapsed" in history[-1]:
        return float(history[-1]["elapsed"])
    return float(sum(row["seconds"] for row in history))


def _resume(loop: _Loop, path, config: Config, parallel) -> None:
    found = checkpoints.load_checkpoint(path, config, parallel)
    if found is None:
        return
    state, random = found
    loop.load_state_dict(state)
    loop.set_random_states(random)
    if parallel is None or parallel.is_main:
        logger.info("resuming %s at epoch %d", path, loop.epoch + 1)


def fit(config: Config, split: Split, candidates: np.ndarray, progress: bool = False,
        on_validation=None, parallel=None, checkpoint=None) -> TrainResult:
    """Train on ``split`` with early stopping on validation; the best state is restored.

    ``on_validation(epoch, metrics)``, if given, is called after each validation (an
    Optuna pruner hooks in here) and may raise to stop the run. ``parallel`` (a started
    :class:`uibrec.distributed.Parallel`) trains this process's share of each batch; every
    process then validates its share of the users and all take the same decisions.
    ``checkpoint`` (a file path): after each validation the run's whole state is saved
    there, and a run that finds one from the same settings resumes after its epoch, as
    if it had never stopped (:mod:`uibrec.checkpoint`); the file is removed at the end.
    """
    comp, optimizer, sampler, evaluator, train_users, train_items = setup_training(
        config, split, candidates, parallel)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    loop = _Loop(comp, optimizer, sampler, generator, TrainResult(comp))
    if checkpoint is not None:
        _resume(loop, checkpoint, config, parallel)

    result = loop.result
    started = time.perf_counter() - result.resumed_seconds
    # A checkpoint written at an early stop resumes with no epoch left to train.
    last = loop.epoch if loop.stale >= config.patience else config.epochs
    epochs = range(loop.epoch + 1, last + 1)
    bar = None
    if progress and (parallel is None or parallel.is_main):
        from tqdm.auto import tqdm

        # disable=None: no bar when stderr is not a terminal (logs, nohup), only log lines.
        bar = tqdm(epochs, desc=config.run_label(), unit="epoch", leave=False,
                   initial=loop.epoch, total=config.epochs, disable=None)
        epochs = bar
    for epoch in epochs:
        stats = train_epoch(comp, optimizer, sampler, train_users, train_items,
                            config.batch_size, config.weight_decay, generator, parallel)
        loop.epoch = epoch
        row = {"epoch": epoch, "loss": stats.loss, "corrupted": stats.corrupted,
               "corrupted_pairs": stats.corrupted_pairs,
               "seconds": stats.seconds}
        valid = None
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            valid = evaluator.evaluate(comp.model, "valid")
            row.update({f"valid_{k}": v for k, v in valid.items()})
            score = valid[config.metric]
            logger.info("epoch %d loss %.4f valid %s %.4f (%.1fs/epoch)", epoch, stats.loss,
                        config.metric, score, stats.seconds)
            loop.validated(epoch, valid, score)
        row["elapsed"] = time.perf_counter() - started
        result.history.append(row)
        if valid is not None:
            if checkpoint is not None:
                checkpoints.save_checkpoint(checkpoint, config, loop.state_dict(),
                                            loop.random_states(), parallel)
            if on_validation is not None:
                on_validation(epoch, valid)
        if bar is not None:
            bar.set_postfix(loss=f"{stats.loss:.4f}", best=f"{loop.best_score:.4f}")
        if loop.stale >= config.patience:
            logger.info("early stop at epoch %d; best epoch %d", epoch, result.best_epoch)
            break
    if loop.best_state is not None:
        comp.load_state_dict(loop.best_state)
    if checkpoint is not None and (parallel is None or parallel.is_main):
        checkpoints.remove_checkpoint(checkpoint)
    return result
