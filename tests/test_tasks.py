import os

import numpy as np
import pytest

import gomaml
from conftest import make_raw


def test_dense_is_packed_without_copy(rng):
    X = rng.normal(size=(4, 3, 5))
    y = rng.normal(size=(4, 3))
    t = gomaml.Tasks(X, y)
    Xs, ys, s_ptr, Xq, yq, q_ptr = t.packed()
    assert np.shares_memory(Xs, X) and np.shares_memory(ys, y)
    assert Xq is Xs and yq is ys and t.same_data            # same-data: no copy
    assert Xs.shape == (12, 5) and s_ptr.tolist() == [0, 3, 6, 9, 12]
    assert not Xs.flags.writeable and X.flags.writeable    # the caller's array is untouched
    assert t.n_tasks == 4 and t.d == 5 and t.dtype == np.float64
    np.testing.assert_array_equal(t.task(2)[0], X[2])
    np.testing.assert_allclose(t.weights, 0.25)


def test_ragged_lists_and_sizes(rng):
    Xs, ys, Xq, yq = make_raw(rng, n=5, d=3, layout="ragged")
    t = gomaml.Tasks(Xs, ys, Xq, yq)
    assert t.support_sizes.tolist() == [len(a) for a in ys]
    assert t.query_sizes.tolist() == [len(a) for a in yq]
    assert not t.same_data
    for i in range(5):
        a, b, c, e = t.task(i)
        np.testing.assert_array_equal(a, Xs[i])
        np.testing.assert_array_equal(e, yq[i])
    assert t.task(-1)[1].tolist() == ys[-1].tolist()


def test_dtype_rules(rng):
    X32 = rng.normal(size=(2, 3, 4)).astype(np.float32)
    y32 = rng.normal(size=(2, 3)).astype(np.float32)
    assert gomaml.Tasks(X32, y32).dtype == np.float32
    assert gomaml.Tasks(X32, y32.astype(np.float64)).dtype == np.float64   # result type
    assert gomaml.Tasks(X32, y32, dtype=np.float64).dtype == np.float64
    Xi = rng.integers(-3, 3, size=(2, 3, 4))
    t = gomaml.Tasks(Xi, np.ones((2, 3), dtype=np.int32))
    assert t.dtype == np.float64
    np.testing.assert_array_equal(t.packed()[0], Xi.reshape(6, 4))
    with pytest.raises(ValueError, match="dtype"):
        gomaml.Tasks(X32, y32, dtype=np.int64)


def test_non_contiguous_is_converted(rng):
    X = rng.normal(size=(4, 6, 3))[:, ::2, :]
    y = rng.normal(size=(4, 6))[:, ::2]
    t = gomaml.Tasks(X, y)
    assert t.packed()[0].flags.c_contiguous
    np.testing.assert_array_equal(t.task(1)[0], X[1])


def test_from_packed_and_weights(rng):
    Xs = rng.normal(size=(7, 3))
    ys = rng.normal(size=7)
    Xq = rng.normal(size=(5, 3))
    yq = rng.normal(size=5)
    t = gomaml.Tasks.from_packed(Xs, ys, [0, 2, 7], Xq, yq, [0, 4, 5], weights=[1.0, 3.0])
    np.testing.assert_allclose(t.weights, [0.25, 0.75])
    assert t.support_sizes.tolist() == [2, 5] and t.query_sizes.tolist() == [4, 1]
    same = gomaml.Tasks.from_packed(Xs, ys, [0, 2, 7], None, None, None)
    assert same.same_data
    huge = gomaml.Tasks.from_packed(Xs, ys, [0, 2, 7], None, None, None,
                                    weights=[1e308, 1e308])
    np.testing.assert_allclose(huge.weights, [0.5, 0.5])


@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_roundtrip(tmp_path, rng, same, dtype):
    Xs, ys, Xq, yq = make_raw(rng, n=4, d=3, layout="same" if same else "ragged")
    t = gomaml.Tasks(Xs, ys, Xq, yq, weights=[1, 2, 3, 4], dtype=dtype)
    t.save(tmp_path / "t.npz")
    u = gomaml.Tasks.load(tmp_path / "t.npz")
    assert u.same_data == same and u.dtype == dtype
    for a, b in zip(t.packed(), u.packed()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(u.weights, t.weights, rtol=1e-15)
    with np.load(tmp_path / "t.npz") as f:
        assert set(f.files) == {"Xs", "ys", "s_ptr", "Xq", "yq", "q_ptr", "weights",
                                "same_data"}


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not a gomaml tasks file"):
        gomaml.Tasks.load(tmp_path / "x.npz")


def test_pm1_flag(rng):
    X = rng.normal(size=(2, 3, 4))
    assert gomaml.Tasks(X, np.ones((2, 3))).labels_are_pm1
    assert not gomaml.Tasks(X, np.zeros((2, 3))).labels_are_pm1


# ---- bad input: each message names the argument -----------------------------------------
def _X(*shape):
    return np.ones(shape)


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((_X(2, 3, 4), _X(2, 3), _X(2, 3, 5), _X(2, 3)), {}, ValueError, "Xq: query d = 5"),
    ((_X(2, 3, 4), _X(2, 4)), {}, ValueError, "ys has shape"),
    (([_X(3, 4), _X(2, 4)], [_X(3), _X(3)]), {}, ValueError, r"Xs\[1\] has 2 rows"),
    (([], []), {}, ValueError, "Xs: no tasks"),
    ((_X(0, 3, 4), _X(0, 3)), {}, ValueError, "no tasks"),
    ((_X(2, 0, 4), _X(2, 0)), {}, ValueError, "empty tasks"),
    (([_X(3, 4), _X(0, 4)], [_X(3), _X(0)]), {}, ValueError, r"Xs\[1\]: task 1 has no rows"),
    ((_X(2, 3, 4), _X(2, 3), [_X(3, 4), _X(0, 4)], [_X(3), _X(0)]), {}, ValueError,
     r"Xq\[1\]: task 1 has no rows"),
    ((_X(2, 3, 0), _X(2, 3)), {}, ValueError, "d = 0"),
    ((_X(2, 3, 4), _X(2, 3), _X(3, 3, 4), _X(3, 3)), {}, ValueError, "tasks"),
    ((np.array([[[1.0, np.nan]]]), _X(1, 1)), {}, ValueError, "Xs: contains NaN or inf"),
    ((_X(1, 1, 2), np.array([[np.inf]])), {}, ValueError, "ys: contains NaN or inf"),
    ((_X(1, 1, 2), _X(1, 1), np.array([[[0, np.inf]]]), _X(1, 1)), {}, ValueError,
     "Xq: contains NaN or inf"),
    ((np.array([[["a", "b"]]]), _X(1, 1)), {}, TypeError, "Xs: expected a real numeric"),
    ((_X(2, 3, 4), _X(2, 3)), {"weights": [1.0]}, ValueError, r"weights: expected shape \(2,\)"),
    ((_X(2, 3, 4), _X(2, 3)), {"weights": [1.0, 0.0]}, ValueError, "weights: must be > 0"),
    ((_X(2, 3, 4), _X(2, 3)), {"weights": [1.0, -1.0]}, ValueError, "weights: must be > 0"),
    ((_X(2, 3, 4), _X(2, 3)), {"weights": [1.0, np.nan]}, ValueError, "weights: must be finite"),
    ((_X(2, 3, 4), _X(2, 3)), {"weights": ["a", "b"]}, TypeError, "weights"),
    ((_X(2, 3, 4), _X(2, 3), _X(2, 3, 4), None), {}, ValueError, "Xq and yq"),
    ((_X(3, 4), _X(3)), {}, ValueError, r"Xs: expected a dense \(n, k, d\)"),
    (([_X(3, 4)], _X(1, 3)), {}, TypeError, "ys: must be a list"),
])
def test_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gomaml.Tasks(*args, **kwargs)


@pytest.mark.parametrize("s_ptr, match", [
    ([0, 2], "s_ptr: must start at 0 and end at 3"),
    ([1, 3], "s_ptr: must start at 0"),
    ([0, 3, 3], "s_ptr: task 1 has 0 rows"),
    ([0.0, 3.0], "s_ptr: expected 1-D integer offsets"),
    ([3], "s_ptr: expected 1-D integer offsets"),
])
def test_bad_offsets(s_ptr, match):
    with pytest.raises(ValueError, match=match):
        gomaml.Tasks.from_packed(_X(3, 2), _X(3), s_ptr, None, None, None)


def test_packed_query_task_count_mismatch():
    with pytest.raises(ValueError, match="q_ptr describes 1 tasks"):
        gomaml.Tasks.from_packed(_X(3, 2), _X(3), [0, 1, 3], _X(2, 2), _X(2), [0, 2])


def test_float32_overflow_is_named_not_called_nan():
    X = np.full((2, 3, 2), 1e39)
    with pytest.raises(ValueError, match=r"Xs: contains NaN or inf or a value beyond the "
                                         r"float32 range .*use dtype=float64"):
        gomaml.Tasks(X, np.ones((2, 3)), dtype=np.float32)


def test_load_checks_every_key_and_names_the_file(tmp_path):
    rng = np.random.default_rng(0)
    t = gomaml.Tasks(rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4)),
                     rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2)))
    good = tmp_path / "t.npz"
    t.save(good)
    keys = dict(np.load(good))
    assert gomaml.Tasks.load(good).content_hash() == t.content_hash()

    def variant(name, **changes):
        np.savez(tmp_path / name, **{**keys, **changes})
        return tmp_path / name

    cases = {
        variant("same_no.npz", same_data=np.array("no")): "same_data must be a boolean",
        variant("same_true.npz", same_data=np.array(True)): "a query set is stored",
        variant("int_rows.npz", Xs=keys["Xs"].astype(np.int64)): "Xs must be a float array",
        variant("bad_ptr.npz", s_ptr=np.array([0, 5, 4, 12])): "s_ptr",
        variant("neg_w.npz", weights=-keys["weights"]): "weights",
        variant("short_w.npz", weights=keys["weights"][:2]): "weights",
        variant("objects.npz", Xs=np.array([{"a": 1}], dtype=object)): "Python objects",
    }
    np.savez(tmp_path / "missing.npz", Xs=keys["Xs"])
    cases[tmp_path / "missing.npz"] = "missing keys"
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[:len(data) // 2])
    cases[tmp_path / "trunc.npz"] = "not a gomaml tasks file"
    for path, text in cases.items():
        with pytest.raises(ValueError) as exc:
            gomaml.Tasks.load(path)
        assert str(path) in str(exc.value) and text in str(exc.value), (path, exc.value)
        assert "allow_pickle" not in str(exc.value)
    with pytest.raises(FileNotFoundError):
        gomaml.Tasks.load(tmp_path / "none.npz")


def test_save_is_atomic_and_exact_path(tmp_path):
    t = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    t.save(tmp_path / "tasks")                    # no ".npz" appended
    assert os.listdir(tmp_path) == ["tasks"]
    assert gomaml.Tasks.load(tmp_path / "tasks").n_tasks == 2
