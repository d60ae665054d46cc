"""A whole training step of matrix factorisation with a softplus loss, in one compiled call.

The general step (:func:`uibrec.training._batch_loss`, ``backward``, ``optimizer.step``)
runs some forty tensor operations and autograd nodes per batch, each on small tensors:
at ML-1M's batch of 1024 with 32 negatives their fixed costs outweigh the arithmetic.
For the commonest setting, MF (:class:`uibrec.models.MF`) with the UIB loss (linear
boundary) or BPR, trained by Adagrad on the CPU, :class:`FusedStep` does the same step in
one Numba call: for each batch row it masks the user and item rows (the same dropout
masks, :class:`uibrec.ops.Dropout`), scores them, takes the loss, its gradients and the
corrupted-sample counts, and adds the gradients into buffers; then Adagrad updates the
rows the batch touched, in place in the optimiser's own state. Rows a batch does not
touch have a zero gradient, which Adagrad's dense step leaves unchanged, so the numbers
are Adagrad's up to float32 rounding (summation order, ``exp`` and ``log1p``); a test
trains both ways and compares. Any other model, loss, optimiser, device or setting takes
the general step.
"""

from __future__ import annotations

import numpy as np
import torch

from uibrec import kernels
from uibrec.losses import BPRLoss, UIBLoss
from uibrec.models.mf import MF
from uibrec.ops import split_key

ENABLED = True  # tests switch this off to compare with the general step


def make_fused_step(comp, optimizer, weight_decay: float) -> FusedStep | None:
    """A :class:`FusedStep` for ``comp`` and ``optimizer``, or None when the general step
    must run (another model, loss or optimiser, or not on the CPU)."""
    if not (ENABLED and kernels.AVAILABLE) or type(comp.model) is not MF:
        return None
    if type(comp.loss) is UIBLoss:
        if comp.boundary is None or comp.boundary.kind != "linear":
            return None
    elif type(comp.loss) is not BPRLoss or comp.boundary is not None:
        return None
    params = _trained(comp)
    if any(p.device.type != "cpu" or p.dtype != torch.float32 or not p.is_contiguous()
           for p in params):
        return None
    states = _adagrad_states(optimizer, params)
    if states is None:
        return None
    return FusedStep(comp, params, states, weight_decay)


def _trained(comp) -> list[torch.Tensor]:
    """User table, item table, and the boundary's weight and bias (UIB only)."""
    model = comp.model
    params = [model.user_embedding, model.item_embedding]
    if comp.boundary is not None:
        params += [comp.boundary.linear.weight, comp.boundary.linear.bias]
    return params


def _adagrad_states(optimizer, params):
    """``(sum, step, lr, eps)`` of each of ``params`` when ``optimizer`` is plain Adagrad
    (or a :class:`uibrec.training.SplitOptimizer` of them) over exactly ``params``, with no
    learning-rate decay or weight decay of its own; else None."""
    parts = getattr(optimizer, "parts", (optimizer,))
    found = {}
    for part in parts:
        if type(part) is not torch.optim.Adagrad:
            return None
        for group in part.param_groups:
            if group["lr_decay"] or group["weight_decay"] or group["maximize"]:
                return None
            for p in group["params"]:
                state = part.state[p]
                total = state.get("sum")
                if total is None or total.dtype != torch.float32 or not total.is_contiguous():
                    return None
                found[id(p)] = (total, state["step"], float(group["lr"]), float(group["eps"]))
    if set(found) != {id(p) for p in params}:
        return None
    return [found[id(p)] for p in params]


class FusedStep:
    """Trains ``comp`` one batch per call, in place; keeps the epoch's sums.

    Built by :func:`make_fused_step` at the start of each epoch, so that it binds the
    optimiser state that a resumed checkpoint loaded.
    """

    def __init__(self, comp, params, states, weight_decay: float):
        self.comp = comp
        self.dropout = comp.model.dropout
        # NumPy views of the parameters and the optimiser's sums: the kernel writes them.
        self.params = [p.detach().numpy() for p in params]
        self.sums = [state[0].numpy() for state in states]
        self.steps = [state[1] for state in states]
        self.rates = np.array([state[2:] for state in states], dtype=np.float32)
        if len(self.params) == 2:  # BPR: no boundary; unused stand-ins keep one signature
            self.params += [np.zeros((1, 1), np.float32), np.zeros(1, np.float32)]
            self.sums += [np.zeros((1, 1), np.float32), np.zeros(1, np.float32)]
            self.rates = np.vstack([self.rates, np.zeros((2, 2), np.float32)])
        # Gradient buffers of items and the boundary, marks of touched items, and rows of
        # users in the batch's user gradients: zero (-1) between calls (the kernel clears
        # what it used).
        self.grads = [np.zeros_like(p) for p in self.params[1:]]
        self.seen = [np.full(len(self.params[0]), -1, dtype=np.int64),
                     np.zeros(len(self.params[1]), dtype=np.uint8)]
        self.alpha = float(getattr(comp.loss, "alpha", 1.0))
        self.uib = comp.boundary is not None
        self.weight_decay = float(weight_decay)
        self.totals = np.zeros(3)  # loss summed over positives, wrong samples, wrong pairs
        self.sizes = np.zeros(3, dtype=np.int64)  # samples, pairs, positives
        self.batches = 0

    def __call__(self, users: torch.Tensor, pos: torch.Tensor, negatives: torch.Tensor):
        """One step on users ``(B,)``, positives ``(B,)`` and negatives ``(B, M)``."""
        dropout = self.dropout
        user_key = item_key = 0
        if dropout.threshold:  # the general step's order: the users' mask, then the items'
            user_key, item_key = dropout.draw_key(), dropout.draw_key()
        batch, width = negatives.shape
        rows = (np.empty(min(batch, len(self.params[0])), dtype=np.int64),
                np.empty(min(batch * (width + 1), len(self.params[1])), dtype=np.int64))
        _train_step(users.numpy(), pos.numpy(), negatives.numpy(), *self.params, *self.sums,
                    *self.grads, *self.seen, *rows, self.rates, self.uib, self.alpha,
                    self.weight_decay, *split_key(user_key), *split_key(item_key),
                    dropout.threshold, dropout.scale, self.totals)
        pairs = batch * width
        self.sizes += (pairs + batch if self.uib else pairs, pairs, batch)
        self.batches += 1

    def finish(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Close the epoch: count its steps in the optimiser's state; return the summed
        loss (float64), the wrong ``[samples, pairs]`` (int64) and the sizes, as the
        general loop keeps them."""
        for step in self.steps:
            step += self.batches
        self.batches = 0
        loss_sum = torch.tensor(self.totals[0], dtype=torch.float64)
        wrong = torch.tensor(self.totals[1:].astype(np.int64))
        return loss_sum, wrong, self.sizes.copy()


# exp(x) = 2**n * exp(r), n = round(x / ln 2), |r| <= ln(2) / 2, where exp(r) is its Taylor
# series to degree 7 (truncation error below 3e-9, under float32 rounding). Written out,
# so that the loop over a row's scores vectorises: a libm call per score does not.
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693145751953125)  # ln 2 to 16 bits: n * _LN2_HI is exact
_LN2_LO = np.float32(1.4286068203094172e-06)
_TAYLOR = (1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0, 1.0)


@kernels._jit
def _exp_terms(xs, out, bits):
    """``out[k] = exp(xs[k])`` for ``xs[k]`` clipped to [-87, 20]; ``bits`` is int32
    scratch."""
    for k in range(len(xs)):
        x = min(max(xs[k], np.float32(-87.0)), np.float32(20.0))
        n = np.floor(x * _LOG2E + np.float32(0.5))
        r = x - n * _LN2_HI - n * _LN2_LO
        series = np.float32(1 / 40320)
        for c in _TAYLOR:
            series = series * r + np.float32(c)
        out[k] = series
        bits[k] = (np.int32(n) + 127) << 23
    scales = bits.view(np.float32)  # 2**n, built from its exponent bits
    for k in range(len(xs)):
        out[k] *= scales[k]


@kernels._jit
def _softplus(x):
    """torch's softplus: ``log1p(exp(x))``, and ``x`` itself above 20."""
    return x if x > 20 else np.log1p(np.exp(x))


@kernels._jit
def _sigmoid(x):
    """softplus'(x) as torch's softplus_backward computes it: 1 above 20."""
    z = np.exp(min(x, np.float32(20.0)))
    return np.float32(1.0) if x > 20 else z / (z + np.float32(1.0))


@kernels._jit
def _row_loss(scores, boundary, uib, alpha, pos_coef, neg_coef, grads, xs, zs, bits):
    """Loss of one batch row from its scores ``(1 + M,)``, positive first; writes d loss
    / d score into ``grads`` and returns ``(loss, d loss / d boundary, wrong samples,
    wrong pairs)``. ``xs``, ``zs`` and ``bits`` are scratch as long as ``scores``.

    UIB: ``softplus(b - s_p) + alpha * mean_m softplus(s_m - b)``; BPR: ``mean_m
    softplus(s_m - s_p)``. The M negative terms share one vectorised pass: ``exp`` by
    :func:`_exp_terms`, and one logarithm per 32 terms, of the product of their
    ``1 + exp(x)`` in float64 (each below 4.9e8, so 32 of them stay below 1e279): a
    ``log1p`` per score cost more than the rest of the step. As torch's softplus, a term
    is linear above 20, and its derivative ``exp(x) / (1 + exp(x))`` is 0 where ``exp(x)``
    underflows float32 (below -103.3).
    """
    width = len(scores) - 1
    shift = boundary if uib else scores[0]
    for k in range(len(scores)):
        xs[k] = scores[k] - shift
    _exp_terms(xs, zs, bits)
    linear, logs = np.float32(0.0), 0.0
    grad_sum = np.float32(0.0)
    wrong = 0
    for start in range(1, width + 1, 32):
        product = 1.0
        for k in range(start, min(start + 32, width + 1)):
            x = xs[k]
            z = zs[k] if x > np.float32(-103.3) else np.float32(0.0)
            g = neg_coef * (z / (z + np.float32(1.0)))
            grads[k] = g
            grad_sum += g
            linear += x if x > 20 else np.float32(0.0)
            product *= 1.0 if x > 20 else 1.0 + z
            wrong += scores[k] > shift
        logs += np.log(product)
    neg_loss = linear + logs

    if not uib:
        grads[0] = -grad_sum
        return neg_loss / width, np.float32(0.0), wrong, wrong
    x = boundary - scores[0]
    grads[0] = -pos_coef * _sigmoid(x)
    loss = _softplus(x) + alpha / width * neg_loss
    pos_wrong = scores[0] < boundary
    return loss, -grads[0] - grad_sum, pos_wrong + wrong, width if pos_wrong else wrong


@kernels._jit
def _forward_backward(users, pos, negatives, user_table, item_table, weight, bias,
                      grad_users, grad_items, grad_weight, grad_bias, user_slots, seen_items,
                      user_rows, item_rows, uib, alpha, weight_decay, user_key_lo, user_key_hi,
                      item_key_lo, item_key_hi, threshold, scale, totals):
    """Gradients of the batch's loss added into the ``grad_*`` buffers; the touched rows
    listed in ``user_rows`` and ``item_rows``, whose counts are returned. The gradient of
    user ``user_rows[s]`` is row ``s`` of ``grad_users`` ``(B, d)`` (``user_slots`` maps
    users to rows, -1 for none): a table-sized buffer spread the batch's writes over more
    memory than the caches hold."""
    batch, width = negatives.shape
    dim = user_table.shape[1]
    block = (width + 1) * dim
    pos_coef = np.float32(1.0 / batch)  # d mean / d row
    neg_coef = np.float32((alpha if uib else 1.0) / (batch * width))
    decay = np.float32(weight_decay / batch)
    user_words, user_keep = kernels._scratch(dim)
    item_words, item_keep = kernels._scratch(block)
    masked = np.empty(block, dtype=np.float32)  # the row's item vectors, dropped out
    user_vec = np.empty(dim, dtype=np.float32)
    grad_user = np.empty(dim, dtype=np.float32)
    scores = np.empty(width + 1, dtype=np.float32)
    grads = np.empty(width + 1, dtype=np.float32)
    items = np.empty(width + 1, dtype=np.int64)
    xs, zs = np.empty(width + 1, dtype=np.float32), np.empty(width + 1, dtype=np.float32)
    bits = np.empty(width + 1, dtype=np.int32)
    num_users = num_items = 0
    loss_sum, wrong, wrong_pairs = 0.0, 0, 0
    for b in range(batch):
        user = users[b]
        items[0] = pos[b]
        items[1:] = negatives[b]
        if threshold != 0:
            kernels.keep_block(b * dim, user_key_lo, user_key_hi, threshold, scale,
                               user_words, user_keep)
            kernels.keep_block(b * block, item_key_lo, item_key_hi, threshold, scale,
                               item_words, item_keep)
        for j in range(dim):
            user_vec[j] = user_table[user, j] * user_keep[j]

        boundary = np.float32(0.0)
        if uib:
            boundary = bias[0]
            for j in range(dim):
                boundary += weight[0, j] * user_vec[j]
        for k in range(width + 1):
            row, at = items[k], k * dim
            acc = np.float32(0.0)
            for j in range(dim):
                masked[at + j] = item_table[row, j] * item_keep[at + j]
                acc += user_vec[j] * masked[at + j]
            scores[k] = acc

        loss, grad_boundary, row_wrong, row_wrong_pairs = _row_loss(
            scores, boundary, uib, alpha, pos_coef, neg_coef, grads, xs, zs, bits)
        loss_sum += loss
        wrong += row_wrong
        wrong_pairs += row_wrong_pairs

        for j in range(dim):
            grad_user[j] = grad_boundary * weight[0, j] if uib else np.float32(0.0)
        for k in range(width + 1):
            row, at, g = items[k], k * dim, grads[k]
            for j in range(dim):
                grad_user[j] += g * masked[at + j]
            for j in range(dim):
                grad_items[row, j] += g * item_keep[at + j] * user_vec[j]
            if not seen_items[row]:
                seen_items[row] = 1
                item_rows[num_items] = row
                num_items += 1
        slot = user_slots[user]
        if slot < 0:
            slot = user_slots[user] = num_users
            user_rows[slot] = user
            num_users += 1
        for j in range(dim):
            grad_users[slot, j] += grad_user[j] * user_keep[j]
        if uib:
            for j in range(dim):
                grad_weight[0, j] += grad_boundary * user_vec[j]
            grad_bias[0] += grad_boundary

        if weight_decay != 0:  # decay / 2 * (|P_u|^2 + |Q_p|^2 + mean_m |Q_n|^2) per row
            loss_sum += _decay_row(user, slot, items, user_table, item_table, grad_users,
                                   grad_items, weight_decay, decay, width)
    totals[0] += loss_sum
    totals[1] += wrong
    totals[2] += wrong_pairs
    return num_users, num_items


@kernels._jit
def _decay_row(user, slot, items, user_table, item_table, grad_users, grad_items,
               weight_decay, decay, width):
    squares = np.float32(0.0)
    for j in range(user_table.shape[1]):
        squares += user_table[user, j] * user_table[user, j]
        grad_users[slot, j] += decay * user_table[user, j]
    for k in range(width + 1):
        row = items[k]
        share = np.float32(1.0) if k == 0 else np.float32(1.0 / width)
        row_squares = np.float32(0.0)
        for j in range(item_table.shape[1]):
            row_squares += item_table[row, j] * item_table[row, j]
            grad_items[row, j] += decay * share * item_table[row, j]
        squares += share * row_squares
    return weight_decay / 2 * squares


@kernels._jit_exact
def _adagrad_row(param, state_sum, grad, lr, eps):
    """Adagrad on one row (1-D views), whose gradient is zeroed after use."""
    for j in range(len(param)):
        g = grad[j]
        total = state_sum[j] + g * g
        state_sum[j] = total
        param[j] -= lr * g / (np.sqrt(total) + eps)
        grad[j] = 0


@kernels._jit_exact
def _adagrad_rows(param, state_sum, grad, rows, count, lr, eps):
    """Adagrad on ``param[rows[:count]]``; their gradient rows are zeroed after use."""
    for i in range(count):
        row = rows[i]
        _adagrad_row(param[row], state_sum[row], grad[row], lr, eps)


@kernels._jit
def _train_step(users, pos, negatives, user_table, item_table, weight, bias, user_sum,
                item_sum, weight_sum, bias_sum, grad_items, grad_weight, grad_bias,
                user_slots, seen_items, user_rows, item_rows, rates, uib, alpha,
                weight_decay, user_key_lo, user_key_hi, item_key_lo, item_key_hi,
                threshold, scale, totals):
    grad_users = np.zeros((len(user_rows), user_table.shape[1]), dtype=np.float32)
    num_users, num_items = _forward_backward(
        users, pos, negatives, user_table, item_table, weight, bias, grad_users, grad_items,
        grad_weight, grad_bias, user_slots, seen_items, user_rows, item_rows, uib, alpha,
        weight_decay, user_key_lo, user_key_hi, item_key_lo, item_key_hi, threshold, scale,
        totals)

    for i in range(num_users):
        user = user_rows[i]
        user_slots[user] = -1
        _adagrad_row(user_table[user], user_sum[user], grad_users[i], rates[0, 0],
                     rates[0, 1])
    for i in range(num_items):
        seen_items[item_rows[i]] = 0
    _adagrad_rows(item_table, item_sum, grad_items, item_rows, num_items, rates[1, 0],
                  rates[1, 1])
    if uib:
        _adagrad_row(weight[0], weight_sum[0], grad_weight[0], rates[2, 0], rates[2, 1])
        _adagrad_row(bias, bias_sum, grad_bias, rates[3, 0], rates[3, 1])
