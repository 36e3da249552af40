"""Meta-gradients and studies on a dask.distributed cluster (docs/distributed.md).

Needs the extra: pip install "gomaml[dask]". Nothing else in gomaml imports Dask.

ShardedTasks keeps a task set on the workers, cut into shards at the block boundaries of the
single-process evaluation (gomaml.objective.block_ptr_for); per call only θ goes out and each
shard sends back its blocks' partial sums, which the client adds in block order as
meta_loss_grad does: the result is bit-identical to meta_loss_grad on the same tasks.
"""
import functools
import hashlib

import numpy as np

from gomaml import _validate
from gomaml import _threads
from gomaml._core import Problem, block_ptr_for, block_sums, n_blocks_for
from gomaml.tasks import Tasks

#: how often one shard's evaluation is re-sent after its worker was lost, in one call
MAX_RESENDS = 3


def _dask():
    try:
        import distributed
    except ImportError:
        raise ImportError("gomaml.distributed needs dask.distributed: "
                          "pip install \"gomaml[dask]\"") from None
    return distributed


@functools.lru_cache(maxsize=None)
def _cancelled_errors():
    """What wait() raises when a future's data was lost: FuturesCancelledError in recent
    dask.distributed, CancelledError before."""
    import asyncio
    import concurrent.futures
    import distributed.client as dc
    found = getattr(dc, "FuturesCancelledError", None)
    return (concurrent.futures.CancelledError, asyncio.CancelledError) + \
        ((found,) if found is not None else ())


def _check_client(client):
    distributed = _dask()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a dask.distributed.Client, got "
                        f"{type(client).__name__}")
    return distributed


def worker_budget():
    """On a Dask worker: give each of its task threads an equal share of the CPUs the
    kernels may use (n_threads=None), so N concurrent jobs never run N × all-CPU thread teams.
    Elsewhere: nothing. Returns the share."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return _threads.default_threads()
    _threads.share_cpus(worker.state.nthreads)
    return _threads.default_threads()


def slice_tasks(tasks, lo, hi):
    """Tasks lo:hi of `tasks` as a Tasks with the same rows (bit for bit) and dtype."""
    Xs, ys, s_ptr, Xq, yq, q_ptr = tasks.packed()
    s = slice(s_ptr[lo], s_ptr[hi])
    if tasks.same_data:
        return Tasks.from_packed(Xs[s], ys[s], s_ptr[lo:hi + 1] - s_ptr[lo],
                                 None, None, None, dtype=tasks.dtype)
    q = slice(q_ptr[lo], q_ptr[hi])
    return Tasks.from_packed(Xs[s], ys[s], s_ptr[lo:hi + 1] - s_ptr[lo], Xq[q], yq[q],
                             q_ptr[lo:hi + 1] - q_ptr[lo], dtype=tasks.dtype)


class _Shard:
    """One shard on a worker: its tasks, their weights in the whole set, and its block cuts."""

    __slots__ = ("tasks", "weights", "block_ptr")

    def __init__(self, tasks, weights, block_ptr):
        self.tasks, self.weights, self.block_ptr = tasks, weights, block_ptr


# --- run on the workers ---------------------------------------------------------------------

def _load(loader, index):
    worker_budget()
    tasks = loader(index)
    if not isinstance(tasks, Tasks):
        raise TypeError(f"loader({index}) must return a gomaml.Tasks, got "
                        f"{type(tasks).__name__}")
    return tasks


def _describe(tasks):
    return dict(n_tasks=tasks.n_tasks, d=tasks.d, dtype=str(tasks.dtype),
                max_support=tasks.max_support, total_support=tasks.total_support,
                total_query=tasks.total_query, labels_are_pm1=tasks.labels_are_pm1,
                weights=np.asarray(tasks.weights), hash=tasks.content_hash())


def _prepare(tasks, weights, block_ptr):
    return _Shard(tasks, weights, block_ptr)


def _shard_sums(shard, theta, loss, inner_lr, inner_steps, mode):
    worker_budget()
    problem = Problem(shard.tasks, loss, inner_lr, inner_steps, None)
    block_loss, block_grad = block_sums(problem, theta, mode, None, shard.weights,
                                        shard.block_ptr)
    return block_loss, (block_grad if mode else None)


def run_study_row(cfg, seed, d, with_path):
    """One (seed, d) row of a study, on a worker: (row, path, provenance)."""
    from gomaml.study import provenance, run_row
    worker_budget()
    row, path = run_row(cfg, seed, d, with_path=with_path)
    return row, path, provenance()


# --- the client's side ----------------------------------------------------------------------

class ShardedTasks:
    """A task set held on the workers of a Dask cluster, for meta_loss_grad, meta_loss and fit.

    ShardedTasks(client, tasks, n_shards) scatters `tasks` (a gomaml.Tasks in this process)
    once, cut into n_shards shards at the block boundaries of the single-process evaluation
    (1 <= n_shards <= its block count, `max_shards(n_tasks, d)`); the client keeps its copy and
    re-sends a shard whose worker was lost. ShardedTasks.from_loader(client, loader, n_shards)
    runs loader(i) -> Tasks on the workers instead, for task sets larger than the client's
    memory (recovery re-runs the loader). Per call only θ goes out and each shard returns its
    blocks' partial sums, added on the client in block order: bit-identical to meta_loss_grad
    on the same tasks (workers of the same build and instruction-set level; from a loader,
    when every shard boundary is a block boundary: see `bit_identical`). Mini-batches
    (fit's batch_size) need a Tasks in this process. On the workers the kernels use each
    worker's share of its CPUs (gomaml.distributed.worker_budget). docs/distributed.md.

    Parameters
    ----------
    client : dask.distributed.Client
    tasks : Tasks
        The task set, in this process.
    n_shards : int
        1 <= n_shards <= max_shards(n_tasks, d).

    Attributes
    ----------
    n_tasks, d, dtype, weights, n_shards, shard_sizes, bit_identical

    Raises
    ------
    ImportError
        dask.distributed is not installed (pip install "gomaml[dask]").
    TypeError, ValueError
        A bad argument, named.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> from dask.distributed import Client
    >>> from gomaml.distributed import ShardedTasks
    >>> client = Client(processes=False, n_workers=1, dashboard_address=None)
    >>> rng = np.random.default_rng(0)
    >>> tasks = gomaml.Tasks(rng.normal(size=(12, 4, 3)), rng.normal(size=(12, 4)))
    >>> with ShardedTasks(client, tasks, 3) as sharded:
    ...     L, g = gomaml.meta_loss_grad(np.ones(3), sharded)
    >>> (L, g.tolist()) == (lambda r: (r[0], r[1].tolist()))(
    ...     gomaml.meta_loss_grad(np.ones(3), tasks))                   # bit for bit
    True
    >>> client.close()
    """

    def __init__(self, client, tasks, n_shards):
        _check_client(client)
        if not isinstance(tasks, Tasks):
            raise TypeError(f"tasks must be a gomaml.Tasks, got {type(tasks).__name__} "
                            f"(for tasks built on the workers, use ShardedTasks.from_loader)")
        n, d = tasks.n_tasks, tasks.d
        S = _check_shards(n_shards, n, d)
        ptr = block_ptr_for(n, n_blocks_for(n, d))
        B = ptr.shape[0] - 1
        shards = []
        for s in range(S):
            b0, b1 = (s * B) // S, ((s + 1) * B) // S
            lo, hi = int(ptr[b0]), int(ptr[b1])
            shards.append(_Shard(slice_tasks(tasks, lo, hi), tasks.weights[lo:hi].copy(),
                                 ptr[b0:b1 + 1] - ptr[b0]))
        self._client = client
        self._local = shards
        self._loader = None
        self._futures = [client.scatter(sh, hash=False) for sh in shards]
        self._meta(n, d, tasks.dtype, tasks.weights, tasks.max_support, tasks.total_support,
                   tasks.total_query, tasks.labels_are_pm1, tasks.content_hash(),
                   [sh.tasks.n_tasks for sh in shards], True)

    @classmethod
    def from_loader(cls, client, loader, n_shards):
        """Shards made on the workers: loader(i) -> gomaml.Tasks for i in range(n_shards),
        the shards in order (tasks of shard 0 first). Weights: each shard's own (normalised
        to sum 1 within it) scaled by its share n_i/n of the tasks; with equal weights that is
        1/n per task, as for a Tasks of them all."""
        _check_client(client)
        if not callable(loader):
            raise TypeError(f"loader must be callable (shard index -> Tasks), got "
                            f"{type(loader).__name__}")
        S = _validate.integer("n_shards", n_shards, low=1)
        loaded = [client.submit(_load, loader, s, pure=False) for s in range(S)]
        infos = client.gather([client.submit(_describe, f, pure=False) for f in loaded])
        d, dtype = infos[0]["d"], infos[0]["dtype"]
        for s, info in enumerate(infos):
            if info["d"] != d or info["dtype"] != dtype:
                raise ValueError(f"loader: shard {s} has d = {info['d']} ({info['dtype']}), "
                                 f"shard 0 has d = {d} ({dtype})")
        sizes = [info["n_tasks"] for info in infos]
        n = sum(sizes)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ptr = block_ptr_for(n, n_blocks_for(n, d))
        equal = all(np.all(info["weights"] == info["weights"][0]) for info in infos)
        weights = (np.full(n, 1.0 / n) if equal else np.concatenate(
            [info["weights"] * (info["n_tasks"] / n) for info in infos]))
        prepared, recipes, aligned = [], [], True
        for s in range(S):
            lo, hi = offsets[s], offsets[s + 1]
            inside = ptr[(ptr > lo) & (ptr < hi)]
            aligned &= bool(np.isin(lo, ptr))
            cuts = np.concatenate([[lo], inside, [hi]]) - lo
            recipes.append((weights[lo:hi].copy(), cuts.astype(np.int64)))
            prepared.append(client.submit(_prepare, loaded[s], *recipes[-1], pure=False))
        self = cls.__new__(cls)
        self._client = client
        self._local = None
        self._loader, self._recipes = loader, recipes
        self._futures = prepared          # lineage to _load: a lost shard is loaded again
        digest = hashlib.sha256()
        for info in infos:
            digest.update(info["hash"].encode())
        digest.update(weights.tobytes())
        self._meta(n, d, np.dtype(dtype), weights, max(i["max_support"] for i in infos),
                   sum(i["total_support"] for i in infos), sum(i["total_query"] for i in infos),
                   all(i["labels_are_pm1"] for i in infos), digest.hexdigest(), sizes,
                   aligned)
        return self

    def _meta(self, n, d, dtype, weights, max_support, total_support, total_query, pm1,
              digest, sizes, aligned):
        self._n, self._d, self._dtype = n, d, np.dtype(dtype)
        self._weights = np.asarray(weights, dtype=np.float64)
        self._weights.flags.writeable = False
        self.max_support, self.total_support, self.total_query = \
            max_support, total_support, total_query
        self.labels_are_pm1 = pm1
        self._hash, self._sizes, self._aligned = digest, list(sizes), aligned

    n_tasks = property(lambda self: self._n, doc="The number of tasks n, over all shards.")
    d = property(lambda self: self._d, doc="The feature dimension d.")
    dtype = property(lambda self: self._dtype, doc="The shards' dtype.")
    weights = property(lambda self: self._weights,
                       doc="The task weights p_i of the whole set, float64 (n,), read-only.")
    n_shards = property(lambda self: len(self._futures), doc="The number of shards.")
    shard_sizes = property(lambda self: list(self._sizes), doc="tasks per shard")
    bit_identical = property(
        lambda self: self._aligned,
        doc="True when every shard boundary is a block boundary of the single-process "
            "evaluation, so results are bit-identical to meta_loss_grad on the same tasks "
            "(always, for shards cut from a Tasks)")

    def content_hash(self):
        """The tasks' content hash (that of the Tasks they were cut from; from a loader, of
        the shards' hashes and the weights)."""
        return self._hash

    def __len__(self):
        return self._n

    def __repr__(self):
        return (f"ShardedTasks(n_tasks={self._n}, d={self._d}, n_shards={self.n_shards}, "
                f"shard_sizes={self._sizes})")

    def close(self):
        """Release the shards on the cluster."""
        for f in self._futures:
            f.release()
        self._futures = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _resend(self, s):
        """Shard s again on the cluster: re-scattered from the client's copy, or loaded again."""
        if self._local is not None:
            self._futures[s] = self._client.scatter(self._local[s], hash=False)
        else:
            weights, cuts = self._recipes[s]
            loaded = self._client.submit(_load, self._loader, s, pure=False)
            self._futures[s] = self._client.submit(_prepare, loaded, weights, cuts, pure=False)

    def _block_sums(self, problem, theta, mode):
        """Every shard's block sums, in block order: (block_loss (B,), block_grad (B, d) or
        None). A shard whose worker died is re-sent (or re-loaded) and evaluated again."""
        distributed = _dask()
        _CANCELLED = _cancelled_errors()
        if not self._futures:
            raise ValueError("tasks: this ShardedTasks was closed")
        args = (theta, problem.loss, problem.inner_lr, problem.inner_steps, mode)
        for s, f in enumerate(self._futures):
            if f.status in ("cancelled", "lost"):
                self._resend(s)
        calls = {s: self._client.submit(_shard_sums, f, *args, pure=False)
                 for s, f in enumerate(self._futures)}
        results, resends = {}, 0
        while calls:
            try:
                distributed.wait(list(calls.values()))
            except _CANCELLED:
                pass                        # a lost shard: its call is re-sent below
            done = [s for s, call in calls.items() if call.status == "finished"]
            for s, value in zip(done, self._client.gather([calls[s] for s in done])):
                results[s] = value                      # one round trip for all of them
                del calls[s]
            for s, call in list(calls.items()):
                if call.status == "error" and self._futures[s].status == "finished":
                    call.result()                        # an error of the computation: raise it
                resends += 1
                if resends > MAX_RESENDS * self.n_shards:
                    raise RuntimeError(f"shard {s}: re-sent {resends} times in one call; the "
                                       f"cluster keeps losing workers")
                if self._futures[s].status != "finished":
                    self._resend(s)
                calls[s] = self._client.submit(_shard_sums, self._futures[s], *args,
                                               pure=False)
        parts = [results[s] for s in range(self.n_shards)]
        B = sum(p[0].shape[0] for p in parts)
        block_loss = np.empty(B)
        block_grad = np.empty((B, self._d)) if mode else None
        b = 0
        for loss_part, grad_part in parts:
            k = loss_part.shape[0]
            block_loss[b:b + k] = loss_part
            if mode:
                block_grad[b:b + k] = grad_part
            b += k
        return block_loss, block_grad


def max_shards(n_tasks, d):
    """The most shards n tasks of dimension d can be cut into: their block count."""
    return n_blocks_for(n_tasks, d)


def _check_shards(n_shards, n, d):
    B = max_shards(n, d)
    try:
        return _validate.integer("n_shards", n_shards, low=1, high=B)
    except ValueError as exc:
        raise ValueError(f"{exc} ({B} is the block count of {n} tasks at d = {d}: shards are "
                         f"cut at block boundaries)") from None

