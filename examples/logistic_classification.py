"""Few-shot binary classification with gomaml.MAMLClassifier (the logistic loss).

Each task is a noisy linear rule in 2 dimensions, y = sign(xᵀw_i + noise), with w_i spread
around a shared mean. Meta-train on 100 tasks, adapt to new tasks from 4 labelled points
each, and compare with adapting from θ = 0 and with each task's own (unknown) rule.
Writes logistic_classification.png.

    python examples/logistic_classification.py [--out DIR]
"""
import argparse
import os
import warnings

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import gomaml  # noqa: E402
from gomaml.estimators import ConvergenceWarning  # noqa: E402


def main(out="."):
    family = dict(spread=1.0, noise=0.2, mean=[1.5, 1.0])     # w_i = mean + N(0, I)
    train = gomaml.synthetic.logistic_classification(100, 4, 20, 2, seed=0, **family)
    settings = dict(inner_lr=5.0, inner_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = gomaml.MAMLClassifier(max_iter=2000, **settings).fit(train)
        scratch = gomaml.MAMLClassifier(max_iter=0, **settings).fit(train)
    res = model.fit_result_
    print(f"meta-training: {res.n_iter} steps, L = {res.loss:.4f}, ‖∇L‖ = {res.grad_norm:.2e}"
          f" ({res.message.split(':')[0]})")

    new = gomaml.synthetic.logistic_classification(100, 4, 200, 2, seed=1, **family)
    acc = lambda m: np.array([m.adapt(new.Xs[i], new.ys[i]).score(new.Xq[i], new.yq[i])
                              for i in range(100)])
    maml, zero = acc(model), acc(scratch)
    oracle = np.mean(np.sign(np.einsum("nkp,np->nk", new.Xq, new.params["w"])) == new.yq)
    print(f"accuracy on 100 new tasks after adapting to 4 points (mean): MAML {maml.mean():.3f},"
          f" from θ = 0 {zero.mean():.3f}; each task's own rule w_i (not learnable from 4 "
          f"points, the label noise aside) {oracle:.3f}")

    i = int(np.argsort(maml - zero)[len(maml) // 2])     # a typical task
    g = np.linspace(-3, 3, 200)
    G = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    adapted = model.adapt(new.Xs[i], new.ys[i])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, (title, m) in zip(axes, [("adapted from the meta-trained θ", adapted),
                                     ("adapted from θ = 0",
                                      scratch.adapt(new.Xs[i], new.ys[i]))]):
        P = m.predict_proba(G)[:, 1].reshape(200, 200)
        ax.contourf(g, g, P, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
        ax.contour(g, g, P, levels=[0.5], colors="k")
        q = new.Xq[i]
        ax.scatter(q[:, 0], q[:, 1], c=new.yq[i], cmap="RdBu_r", s=8, alpha=0.5,
                   label="query points (true labels)")
        s = new.Xs[i]
        ax.scatter(s[:, 0], s[:, 1], c=new.ys[i], cmap="RdBu_r", s=70, edgecolors="k",
                   label="the 4 support points")
        ax.set_title(f"{title}: accuracy {m.score(q, new.yq[i]):.2f}", fontsize=10)
        ax.set_xlabel("x₁")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
    axes[0].set_ylabel("x₂")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Few-shot logistic classification: P(y = +1 | x) after one inner step")
    fig.tight_layout()
    path = os.path.join(out, "logistic_classification.png")
    os.makedirs(out, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")
    return maml, zero


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for the PNG (default: here)")
    main(ap.parse_args().out)
