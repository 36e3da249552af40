"""Tasks: the support and query sets of n tasks in the packed layout of theory.md §1.

All data validation happens here, once; kernel calls check only theta.
"""
import hashlib
import os

import numpy as np

from gomaml import _validate
from gomaml._files import atomic_open, read_npz

_FINITE_CHUNK = 1 << 20  # elements per finiteness check, to bound the temporary


def _as_numeric(name, a):
    arr = _validate.array(name, a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


def _float_dtype(arrays, dtype):
    if dtype is not None:
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dt}")
        return dt
    dt = np.result_type(*arrays)
    if dt.kind != "f":
        return np.dtype(np.float64)       # integers and booleans are converted
    if dt.itemsize < 4:
        return np.dtype(np.float32)
    if dt.itemsize > 8:
        return np.dtype(np.float64)
    return dt


def _check_finite(name, a):
    flat = a.reshape(-1)
    for start in range(0, flat.size, _FINITE_CHUNK):
        block = flat[start:start + _FINITE_CHUNK]
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block))[0])
            where = np.unravel_index(bad, a.shape) if a.ndim > 1 else (bad,)
            beyond = " or a value beyond the float32 range (±3.4e38; use dtype=float64)" \
                if a.dtype == np.float32 else ""
            raise ValueError(f"{name}: contains NaN or inf{beyond} (first at index "
                             f"{tuple(int(i) for i in where)})")


def _readonly(a):
    v = a.view()
    v.flags.writeable = False
    return v


def _all_pm1(y):
    return bool(np.all((y == 1) | (y == -1)))


def _is_sequence(obj):
    return isinstance(obj, (list, tuple))


def _pack(xname, yname, X, y):
    """(rows (sum k, d), labels (sum k,), offsets (n+1,)) from a dense (n, k, d) array and
    (n, k) labels, or from lists of per-task (k_i, d) arrays and (k_i,) labels."""
    if _is_sequence(X):
        if not _is_sequence(y):
            raise TypeError(f"{yname}: must be a list like {xname}, got {type(y).__name__}")
        if len(X) != len(y):
            raise ValueError(f"{xname} has {len(X)} tasks but {yname} has {len(y)}")
        if len(X) == 0:
            raise ValueError(f"{xname}: no tasks")
        Xs = [_as_numeric(f"{xname}[{i}]", a) for i, a in enumerate(X)]
        ys = [_as_numeric(f"{yname}[{i}]", a) for i, a in enumerate(y)]
        for i, (a, b) in enumerate(zip(Xs, ys)):
            if a.ndim != 2:
                raise ValueError(f"{xname}[{i}]: expected a 2-D (k, d) array, got shape {a.shape}")
            if b.ndim != 1:
                raise ValueError(f"{yname}[{i}]: expected a 1-D (k,) array, got shape {b.shape}")
        return Xs, ys
    Xa = _as_numeric(xname, X)
    ya = _as_numeric(yname, y)
    if Xa.ndim != 3:
        raise ValueError(f"{xname}: expected a dense (n, k, d) array or a list of (k_i, d) "
                         f"arrays, got shape {Xa.shape}")
    if ya.ndim != 2:
        raise ValueError(f"{yname}: expected an (n, k) array, got shape {ya.shape}")
    return Xa, ya


def _packed_rows(xname, yname, X, y, dt):
    """Packed, contiguous, validated arrays of dtype dt from the output of _pack."""
    if isinstance(X, list):
        d = X[0].shape[1]
        for i, (a, b) in enumerate(zip(X, y)):
            if a.shape[1] != d:
                raise ValueError(f"{xname}[{i}]: has d = {a.shape[1]}, but {xname}[0] has d = {d}")
            if a.shape[0] != b.shape[0]:
                raise ValueError(f"{xname}[{i}] has {a.shape[0]} rows but {yname}[{i}] has "
                                 f"{b.shape[0]} labels")
            if a.shape[0] == 0:
                raise ValueError(f"{xname}[{i}]: task {i} has no rows (empty task)")
        sizes = np.array([a.shape[0] for a in X], dtype=np.int64)
        with np.errstate(over="ignore"):     # a float32 overflow is reported just below
            rows = np.concatenate([np.asarray(a, dtype=dt) for a in X], axis=0) if d else \
                np.empty((int(sizes.sum()), 0), dt)
            labels = np.concatenate([np.asarray(b, dtype=dt) for b in y])
    else:
        n, k, d = X.shape
        if y.shape != (n, k):
            raise ValueError(f"{xname} has shape {X.shape} but {yname} has shape {y.shape}; "
                             f"expected {(n, k)}")
        if n == 0:
            raise ValueError(f"{xname}: no tasks (n = 0)")
        if k == 0:
            raise ValueError(f"{xname}: the tasks have no rows (k = 0, empty tasks)")
        sizes = np.full(n, k, dtype=np.int64)
        with np.errstate(over="ignore"):     # a float32 overflow is reported just below
            rows = np.ascontiguousarray(X, dtype=dt).reshape(n * k, d)   # a view if possible
            labels = np.ascontiguousarray(y, dtype=dt).reshape(n * k)
    if rows.shape[1] == 0:
        raise ValueError(f"{xname}: feature dimension d = 0")
    ptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=ptr[1:])
    _check_finite(xname, rows)
    _check_finite(yname, labels)
    return rows, labels, ptr


def _normalise_weights(weights, n):
    if weights is None:
        return np.full(n, 1.0 / n)
    w = _as_numeric("weights", weights).astype(np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights: expected shape ({n},) (one per task), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights: must be finite")
    if not (w > 0).all():
        raise ValueError(f"weights: must be > 0, got min {w.min()!r}")
    w = w / w.max()          # no overflow in the sum below
    w = w / w.sum()
    if not (w > 0).all():
        i = int(np.flatnonzero(w <= 0)[0])
        raise ValueError(f"weights: weight {i} ({weights[i]!r}) is 0 once the weights are "
                         f"normalised to sum 1 (its ratio to the largest underflows); drop "
                         f"that task or use weights of a smaller range")
    return w


class Tasks:
    """n meta-learning tasks, each a support set (used by the inner step) and a query set.

    All validation (shapes, sizes, finiteness) happens once, here; the data are packed
    (docs/theory.md §1) and read-only.

    Parameters
    ----------
    Xs : array_like (n, k, d), or a list of n arrays (k_i, d)
        Support features φ(x) of each task (sizes may differ between tasks).
    ys : array_like (n, k), or a list of n arrays (k_i,)
        Support labels.
    Xq, yq : optional, shaped likewise
        Query features and labels (query sizes may differ from the support's). Both None:
        same-data mode, the query set is the support set (no copy).
    weights : array_like (n,), optional
        Positive task weights p_i, normalised to sum 1; default uniform.
    dtype : float32 or float64, optional
        Default: the result type of the inputs (integers become float64). A dense array of
        the right dtype is used without a copy: do not modify it afterwards.

    Raises
    ------
    TypeError
        Non-numeric data (or a tensor that requires grad: pass .detach()).
    ValueError
        Shapes that do not match, an empty task, NaN or inf, weights that are not positive.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> rng = np.random.default_rng(0)
    >>> tasks = gomaml.Tasks(rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 5)),
    ...                      rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 2)))
    >>> tasks.n_tasks, tasks.d, tasks.support_sizes.tolist(), tasks.weights.tolist()
    (3, 4, [5, 5, 5], [0.3333333333333333, 0.3333333333333333, 0.3333333333333333])
    >>> ragged = gomaml.Tasks([np.ones((2, 4)), np.ones((7, 4))], [np.ones(2), np.ones(7)])
    >>> ragged.support_sizes.tolist(), ragged.same_data
    ([2, 7], True)
    """

    def __init__(self, Xs, ys, Xq=None, yq=None, *, weights=None, dtype=None):
        if (Xq is None) != (yq is None):
            raise ValueError("Xq and yq: give both (separate query sets) or neither "
                             "(same-data mode)")
        same = Xq is None
        Xs_, ys_ = _pack("Xs", "ys", Xs, ys)
        parts = [Xs_, ys_]
        if not same:
            Xq_, yq_ = _pack("Xq", "yq", Xq, yq)
            parts += [Xq_, yq_]
        flat = [a for p in parts for a in (p if isinstance(p, list) else [p])]
        dt = _float_dtype(flat, dtype)
        s = _packed_rows("Xs", "ys", Xs_, ys_, dt)
        q = s if same else _packed_rows("Xq", "yq", Xq_, yq_, dt)
        self._init_packed(s, q, same, weights)

    @classmethod
    def from_packed(cls, Xs, ys, s_ptr, Xq, yq, q_ptr, *, weights=None, dtype=None):
        """Tasks from the packed layout: rows (sum k_i, d), labels (sum k_i,), int64 offsets
        (n+1,) with task i owning rows ptr[i]:ptr[i+1]. Xq = yq = q_ptr = None: same-data."""
        same = Xq is None and yq is None and q_ptr is None
        if not same and (Xq is None or yq is None or q_ptr is None):
            raise ValueError("Xq, yq and q_ptr: give all three or none (same-data mode)")
        arrays = [_as_numeric("Xs", Xs), _as_numeric("ys", ys)]
        if not same:
            arrays += [_as_numeric("Xq", Xq), _as_numeric("yq", yq)]
        dt = _float_dtype(arrays, dtype)

        def one(xname, yname, pname, X, y, ptr):
            if X.ndim != 2:
                raise ValueError(f"{xname}: expected packed (rows, d), got shape {X.shape}")
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(f"{yname}: expected shape ({X.shape[0]},), got {y.shape}")
            if X.shape[1] == 0:
                raise ValueError(f"{xname}: feature dimension d = 0")
            p = _as_numeric(pname, ptr)
            if p.dtype.kind not in "iu" or p.ndim != 1 or p.shape[0] < 2:
                raise ValueError(f"{pname}: expected 1-D integer offsets of length n+1 >= 2, "
                                 f"got dtype {p.dtype}, shape {p.shape}")
            p = p.astype(np.int64)
            if p[0] != 0 or p[-1] != X.shape[0]:
                raise ValueError(f"{pname}: must start at 0 and end at {X.shape[0]} "
                                 f"(the number of rows), got {p[0]} .. {p[-1]}")
            steps = np.diff(p)
            if (steps <= 0).any():
                i = int(np.flatnonzero(steps <= 0)[0])
                raise ValueError(f"{pname}: task {i} has {steps[i]} rows (empty task or "
                                 f"decreasing offsets)")
            with np.errstate(over="ignore"):     # a float32 overflow is reported below
                rows = np.ascontiguousarray(X, dtype=dt)
                labels = np.ascontiguousarray(y, dtype=dt)
            _check_finite(xname, rows)
            _check_finite(yname, labels)
            return rows, labels, p

        s = one("Xs", "ys", "s_ptr", arrays[0], arrays[1], s_ptr)
        if same:
            q = s
        else:
            q = one("Xq", "yq", "q_ptr", arrays[2], arrays[3], q_ptr)
            if q[2].shape != s[2].shape:
                raise ValueError(f"q_ptr describes {q[2].shape[0] - 1} tasks but s_ptr "
                                 f"{s[2].shape[0] - 1}")
        self = cls.__new__(cls)
        self._init_packed(s, q, same, weights)
        return self

    def _init_packed(self, s, q, same, weights):
        Xs, ys, s_ptr = s
        Xq, yq, q_ptr = q
        if Xq.shape[1] != Xs.shape[1]:
            raise ValueError(f"Xq: query d = {Xq.shape[1]} differs from support d = "
                             f"{Xs.shape[1]}")
        if q_ptr.shape != s_ptr.shape:
            raise ValueError(f"Xq has {q_ptr.shape[0] - 1} tasks but Xs has "
                             f"{s_ptr.shape[0] - 1}")
        self._Xs, self._ys, self._s_ptr = map(_readonly, (Xs, ys, s_ptr))
        if same:
            self._Xq, self._yq, self._q_ptr = self._Xs, self._ys, self._s_ptr
        else:
            self._Xq, self._yq, self._q_ptr = map(_readonly, (Xq, yq, q_ptr))
        self._same = bool(same)
        self._weights = _readonly(_normalise_weights(weights, s_ptr.shape[0] - 1))
        self._labels_pm1 = _all_pm1(self._ys) and (same or _all_pm1(self._yq))
        ks, kq = np.diff(s_ptr), np.diff(q_ptr)
        self._sizes = (int(ks.sum()), int(kq.sum()), int(ks.max()))

    # -- accessors -------------------------------------------------------------------------
    @property
    def n_tasks(self):
        """The number of tasks n."""
        return self._s_ptr.shape[0] - 1

    @property
    def d(self):
        """The feature dimension d."""
        return self._Xs.shape[1]

    @property
    def dtype(self):
        """The data's dtype (float32 or float64)."""
        return self._Xs.dtype

    @property
    def support_sizes(self):
        """Support points per task, int64 (n,)."""
        return np.diff(self._s_ptr)

    @property
    def query_sizes(self):
        """Query points per task, int64 (n,)."""
        return np.diff(self._q_ptr)

    @property
    def total_support(self):
        """Σ ks_i: support rows of all tasks."""
        return self._sizes[0]

    @property
    def total_query(self):
        """Σ kq_i: query rows of all tasks (the support rows again in same-data mode)."""
        return self._sizes[1]

    @property
    def max_support(self):
        """The largest support set's size."""
        return self._sizes[2]

    @property
    def same_data(self):
        """True when the query set is the support set (no copy)."""
        return self._same

    @property
    def weights(self):
        """The task weights p_i, normalised to sum 1, float64 (n,), read-only."""
        return self._weights

    @property
    def labels_are_pm1(self):
        """True when every label (support and query) is -1 or +1 (the logistic loss needs it)."""
        return self._labels_pm1

    def content_hash(self):
        """SHA-256 (hex) of everything that defines the tasks: dtype, layout, rows, labels,
        weights. Equal for equal tasks however they were built; used to check that a resumed
        run trains the same problem."""
        if getattr(self, "_hash", None) is None:
            h = hashlib.sha256()
            h.update(f"{self.dtype.str} d={self.d} same={self._same}".encode())
            arrays = (self._s_ptr, self._Xs, self._ys, self._weights) + (
                () if self._same else (self._q_ptr, self._Xq, self._yq))
            for a in arrays:
                h.update(np.ascontiguousarray(a).data)
            self._hash = h.hexdigest()
        return self._hash

    def packed(self):
        """(Xs, ys, s_ptr, Xq, yq, q_ptr): read-only views of the packed arrays (in same-data
        mode the query arrays are the support arrays themselves)."""
        return self._Xs, self._ys, self._s_ptr, self._Xq, self._yq, self._q_ptr

    def task(self, i):
        """(Xs_i, ys_i, Xq_i, yq_i) of task i: read-only views, no copy."""
        _validate.integer("i", i)
        n = self.n_tasks
        if not -n <= i < n:
            raise IndexError(f"i = {i} is out of range for {n} tasks")
        i = int(i) % n
        a, b = self._s_ptr[i], self._s_ptr[i + 1]
        c, e = self._q_ptr[i], self._q_ptr[i + 1]
        return self._Xs[a:b], self._ys[a:b], self._Xq[c:e], self._yq[c:e]

    def __len__(self):
        return self.n_tasks

    def __repr__(self):
        ks, kq = self.support_sizes, self.query_sizes
        return (f"Tasks(n_tasks={self.n_tasks}, d={self.d}, dtype={self.dtype}, "
                f"support={ks.min()}..{ks.max()}, query={kq.min()}..{kq.max()}, "
                f"same_data={self.same_data})")

    # -- persistence -----------------------------------------------------------------------
    def save(self, path):
        """Write an .npz to exactly `path`, atomically, with keys Xs, ys, s_ptr, Xq, yq, q_ptr,
        weights, same_data. In same-data mode Xq and yq are stored empty and q_ptr equals
        s_ptr (no duplicate data)."""
        if self._same:
            Xq = np.empty((0, self.d), self.dtype)
            yq = np.empty(0, self.dtype)
        else:
            Xq, yq = self._Xq, self._yq
        with atomic_open(path) as f:
            np.savez(f, Xs=self._Xs, ys=self._ys, s_ptr=self._s_ptr, Xq=Xq, yq=yq,
                     q_ptr=self._q_ptr, weights=self._weights, same_data=np.array(self._same))

    @classmethod
    def load(cls, path):
        """Tasks written by save(). Every key's dtype, shape and range is checked; a file that
        is not one (corrupt, truncated, wrong keys) is a ValueError naming it."""
        path = os.fspath(path)
        a = read_npz(path, "gomaml tasks", _SAVED_KEYS)
        same = a["same_data"]
        if same.dtype != np.bool_ or same.shape != ():
            raise ValueError(f"{path}: same_data must be a boolean scalar, got dtype "
                             f"{same.dtype}, shape {same.shape}")
        for k in ("Xs", "ys", "Xq", "yq", "weights"):
            if a[k].dtype.kind != "f":
                raise ValueError(f"{path}: {k} must be a float array, got dtype {a[k].dtype}")
        try:
            if bool(same):
                if a["Xq"].size or a["yq"].size or not np.array_equal(a["q_ptr"], a["s_ptr"]):
                    raise ValueError("same_data is true but a query set is stored")
                return cls.from_packed(a["Xs"], a["ys"], a["s_ptr"], None, None, None,
                                       weights=a["weights"])
            return cls.from_packed(a["Xs"], a["ys"], a["s_ptr"], a["Xq"], a["yq"], a["q_ptr"],
                                   weights=a["weights"])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a gomaml tasks file ({exc})") from None


_SAVED_KEYS = ("Xs", "ys", "s_ptr", "Xq", "yq", "q_ptr", "weights", "same_data")
