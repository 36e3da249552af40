"""Meta-gradient timing against the vectorised NumPy baseline, the machine's streaming-read
bandwidth, and (when installed) JAX and PyTorch: the engine of `gomaml bench` and
bench/table.py."""
import numpy as np

from gomaml import perf
from gomaml._buildinfo import build_info
from gomaml.objective import meta_loss_grad
from gomaml.tasks import Tasks

# name: (n tasks, k support = k query, d): the core issue's sizes
SIZES = {
    "A": (1000, 10, 100),
    "B": (200, 20, 2000),
    "C": (100, 50, 10000),
    "D": (10000, 5, 50),
    "E": (10, 1000, 1000),
}


def make_case(shape, loss="squared", dtype=np.float64, seed=0):
    """(theta, tasks, dense (Xs, ys, Xq, yq)) of one size; labels fit the loss."""
    n, k, d = shape
    rng = np.random.default_rng(seed)
    Xs = rng.standard_normal((n, k, d), dtype=np.dtype(dtype).type)
    Xq = rng.standard_normal((n, k, d), dtype=np.dtype(dtype).type)
    Xs /= np.sqrt(d)
    Xq /= np.sqrt(d)
    if loss == "logistic":
        ys = rng.choice(np.array([-1.0, 1.0], dtype=dtype), size=(n, k))
        yq = rng.choice(np.array([-1.0, 1.0], dtype=dtype), size=(n, k))
    else:
        ys = rng.standard_normal((n, k)).astype(dtype)
        yq = rng.standard_normal((n, k)).astype(dtype)
    theta = rng.standard_normal(d) / np.sqrt(d)
    return theta, Tasks(Xs, ys, Xq, yq), (Xs, ys, Xq, yq)


def _peers():
    """Optional peer implementations that are importable: name -> factory(dense, loss, η)."""
    peers = {}
    try:
        import torch  # noqa: F401
        peers["torch"] = _torch_meta_grad
    except ImportError:
        pass
    try:
        import jax  # noqa: F401
        peers["jax"] = _jax_meta_grad
    except ImportError:
        pass
    return peers


def _torch_meta_grad(dense, loss, eta):
    import torch
    Xs, ys, Xq, yq = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
                      for a in dense)
    ell = {"squared": lambda z, y: (z - y) ** 2,
           "logistic": lambda z, y: torch.nn.functional.softplus(-y * z),
           "pseudo_huber": lambda z, y: torch.sqrt(1 + (z - y) ** 2) - 1}[loss]

    def run(theta):
        th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        zs = torch.einsum("nkd,d->nk", Xs, th)
        # l'(z) of every support sample, kept differentiable (create_graph) for the Hessian
        l1 = torch.autograd.grad(ell(zs, ys).sum(), zs, create_graph=True)[0]
        th_i = th[None, :] - eta * torch.einsum("nkd,nk->nd", Xs, l1) / Xs.shape[1]
        L = ell(torch.einsum("nkd,nd->nk", Xq, th_i), yq).mean()
        L.backward()
        return float(L.detach()), th.grad.numpy()
    return run


def _jax_meta_grad(dense, loss, eta):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    Xs, ys, Xq, yq = (jnp.asarray(a, dtype=jnp.float64) for a in dense)
    ell = {"squared": lambda z, y: (z - y) ** 2,
           "logistic": lambda z, y: jnp.logaddexp(0.0, -y * z),
           "pseudo_huber": lambda z, y: jnp.sqrt(1 + (z - y) ** 2) - 1}[loss]

    def task_loss(th, xs, y_s, xq, y_q):
        inner = jax.grad(lambda t: ell(xs @ t, y_s).mean())(th)
        return ell(xq @ (th - eta * inner), y_q).mean()

    def meta(th):
        return jax.vmap(task_loss, in_axes=(None, 0, 0, 0, 0))(th, Xs, ys, Xq, yq).mean()

    f = jax.jit(jax.value_and_grad(meta))

    def run(theta):
        L, g = f(jnp.asarray(theta))
        return float(L), np.asarray(g)
    return run


def run_table(shapes, losses=("squared", "logistic"), *, dtype=np.float64, n_threads=2,
              numpy_baseline=True, peers=True, out=print):
    """Print one line per (size, loss): time, × the DRAM and data-size bandwidth bounds,
    and × each baseline, all measured in this run. Returns the rows as dicts."""
    info = build_info()
    out(f"gomaml {info['version']}  openmp={info['openmp']}  isa={info['isa']}  "
        f"threads={n_threads}  dtype={np.dtype(dtype).name}  numpy {np.__version__} "
        f"({info['blas']})")
    out(f"cpu: {perf.cpu_description()}")
    bw_dram = perf.stream_bandwidth(4 * perf.last_level_cache_bytes(), n_threads=n_threads)
    out(f"streaming read, buffer 4x the last-level cache: {bw_dram / 1e9:.1f} GB/s")
    out("xfloor: time / a plain read of the same rows in the kernel's own order (Xs_i, Xq_i, "
        "Xs_i per task, same threads), timed in this run")
    found = _peers() if peers and np.dtype(dtype) == np.float64 else {}
    names = (["numpy"] if numpy_baseline else []) + sorted(found)
    out(f"{'size':>4} {'loss':9} {'(n, k, d)':>18} {'MB':>7} {'ms':>8} {'xfloor':>6} "
        f"{'xDRAM':>6} {'xdata':>6}" + "".join(f" {n + ' ms':>10} {'x' + n:>7}" for n in names))
    rows = []
    for name, shape in shapes:
        for loss in losses:
            theta, tasks, dense = make_case(shape, loss, dtype)
            nbytes = perf.task_bytes(tasks)
            bw_data = perf.stream_bandwidth(nbytes, n_threads=n_threads)
            ours = lambda: meta_loss_grad(theta, tasks, loss=loss, inner_lr=0.1,
                                          n_threads=n_threads)
            L1, g1 = ours()
            t = perf.best_time(ours)           # alone, as every peer is timed below
            read = perf.access_floor_read(tasks, n_threads=n_threads)
            read()
            # the floor ratio from alternating calls: a busy phase of the host hits both
            t_pair, floor = perf.best_times([ours, read], repeats=7, min_time=0.4)
            row = {"size": name, "shape": shape, "loss": loss, "bytes": nbytes, "seconds": t,
                   "x_floor": t_pair / floor,
                   "x_dram": t * bw_dram / nbytes, "x_data": t * bw_data / nbytes}
            line = (f"{name:>4} {loss:9} {str(shape):>18} {nbytes / 1e6:7.1f} {t * 1e3:8.2f} "
                    f"{row['x_floor']:6.2f} {row['x_dram']:6.2f} {row['x_data']:6.2f}")
            for peer in names:
                if peer == "numpy":
                    fn = lambda: perf.numpy_meta_loss_grad(theta, *dense, loss=loss,
                                                           inner_lr=0.1)
                else:
                    fn = (lambda run: (lambda: run(theta)))(found[peer](dense, loss, 0.1))
                L0, g0 = fn()
                if not (abs(L0 - L1) <= 1e-8 * abs(L1) and
                        np.allclose(g0, g1, rtol=1e-6, atol=1e-10)):
                    raise RuntimeError(f"{peer} disagrees with gomaml on {name}/{loss}")
                tp = perf.best_time(fn, repeats=3)
                row[f"{peer}_seconds"] = tp
                line += f" {tp * 1e3:10.2f} {tp / t:7.2f}"
            out(line)
            rows.append(row)
    return rows
