"""MAMLRegressor and MAMLClassifier: scikit-learn conventions, and numbers against the NumPy
reference (the adapted model is θ after the reference inner loop on the new support set)."""
import copy
import warnings

import numpy as np
import pytest

import gomaml
import reference as ref
from gomaml import synthetic
from gomaml.estimators import ConvergenceWarning
from gomaml.features import RandomFourier, RandomReLU
from gomaml.kernels import Linear

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def test_params_follow_scikit_learn_conventions():
    est = gomaml.MAMLRegressor(inner_lr=0.3, features=RandomReLU(8, seed=1))
    params = est.get_params()
    assert params["inner_lr"] == 0.3 and params["loss"] == "squared" and params["tol"] == 1e-6
    assert list(params) == ["features", "kernel", "loss", "inner_lr", "inner_steps",
                            "first_order", "max_iter", "tol", "n_threads"]
    twin = type(est)(**est.get_params())
    assert twin.get_params() == params
    assert est.set_params(inner_steps=3, max_iter=5) is est and est.inner_steps == 3
    with pytest.raises(ValueError, match="invalid parameter 'lr'"):
        est.set_params(lr=1)
    assert "loss" not in gomaml.MAMLClassifier().get_params()
    assert repr(gomaml.MAMLClassifier(inner_lr=0.5)) == "MAMLClassifier(inner_lr=0.5)"


def test_scikit_learn_clone_if_installed():
    base = pytest.importorskip("sklearn.base")
    est = gomaml.MAMLRegressor(inner_lr=0.2, features=RandomReLU(8, seed=1))
    twin = base.clone(est)
    assert twin is not est and twin.inner_lr == 0.2 and twin.features is not est.features


def test_fit_is_gomaml_fit_on_the_mapped_tasks():
    train = synthetic.linear_regression(12, 4, 6, 3, seed=0)
    fmap = RandomFourier(16, seed=2)
    est = gomaml.MAMLRegressor(features=fmap, inner_lr=0.2, max_iter=60).fit(train)
    assert fmap.input_dim is None                       # the parameter is never modified
    direct = gomaml.fit(train.to_tasks(copy.deepcopy(fmap).fit(3)), inner_lr=0.2, max_iter=60)
    np.testing.assert_array_equal(est.theta_, direct.theta)
    assert est.n_features_in_ == 3 and est.fit_result_.n_iter == direct.n_iter


@pytest.mark.parametrize("T", [1, 3])
def test_adapted_model_is_the_reference_inner_loop(T):
    train = synthetic.sinusoid(30, 5, 5, seed=0)
    est = gomaml.MAMLRegressor(features=RandomFourier(20, seed=0), inner_lr=0.5,
                               inner_steps=T, max_iter=40).fit(train)
    new = synthetic.sinusoid(1, 6, 9, seed=5)
    Xs, ys, Xq = new.Xs[0], new.ys[0], new.Xq[0]
    phi = est.feature_map_.transform
    theta_i = ref.inner_path(est.theta_, phi(Xs), ys, "squared", 0.5, T)[-1]
    adapted = est.adapt(Xs, ys)
    np.testing.assert_allclose(adapted.predict(Xq), phi(Xq) @ theta_i, rtol=1e-12, atol=1e-13)
    r = new.yq[0] - phi(Xq) @ theta_i
    r2 = 1 - r @ r / np.sum((new.yq[0] - new.yq[0].mean()) ** 2)
    assert adapted.score(Xq, new.yq[0]) == pytest.approx(r2, rel=1e-12)


def test_kernel_form_equals_the_feature_form_for_the_linear_kernel():
    train = synthetic.linear_regression(10, 4, 4, 3, seed=1)
    a = gomaml.MAMLRegressor(inner_lr=0.2, max_iter=40).fit(train)
    b = gomaml.MAMLRegressor(kernel=Linear(), inner_lr=0.2, max_iter=40).fit(train)
    c = gomaml.MAMLRegressor(kernel="linear", inner_lr=0.2, max_iter=40).fit(train)
    new = synthetic.linear_regression(1, 5, 7, 3, seed=9)
    pa = a.adapt(new.Xs[0], new.ys[0]).predict(new.Xq[0])
    for est in (b, c):
        np.testing.assert_allclose(est.adapt(new.Xs[0], new.ys[0]).predict(new.Xq[0]), pa,
                                   rtol=1e-8, atol=1e-10)


def test_meta_training_helps_few_shot_sinusoids():
    # the example's claim, checked: after meta-training, 10 points adapt far better than
    # from θ = 0 (median R² over 30 new tasks)
    train = synthetic.sinusoid(200, 10, 10, seed=0)
    new = synthetic.sinusoid(30, 10, 50, seed=1)
    kw = dict(features=RandomFourier(40, seed=0), inner_lr=1.0, inner_steps=5)
    trained = gomaml.MAMLRegressor(max_iter=500, **kw).fit(train)
    untrained = gomaml.MAMLRegressor(max_iter=0, **kw).fit(train)
    score = lambda m: np.median([m.adapt(new.Xs[i], new.ys[i]).score(new.Xq[i], new.yq[i])
                                 for i in range(30)])
    assert not untrained.theta_.any()
    assert score(trained) > score(untrained) + 0.05      # measured: 0.82 against 0.73


@pytest.mark.parametrize("classes", [(-1.0, 1.0), (0, 1), ("cat", "dog")])
def test_classifier_maps_two_classes_to_pm1(classes):
    train = synthetic.logistic_classification(20, 6, 6, 4, seed=0)
    relabel = lambda y: np.where(y > 0, classes[1], classes[0])
    est = gomaml.MAMLClassifier(inner_lr=0.5, max_iter=80).fit(
        (train.Xs, relabel(train.ys), train.Xq, relabel(train.yq)))
    pm1 = gomaml.MAMLClassifier(inner_lr=0.5, max_iter=80).fit(train)
    np.testing.assert_array_equal(est.theta_, pm1.theta_)
    assert est.classes_.tolist() == list(classes)
    new = synthetic.logistic_classification(1, 8, 20, 4, seed=3)
    adapted = est.adapt(new.Xs[0], relabel(new.ys[0]))
    z = adapted.decision_function(new.Xq[0])
    theta_i = ref.inner_path(est.theta_, new.Xs[0], new.ys[0], "logistic", 0.5, 1)[-1]
    np.testing.assert_allclose(z, new.Xq[0] @ theta_i, rtol=1e-12, atol=1e-13)
    proba = adapted.predict_proba(new.Xq[0])
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    pred = adapted.predict(new.Xq[0])
    assert pred.tolist() == [classes[1] if v >= 0 else classes[0] for v in z]
    truth = relabel(new.yq[0])
    assert adapted.score(new.Xq[0], truth) == np.mean(pred == truth)


def test_convergence_is_reported():
    train = synthetic.linear_regression(10, 4, 4, 3, seed=1)
    with pytest.warns(ConvergenceWarning, match="max_iter reached"):
        gomaml.MAMLRegressor(max_iter=2).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = gomaml.MAMLRegressor(tol=1e-6).fit(train)
    assert est.fit_result_.converged and est.fit_result_.grad_norm <= 1e-6


def test_bad_input_is_named():
    train = synthetic.linear_regression(6, 3, 3, 2, seed=0)
    with pytest.raises(ValueError, match="features and kernel"):
        gomaml.MAMLRegressor(features=RandomReLU(4), kernel="rbf").fit(train)
    with pytest.raises(ValueError, match="kernel: unknown name 'gauss'"):
        gomaml.MAMLRegressor(kernel="gauss").fit(train)
    with pytest.raises(TypeError, match="features must be"):
        gomaml.MAMLRegressor(features="relu").fit(train)
    with pytest.raises(TypeError, match="raw inputs"):
        gomaml.MAMLRegressor().fit(train.to_tasks())
    with pytest.raises(ValueError, match="exactly two classes"):
        gomaml.MAMLClassifier().fit((train.Xs, np.arange(18.0).reshape(6, 3)))
    with pytest.raises(RuntimeError, match="call fit"):
        gomaml.MAMLRegressor().adapt(np.zeros((2, 2)), np.zeros(2))
    est = gomaml.MAMLRegressor(max_iter=5).fit(train)
    with pytest.raises(ValueError, match=r"X: expected shape \(m, 2\)"):
        est.adapt(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="y: expected shape"):
        est.adapt(np.zeros((2, 2)), np.zeros(3))
    cls = gomaml.MAMLClassifier(max_iter=5).fit(synthetic.logistic_classification(4, 3, 3, 2))
    with pytest.raises(ValueError, match="not among the classes"):
        cls.adapt(np.zeros((2, 2)), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="Xq and yq"):
        gomaml.MAMLRegressor().fit(train.Xs, train.ys, train.Xq)


class GradTensor:
    """Stands in for a torch tensor with requires_grad=True (NumPy conversion refused)."""
    requires_grad = True

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad.")


def test_tensors_that_require_grad_are_named_with_the_fix():
    with pytest.raises(TypeError, match=r"Xs: a tensor that requires grad; pass Xs\.detach\(\)"):
        gomaml.Tasks(GradTensor(), np.zeros((2, 3)))
    tasks = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"theta\.detach\(\)"):
        gomaml.meta_loss_grad(GradTensor(), tasks)
    with pytest.raises(TypeError, match=r"X\.detach\(\)"):
        gomaml.predict(np.zeros(2), GradTensor())


def test_real_torch_tensors():
    torch = pytest.importorskip("torch")
    X = torch.ones((2, 3, 2), dtype=torch.float64)
    y = torch.ones((2, 3), dtype=torch.float64)
    tasks = gomaml.Tasks(X, y)                               # CPU tensors are read directly
    theta = torch.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"theta\.detach\(\)"):
        gomaml.meta_loss_grad(theta, tasks)
    assert gomaml.meta_loss(theta.detach(), tasks) == pytest.approx(0.36)   # (0.4 - 1)²
