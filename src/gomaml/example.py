"""A small worked example: the exact MAML meta-gradient on synthetic linear-regression tasks,
checked against finite differences, then a few steps of gradient descent.

    python -m gomaml.example
"""
import numpy as np

import gomaml


def main():
    rng = np.random.default_rng(0)
    n, k, d = 40, 10, 8
    mean = rng.normal(size=d)
    task_params = mean + 0.3 * rng.normal(size=(n, d))
    Xs = rng.normal(size=(n, k, d))
    Xq = rng.normal(size=(n, k, d))
    ys = np.einsum("nkd,nd->nk", Xs, task_params) + 0.1 * rng.normal(size=(n, k))
    yq = np.einsum("nkd,nd->nk", Xq, task_params) + 0.1 * rng.normal(size=(n, k))
    tasks = gomaml.Tasks(Xs, ys, Xq, yq)
    print(tasks)
    print("build:", gomaml.build_info())

    kw = dict(loss="squared", inner_lr=0.05, inner_steps=2)
    theta = np.zeros(d)
    L, g = gomaml.meta_loss_grad(theta, tasks, **kw)
    h = 1e-6
    fd = np.array([(gomaml.meta_loss(theta + h * e, tasks, **kw)
                    - gomaml.meta_loss(theta - h * e, tasks, **kw)) / (2 * h)
                   for e in np.eye(d)])
    print(f"L(0) = {L:.6f}; |grad - central difference|_max = {np.abs(g - fd).max():.2e}")

    step = 0.05
    for it in range(201):
        L, g = gomaml.meta_loss_grad(theta, tasks, **kw)
        if it % 50 == 0:
            print(f"iter {it:4d}  L = {L:.6f}  |grad| = {np.linalg.norm(g):.3e}")
        theta -= step * g
    before, after = gomaml.task_losses(theta, tasks, **kw)
    print(f"mean query risk before adaptation {before.mean():.4f}, after {after.mean():.4f}")
    print(f"distance of the meta-parameter to the task mean: {np.linalg.norm(theta - mean):.3f}")


if __name__ == "__main__":
    main()
