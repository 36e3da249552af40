"""The internal contract of gomaml's numerical core: the validated call (Problem), the kernel
evaluation of the meta-objective in blocks (block_sums, evaluate) and the scratch and block
helpers. Private, but imported openly by every module that evaluates the objective (objective,
train, minimizer, bounds, study, distributed): it is the one place these rules live.
"""
import math

import numpy as np

from gomaml import _validate
from gomaml._memory import human, available_bytes
from gomaml._threads import _kernels, resolve_n_threads
from gomaml.losses import LOGISTIC, resolve_loss
from gomaml.tasks import Tasks

# At most this many partial-sum blocks (rows of d doubles), and at most this many bytes of them;
# beyond 64·64 tasks, one block per 64 tasks up to _MAX_BLOCKS_LARGE (so a large task set can
# be cut into that many shards on a cluster, gomaml.distributed).
_MAX_BLOCKS = 64
_MAX_BLOCKS_LARGE = 1024
_BLOCK_BYTES = 64 << 20


class NumericalOverflowError(ArithmeticError):
    """A result overflowed to inf or NaN although every input was finite.

    Raised by every call instead of returning inf or NaN; the message names the step size to
    reduce (the CLI exits 1). An ArithmeticError, not a ValueError: the inputs were valid.

    Attributes
    ----------
    args : tuple
        The message: what overflowed and what to reduce.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> tasks = gomaml.Tasks(np.full((1, 2, 2), 1e150), np.ones((1, 2)))
    >>> try:
    ...     gomaml.meta_loss(np.ones(2), tasks, inner_lr=1.0)
    ... except gomaml.NumericalOverflowError as exc:
    ...     print(type(exc).__name__)
    NumericalOverflowError
    """


NonFiniteOutputError = NumericalOverflowError      # the name before 0.2

#: inner_steps is a C int in the kernels
MAX_INNER_STEPS = 2**31 - 1
#: per-thread scratch above this many bytes is checked against the memory available
_SCRATCH_CHECK = 64 << 20


class Problem:
    """Validated arguments of one kernel call: the tasks, the loss and the inner loop."""

    __slots__ = ("tasks", "loss", "inner_lr", "inner_steps", "n_threads", "sharded")

    def __init__(self, tasks, loss, inner_lr, inner_steps, n_threads, sharded_ok=False):
        self.sharded = getattr(tasks, "_block_sums", None) is not None   # gomaml.distributed
        if self.sharded:
            if not sharded_ok:
                raise TypeError(f"tasks: this call needs a gomaml.Tasks in this process; "
                                f"{type(tasks).__name__} is accepted by meta_loss_grad, "
                                f"meta_loss and fit only")
        elif not isinstance(tasks, Tasks):
            raise TypeError(f"tasks must be a gomaml.Tasks, got {type(tasks).__name__}")
        self.tasks = tasks
        self.loss = resolve_loss(loss)
        if self.loss.code == LOGISTIC and not tasks.labels_are_pm1:
            raise ValueError("tasks: the logistic loss needs labels in {-1, +1}; these tasks "
                             "have other labels (ys or yq)")
        self.inner_lr = _validate.positive("inner_lr", inner_lr)
        self.inner_steps = _validate.integer("inner_steps", inner_steps, low=1,
                                             high=MAX_INNER_STEPS)
        T, ks_max = self.inner_steps, tasks.max_support
        work = tasks.d * (4 * T * tasks.total_support + 2 * tasks.total_query)
        self.n_threads = resolve_n_threads(n_threads, work)
        # the backward pass keeps l'' of every inner step: T·max ks doubles per thread
        need = 8 * self.n_threads * (3 * tasks.d + T * ks_max)
        if need > _SCRATCH_CHECK:
            avail = available_bytes()
            if avail is not None and need > avail // 2:
                raise ValueError(f"inner_steps = {T} needs {human(need)} of scratch "
                                 f"({self.n_threads} thread(s) × (3·d + inner_steps × "
                                 f"{ks_max} support rows) doubles), more than half the "
                                 f"{human(avail)} available")

    def theta(self, theta, name="theta"):
        """theta as a float64 (d,) array, checked in O(d)."""
        t = _validate.array(name, theta, np.float64)
        d = self.tasks.d
        if t.shape != (d,):
            raise ValueError(f"{name}: expected shape ({d},) (the tasks' d), got {t.shape}")
        if not np.isfinite(t).all():
            raise ValueError(f"{name}: contains NaN or inf")
        return np.ascontiguousarray(t)

    def overflow(self, what):
        return NumericalOverflowError(
            f"{what} is not finite (inf or NaN) although the inputs are: the inner loop or the "
            f"loss overflowed. Reduce inner_lr (now {self.inner_lr:g}) or the scale of theta, "
            f"the features or the labels.")


def aligned_scratch(rows, cols):
    """(rows, cols) float64 scratch whose rows each start on a 64-byte cache line, so no
    thread's vectors straddle lines or share one with another thread's."""
    width = -(-cols // 8) * 8
    raw = np.empty(rows * width + 8)
    offset = (-raw.ctypes.data % 64) // 8
    return raw[offset:offset + rows * width].reshape(rows, width)


def n_blocks_for(m, d):
    """Partial-sum blocks for m tasks: depends on (m, d) only, never on the thread count."""
    cap = max(_MAX_BLOCKS, min(_MAX_BLOCKS_LARGE, m // 64))
    return max(1, min(m, cap, _BLOCK_BYTES // (8 * d)))


def block_ptr_for(m, n_blocks):
    """Block b holds entries block_ptr[b]:block_ptr[b + 1] of m: (n_blocks + 1,) int64."""
    return (np.arange(n_blocks + 1, dtype=np.int64) * m) // n_blocks


def block_sums(problem, theta, mode, task_ids=None, weights=None, block_ptr=None):
    """Per-block partial sums (block_loss (B,), block_grad (B, d)) through the meta_objective
    kernel. task_ids/weights select a subset (default: every task, the tasks' weights);
    block_ptr cuts it into blocks (default: n_blocks_for's)."""
    tasks = problem.tasks
    Xs, ys, s_ptr, Xq, yq, q_ptr = tasks.packed()
    if task_ids is None:
        task_ids = np.arange(tasks.n_tasks, dtype=np.int64)
        weights = tasks.weights if weights is None else weights
        ks_max = tasks.max_support
    else:
        ks_max = int(tasks.support_sizes[task_ids].max())
    m, d = task_ids.shape[0], tasks.d
    if block_ptr is None:
        block_ptr = block_ptr_for(m, n_blocks_for(m, d))
    B = block_ptr.shape[0] - 1
    block_loss = np.empty(B)
    block_grad = np.empty((B, d))
    scratch = aligned_scratch(problem.n_threads,
                              _kernels.scratch_size(d, problem.inner_steps, ks_max))
    _kernels.meta_objective(Xs, ys, s_ptr, Xq, yq, q_ptr, task_ids, weights, block_ptr, theta,
                            problem.loss.code, problem.loss.delta, problem.inner_lr,
                            problem.inner_steps, mode, block_loss, block_grad, scratch,
                            problem.n_threads)
    return block_loss, block_grad


def evaluate(problem, theta, mode, task_ids=None, weights=None):
    """(L, grad or None): the block sums, added in block order; task_ids/weights select a
    subset. Sharded tasks (gomaml.distributed) compute the same block sums on their workers."""
    if problem.sharded:
        if task_ids is not None:
            raise ValueError("tasks: a subset of tasks (batch_size) is not supported on "
                             "sharded tasks; train them full-batch")
        block_loss, block_grad = problem.tasks._block_sums(problem, theta, mode)
    else:
        block_loss, block_grad = block_sums(problem, theta, mode, task_ids, weights)
    value = float(np.sum(block_loss))
    if not math.isfinite(value):
        raise problem.overflow("the meta-loss")
    if not mode:
        return value, None
    grad = block_grad.sum(axis=0)     # fixed order over blocks
    if not np.isfinite(grad).all():
        raise problem.overflow("the meta-gradient")
    return value, grad
