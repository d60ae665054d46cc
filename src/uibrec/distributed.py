"""Training on several processes, on one machine or many, with DistributedDataParallel.

Start one process per CPU socket or GPU with ``torchrun`` (see ``docs/distributed.md``);
``uibrec train`` and :func:`uibrec.train` notice torchrun's ``WORLD_SIZE`` and train
together. What each process does:

- It reads the data and builds the same split (process 0 first, so that it alone writes
  the cached candidates) and the same model from the same seed.
- Every epoch it draws the same permutation of the training interactions. Each batch of
  ``batch_size`` rows is cut into ``world_size`` contiguous parts and process ``r`` trains
  on part ``r``: a process's batch is ``batch_size / world_size``, so that one optimiser
  step still sees ``batch_size`` positives, as in one process, and the learning rate and
  the number of steps per epoch keep their meaning.
- It draws its own negatives (sampler seed ``seed + rank``) and dropout masks.
- DistributedDataParallel averages the gradients of the model, the loss and the boundary
  head in backward (gloo on the CPU, NCCL on CUDA), so every process takes the same step
  and the parameters stay identical. MF's embedding gradients are dense tables: each step
  sends the whole tables, which is what limits the speed-up on small batches.
- Validation: each process ranks every ``world_size``-th evaluated user and the ranks are
  gathered once, so every process computes the same metrics and takes the same
  early-stopping decision without a broadcast.
- Only process 0 writes the run folder, and the checkpoint after each validation (with
  every process's random streams, gathered); on resuming, process 0 reads it and sends
  it to the others, each of which continues its own streams.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from uibrec.evaluation import Evaluator
from uibrec.ops import Dropout

logger = logging.getLogger(__name__)


def launched() -> bool:
    """Whether this process was started by torchrun (or alike) among several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def process_rank() -> int:
    """This process's rank under torchrun; 0 when it runs alone."""
    return int(os.environ.get("RANK", "0"))


def shard_bounds(bounds: list[tuple[int, int]], rank: int,
                 world_size: int) -> list[tuple[int, int]]:
    """This process's part of each batch ``(lo, hi)``: part ``rank`` of ``world_size``
    contiguous parts whose sizes differ by at most one. A batch of fewer than
    ``world_size`` rows (only ever the last) is skipped: it would leave a process empty."""
    out = []
    for lo, hi in bounds:
        size = hi - lo
        if size < world_size:
            continue
        out.append((lo + size * rank // world_size, lo + size * (rank + 1) // world_size))
    return out


def interleave(parts: list[torch.Tensor], total: int) -> torch.Tensor:
    """Undo a ``rows[rank::world_size]`` sharding: ``parts[r][j]`` is row ``r + j * world``.

    Every part must be padded to the same length; the padding is cut off at ``total``.
    """
    return torch.stack(parts, dim=1).reshape(-1)[:total]


class _TrainStep(nn.Module):
    """A batch's loss as one module, so that DistributedDataParallel sees the forward of
    every trainable part (model, loss, boundary head) and reduces their gradients."""

    def __init__(self, comp):
        super().__init__()
        self.model, self.loss, self.boundary = comp.model, comp.loss, comp.boundary
        self.comp = comp

    def forward(self, users, pos, negatives, weight_decay):
        from uibrec.training import _batch_loss

        return _batch_loss(self.comp, users, pos, negatives, weight_decay)


class Parallel:
    """This process's place among the training processes: rank, world size, device."""

    def __init__(self, rank: int, world_size: int, local_rank: int, device: torch.device):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = device
        self.owns_group = False
        self._step = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: str = "cpu") -> Parallel:
        """Join the process group that torchrun's environment describes (``RANK``,
        ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): gloo on the CPU,
        NCCL on CUDA with GPU ``LOCAL_RANK`` for this process."""
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if k not in os.environ]
        if missing:
            raise RuntimeError(f"distributed training needs {', '.join(missing)} in the "
                               "environment: launch it with torchrun (docs/distributed.md)")
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        from uibrec.training import resolve_device

        device = resolve_device(device)
        if device.type == "cuda":
            if device.index is not None and device.index != local_rank:
                logger.warning("device %s ignored: process %d uses cuda:%d (its LOCAL_RANK)",
                               device, rank, local_rank)
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        parallel = cls(rank, world_size, local_rank, device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    rank=rank, world_size=world_size)
            parallel.owns_group = True
        logger.info("process %d of %d on %s (%s)", rank, world_size, device,
                    dist.get_backend())
        return parallel

    def close(self, wait: bool = True) -> None:
        """Leave the process group, if :meth:`start` created it. With ``wait``, first
        wait until every process gets here: a process that tears its connections down
        while a peer still uses them made that peer abort now and then (gloo: "terminate
        called without an active exception"). Pass ``wait=False`` on an error, when the
        others may never come."""
        if self.owns_group and dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()
            self.owns_group = False

    def __enter__(self) -> Parallel:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        """:meth:`close`, waiting for the others unless the block raised."""
        self.close(wait=exc_type is None)

    @contextmanager
    def main_first(self):
        """Run the block on process 0, then on the others (e.g. to write a cache once)."""
        if not self.is_main:
            dist.barrier()
        yield
        if self.is_main:
            dist.barrier()

    def wrap(self, comp, seed: int) -> None:
        """Wrap the trainable modules of ``comp`` for gradient averaging, and give this
        process its own dropout and torch random streams (process 0 keeps the single
        process ones)."""
        if self.rank:
            torch.manual_seed(seed + self.rank)
            for module in comp.model.modules():
                for name, value in vars(module).items():
                    if isinstance(value, Dropout):
                        value.rng = np.random.default_rng([seed, self.rank])
                        logger.debug("reseeded dropout %s for process %d", name, self.rank)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self._step = DistributedDataParallel(_TrainStep(comp), device_ids=device_ids,
                                             gradient_as_bucket_view=True)

    def batch_bounds(self, num_rows: int, batch_size: int) -> list[tuple[int, int]]:
        """This process's ``(lo, hi)`` of every batch of an epoch."""
        from uibrec.training import batch_bounds

        return shard_bounds(batch_bounds(num_rows, batch_size), self.rank, self.world_size)

    def batch_loss(self, users, pos, negatives, weight_decay):
        """:func:`uibrec.training._batch_loss` through DistributedDataParallel."""
        if self._step is None:
            raise RuntimeError("call wrap() before training")
        return self._step(users, pos, negatives, weight_decay)

    def sum_over_processes(self, loss_sum: torch.Tensor, wrong_sum: torch.Tensor,
                           sizes: np.ndarray):
        """An epoch's sums over every process, in one all-reduce (float64 holds the
        counts exactly up to 2^53)."""
        packed = torch.cat([loss_sum.reshape(1).double(), wrong_sum.double(),
                            torch.as_tensor(sizes, dtype=torch.float64, device=self.device)])
        dist.all_reduce(packed)
        return (packed[0], packed[1:3].round().long(),
                packed[3:].round().long().cpu().numpy())

    def gather_objects(self, obj) -> list:
        """Every process's ``obj`` (picklable), in rank order."""
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_from_main(self, obj):
        """Process 0's ``obj`` (picklable), on every process."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def evaluator(self, split, candidates) -> ShardedEvaluator:
        return ShardedEvaluator(split, candidates, self)

    def gather_rows(self, mine: torch.Tensor, total: int) -> torch.Tensor:
        """Every process's ``rows[rank::world_size]`` results, put back in row order."""
        width = -(-total // self.world_size)  # the longest share
        padded = torch.zeros(width, dtype=mine.dtype, device=mine.device)
        padded[:len(mine)] = mine
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return interleave(parts, total)


class ShardedEvaluator(Evaluator):
    """An :class:`Evaluator` that ranks this process's share of the users (every
    ``world_size``-th) and gathers all ranks, in the single-process order, once."""

    def __init__(self, split, candidates, parallel: Parallel, **options):
        rows = np.arange(parallel.rank, len(split.eval_users), parallel.world_size)
        super().__init__(split, candidates, device=parallel.device, rows=rows, **options)
        self.parallel, self.total = parallel, len(split.eval_users)

    def ranks(self, model, which: str = "valid", protocol: str = "sampled"):
        mine = super().ranks(model, which, protocol)  # (len(rows),)
        return self.parallel.gather_rows(mine, self.total)
