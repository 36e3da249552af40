"""Plain NumPy truth for theory.md §2–§3: a loop over tasks, dense matrices, written to be read.

Tasks are given as a list of (Xs, ys, Xq, yq) in float64 and weights p (summing to 1).
"""
import numpy as np
from scipy.special import expit


def loss_parts(name, z, y, delta=1.0):
    """(l, l', l'') of theory.md §2's table, elementwise."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if name == "squared":
        return (z - y) ** 2, 2 * (z - y), np.full_like(z, 2.0)
    if name == "logistic":
        return (np.logaddexp(0.0, -y * z), -y * expit(-y * z),
                expit(y * z) * expit(-y * z))
    if name == "pseudo_huber":
        r = z - y
        s = np.sqrt(1 + (r / delta) ** 2)
        # δ²(s − 1) = r²/(1 + s): the same value without the cancellation of s − 1 at small r
        # (found by tests/test_fuzz.py: δ²(s − 1) is off by ~1e-9 relative at r ~ 5e-4)
        return r ** 2 / (1 + s), r / s, s ** -3
    raise ValueError(name)


def risk(theta, X, y, loss, delta=1.0):
    return loss_parts(loss, X @ theta, y, delta)[0].mean()


def risk_grad(theta, X, y, loss, delta=1.0):
    return X.T @ loss_parts(loss, X @ theta, y, delta)[1] / len(y)


def risk_hessian(theta, X, y, loss, delta=1.0):
    l2 = loss_parts(loss, X @ theta, y, delta)[2]
    return X.T @ (l2[:, None] * X) / len(y)


def inner_path(theta, Xs, ys, loss, eta, T, delta=1.0):
    """[θ⁽⁰⁾, …, θ⁽ᵀ⁾] of the inner loop."""
    path = [np.array(theta, dtype=np.float64)]
    for _ in range(T):
        path.append(path[-1] - eta * risk_grad(path[-1], Xs, ys, loss, delta))
    return path


def task_terms(theta, task, loss, eta, T, first_order=False, delta=1.0):
    """(R(θ_i; Q_i), J_iᵀ ∇R(θ_i; Q_i), J_iᵀ as a dense d×d matrix) for one task."""
    Xs, ys, Xq, yq = task
    path = inner_path(theta, Xs, ys, loss, eta, T, delta)
    d = len(theta)
    JT = np.eye(d)
    if not first_order:
        for t in range(T):                     # (I − ηH⁽⁰⁾)(I − ηH⁽¹⁾)…(I − ηH⁽ᵀ⁻¹⁾)
            JT = JT @ (np.eye(d) - eta * risk_hessian(path[t], Xs, ys, loss, delta))
    g = risk_grad(path[-1], Xq, yq, loss, delta)
    return risk(path[-1], Xq, yq, loss, delta), JT @ g, JT


def meta_loss_grad(theta, tasks, weights, loss, eta, T, first_order=False, delta=1.0):
    """(L, ∇L, S_value, S_grad): S_* are the sums of absolute per-task contributions, the scale
    that tolerances are relative to."""
    L, grad, S_val, S_grad = 0.0, np.zeros(len(theta)), 0.0, 0.0
    for p, task in zip(weights, tasks):
        r, g, _ = task_terms(theta, task, loss, eta, T, first_order, delta)
        L += p * r
        grad += p * g
        S_val += p * abs(r)
        S_grad += p * np.linalg.norm(g)
    return L, grad, S_val, S_grad


def adapt(theta, tasks, loss, eta, T, delta=1.0):
    return np.array([inner_path(theta, t[0], t[1], loss, eta, T, delta)[-1] for t in tasks])


def task_losses(theta, tasks, loss, eta, T, delta=1.0):
    before = np.array([risk(theta, t[2], t[3], loss, delta) for t in tasks])
    after = np.array([risk(th, t[2], t[3], loss, delta)
                      for th, t in zip(adapt(theta, tasks, loss, eta, T, delta), tasks)])
    return before, after


def meta_loss(theta, tasks, weights, loss, eta, T, delta=1.0):
    return sum(p * task_terms(theta, t, loss, eta, T, True, delta)[0]
               for p, t in zip(weights, tasks))


# ---- theory.md §5: the squared-loss objective as a quadratic, built densely ---------------------
def affine_maps(task, eta, T):
    """(A_i, b_i) with θ_i = A_i θ + b_i for the squared loss (dense d×d, small d only)."""
    Xs, ys, _, _ = task
    d = Xs.shape[1]
    A = np.linalg.matrix_power(np.eye(d) - 2 * eta * Xs.T @ Xs / len(ys), T)
    b = inner_path(np.zeros(d), Xs, ys, "squared", eta, T)[-1]
    return A, b


def stacked_rows(tasks, weights, eta, T):
    """(M, t): rows √(p_i/kq_i) Xq_i A_i and targets √(p_i/kq_i)(yq_i − Xq_i b_i)."""
    rows, targets = [], []
    for p, task in zip(weights, tasks):
        A, b = affine_maps(task, eta, T)
        Xq, yq = task[2], task[3]
        s = np.sqrt(p / len(yq))
        rows.append(s * Xq @ A)
        targets.append(s * (yq - Xq @ b))
    return np.vstack(rows), np.concatenate(targets)
