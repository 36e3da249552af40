"""Few-shot sinusoid regression (Finn et al., 2017) with gomaml.MAMLRegressor.

Meta-train on 200 sinusoids y = A sin(x − φ), then adapt to a new one from 10 points, and
compare with adapting from θ = 0 (no meta-learning). Writes sinusoid_regression.png.

    python examples/sinusoid_regression.py [--out DIR]
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
from gomaml.features import RandomFourier  # noqa: E402


def main(out="."):
    train = gomaml.synthetic.sinusoid(200, 10, 10, seed=0)          # 10 support + 10 query
    settings = dict(features=RandomFourier(40, bandwidth=1.0, seed=0), inner_lr=1.0,
                    inner_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)          # reported below
        model = gomaml.MAMLRegressor(max_iter=500, **settings).fit(train)
        scratch = gomaml.MAMLRegressor(max_iter=0, **settings).fit(train)   # θ = 0
    res = model.fit_result_
    print(f"meta-training: {res.n_iter} steps, L = {res.loss:.4f}, ‖∇L‖ = {res.grad_norm:.2e}"
          f" ({res.message.split(':')[0]})")

    new = gomaml.synthetic.sinusoid(50, 10, 100, seed=1)              # 50 new tasks
    r2 = lambda m: np.array([m.adapt(new.Xs[i], new.ys[i]).score(new.Xq[i], new.yq[i])
                             for i in range(50)])
    maml, zero = r2(model), r2(scratch)
    print(f"R² on 50 new tasks after adapting to 10 points (median, quartiles): "
          f"MAML {np.median(maml):.3f} ({np.quantile(maml, 0.25):.3f}–"
          f"{np.quantile(maml, 0.75):.3f}), from θ = 0 {np.median(zero):.3f} "
          f"({np.quantile(zero, 0.25):.3f}–{np.quantile(zero, 0.75):.3f})")

    i = 0
    x = np.linspace(-5, 5, 400)[:, None]
    truth = new.params["amplitude"][i] * np.sin(x[:, 0] - new.params["phase"][i])
    adapted = model.adapt(new.Xs[i], new.ys[i])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.plot(x, truth, "k-", lw=2, label="the new task: A sin(x − φ)")
    ax.plot(x, model.feature_map_.transform(x) @ model.theta_, "C0--",
            label="before adaptation (meta-trained θ)")
    ax.plot(x, adapted.predict(x), "C3-", label=f"after {model.inner_steps} inner steps "
                                               f"on the 10 points (R² {maml[i]:.2f})")
    ax.plot(x, scratch.adapt(new.Xs[i], new.ys[i]).predict(x), "C2:",
            label=f"the same steps from θ = 0 (R² {zero[i]:.2f})")
    ax.plot(new.Xs[i, :, 0], new.ys[i], "ko", mfc="w", label="support points")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Few-shot sinusoid regression: MAML with random Fourier features (d = 40)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    path = os.path.join(out, "sinusoid_regression.png")
    os.makedirs(out, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")
    return maml, zero


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for the PNG (default: here)")
    main(ap.parse_args().out)
