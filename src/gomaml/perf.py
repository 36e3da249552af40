"""Speed baselines: the vectorised NumPy meta-gradient and the machine's streaming-read
bandwidth (for the memory-bound figure of the kernels). Used by bench/ and `gomaml bench`."""
import time

import numpy as np

from gomaml import _kernels
from gomaml._threads import resolve_n_threads
from gomaml.losses import resolve_loss


def _loss_parts(loss, z, y):
    """(l, l', l'') by whole-array NumPy expressions (the baseline does not use the kernels)."""
    if loss.name == "squared":
        r = z - y
        return r * r, 2 * r, np.full_like(z, 2.0)
    if loss.name == "logistic":
        t = y * z
        e = np.exp(-np.abs(t))
        sig_neg = np.where(t >= 0, e / (1 + e), 1 / (1 + e))
        return np.logaddexp(0, -t), -y * sig_neg, e / (1 + e) ** 2
    r = z - y
    h = np.hypot(1.0, r / loss.delta)
    return r * (r / (1 + h)), r / h, h ** -3


def numpy_meta_loss_grad(theta, Xs, ys, Xq, yq, weights=None, *, loss="squared",
                         inner_lr=0.1, inner_steps=1):
    """The exact meta-gradient by batched NumPy products over dense (n, k, d) arrays:
    the strongest plain-NumPy baseline (vectorised over tasks; BLAS does the products)."""
    loss = resolve_loss(loss)
    n, ks, d = Xs.shape
    kq = Xq.shape[1]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    th = np.broadcast_to(np.asarray(theta, dtype=np.float64), (n, d))
    h2 = []
    for _ in range(inner_steps):
        z = np.matmul(Xs, th[:, :, None])[:, :, 0]
        _, l1, l2 = _loss_parts(loss, z, ys)
        h2.append(l2)
        th = th - (inner_lr / ks) * np.matmul(l1[:, None, :], Xs)[:, 0, :]
    zq = np.matmul(Xq, th[:, :, None])[:, :, 0]
    l0, l1, _ = _loss_parts(loss, zq, yq)
    v = np.matmul(l1[:, None, :], Xq)[:, 0, :] / kq
    for t in range(inner_steps - 1, -1, -1):
        u = np.matmul(Xs, v[:, :, None])[:, :, 0]
        v = v - (inner_lr / ks) * np.matmul((h2[t] * u)[:, None, :], Xs)[:, 0, :]
    return float(w @ l0.mean(axis=1)), w @ v


def stream_bandwidth(n_bytes, *, n_threads=None, repeats=5):
    """Best streaming-read bandwidth (bytes/s) over `repeats` reads of an n_bytes buffer
    with n_threads threads (the kernels' thread policy)."""
    n_threads = resolve_n_threads(n_threads)
    buf = np.ones(max(16, int(n_bytes) // 8))
    partial = np.empty(min(buf.size, 64 * n_threads))
    _kernels.stream_read(buf, partial, n_threads)        # first touch, page faults
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _kernels.stream_read(buf, partial, n_threads)
        best = min(best, time.perf_counter() - t0)
    if partial.sum() != buf.size:
        raise RuntimeError("bandwidth probe read wrong data")
    return buf.nbytes / best


def last_level_cache_bytes():
    """Size of the largest CPU cache (sysfs), or 32 MiB when it cannot be read."""
    import glob
    best = 0
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            text = open(path).read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
            best = max(best, int(text.rstrip("KMG")) * mult)
        except (OSError, ValueError):
            pass
    return best or (32 << 20)


def access_floor_read(tasks, *, n_threads=None):
    """A call that reads the tasks' rows in meta_objective's own access order (per task Xs_i,
    Xq_i, Xs_i; the same task blocks and threads) and does nothing else: time it for the
    floor a meta-gradient cannot beat, whatever the cache holds between calls."""
    from gomaml._core import n_blocks_for
    n_threads = resolve_n_threads(n_threads)
    Xs, _, s_ptr, Xq, _, q_ptr = tasks.packed()
    sums = np.empty(n_blocks_for(tasks.n_tasks, tasks.d))
    return lambda: _kernels.access_floor(Xs, s_ptr, Xq, q_ptr, sums, n_threads)


def access_floor_seconds(tasks, *, n_threads=None, repeats=5):
    """Best time of access_floor_read(tasks) (after one warm-up call)."""
    read = access_floor_read(tasks, n_threads=n_threads)
    read()
    return best_time(read, repeats=repeats)


def cpu_description():
    """'model name, caches L1d 48 KiB, L2 2 MiB, L3 32 MiB' from /proc/cpuinfo and sysfs."""
    import glob
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    caches = []
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            level = open(f"{index}/level").read().strip()
            kind = open(f"{index}/type").read().strip()
            size = open(f"{index}/size").read().strip()
        except OSError:
            continue
        if kind != "Instruction":
            caches.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return model + (", caches " + ", ".join(caches) if caches else "")


def task_bytes(tasks):
    """Bytes a meta-gradient must read at least once: support + query rows and labels."""
    Xs, ys, _, Xq, yq, _ = tasks.packed()
    total = Xs.nbytes + ys.nbytes
    if not tasks.same_data:
        total += Xq.nbytes + yq.nbytes
    return total


def best_time(fn, *, repeats=5, min_time=0.2):
    """Best wall time of fn() over at least `repeats` calls and `min_time` seconds."""
    return best_times([fn], repeats=repeats, min_time=min_time)[0]


def best_times(fns, *, repeats=5, min_time=0.2):
    """Best wall time of each fn over at least `repeats` rounds and `min_time` seconds, the
    functions called in turn within each round: on a shared machine a busy phase then hits
    every function alike, so their ratio means something."""
    best = [np.inf] * len(fns)
    spent, count = 0.0, 0
    while count < repeats or spent < min_time:
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best[j], spent = min(best[j], dt), spent + dt
        count += 1
    return best
