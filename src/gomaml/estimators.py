"""Estimators in scikit-learn's conventions: fit on raw-input tasks, adapt to a new task,
predict.

    model = gomaml.MAMLRegressor(features=RandomFourier(200, seed=0), inner_lr=0.05)
    model.fit(gomaml.synthetic.sinusoid(200, 10, 10, seed=0))
    adapted = model.adapt(X_support, y_support)          # one new task, a few labelled points
    adapted.predict(X_new); adapted.score(X_test, y_test)

Parameters are stored by __init__ as given and checked by fit (get_params, set_params and
sklearn.base.clone work as for any scikit-learn estimator; scikit-learn is not needed).
"""
import copy
import inspect
import math
import warnings

import numpy as np

from gomaml import _validate
from gomaml.features import FeatureMap, Identity
from gomaml.kernel_tasks import KernelTasks
from gomaml.kernels import KERNELS, Kernel
from gomaml.losses import resolve_loss
from gomaml.objective import adapt as _adapt
from gomaml.synthetic import SyntheticTasks
from gomaml.tasks import Tasks
from gomaml.train import fit as _fit


class ConvergenceWarning(UserWarning):
    """fit stopped (max_iter) before ‖∇L‖ <= tol; the model is usable but not ε-stationary."""


def _per_task(name, X, inputs):
    """A list of per-task 2-D arrays from (n, k, p) / (n, k) arrays or a list of (k_i, p) /
    (k_i,) arrays. `inputs`: 2-D rows of inputs (else 1-D labels)."""
    if isinstance(X, np.ndarray) or hasattr(X, "__array__"):
        A = _validate.array(name, X)
        parts = list(A) if A.ndim >= 2 else None
        if parts is None:
            raise ValueError(f"{name}: expected one array per task (n, k, p), (n, k) or a "
                             f"list, got shape {A.shape}")
    elif isinstance(X, (list, tuple)):
        parts = [_validate.array(f"{name}[{i}]", x) for i, x in enumerate(X)]
    else:
        raise TypeError(f"{name}: expected an array or a list of per-task arrays, got "
                        f"{type(X).__name__}")
    if not parts:
        raise ValueError(f"{name}: no tasks")
    out = []
    for i, x in enumerate(parts):
        if inputs and x.ndim == 1:
            x = x[:, None]
        if x.ndim != (2 if inputs else 1):
            raise ValueError(f"{name}[{i}]: expected "
                             f"{'(k, p) inputs' if inputs else '(k,) labels'}, got shape "
                             f"{x.shape}")
        out.append(x)
    return out


def _raw_tasks(tasks, ys, Xq, yq):
    """(Xs, ys, Xq, yq) lists of per-task raw arrays (Xq = yq = None: query = support)."""
    if isinstance(tasks, SyntheticTasks):
        if ys is not None or Xq is not None or yq is not None:
            raise TypeError("ys, Xq, yq: give them only with raw arrays, not a SyntheticTasks")
        tasks, ys, Xq, yq = tasks.Xs, tasks.ys, tasks.Xq, tasks.yq
    elif isinstance(tasks, Tasks):
        raise TypeError("tasks: the estimators take raw inputs (they apply the feature map "
                        "or kernel); for a gomaml.Tasks of features use gomaml.fit")
    elif isinstance(tasks, tuple) and ys is None:
        if len(tasks) not in (2, 4):
            raise ValueError(f"tasks: a tuple must be (Xs, ys) or (Xs, ys, Xq, yq), got "
                             f"{len(tasks)} items")
        tasks, ys, Xq, yq = (tuple(tasks) + (None, None))[:4]
    if ys is None:
        raise TypeError("ys: the support labels are needed (fit(Xs, ys, Xq, yq), a tuple, or "
                        "a SyntheticTasks)")
    if (Xq is None) != (yq is None):
        raise ValueError("Xq and yq: give both or neither (neither: query = support)")
    Xs, ys = _per_task("Xs", tasks, True), _per_task("ys", ys, False)
    if Xq is not None:
        Xq, yq = _per_task("Xq", Xq, True), _per_task("yq", yq, False)
    return Xs, ys, Xq, yq


class _MAMLEstimator:
    """Shared machinery of MAMLRegressor and MAMLClassifier."""

    _is_classifier = False

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self"]

    def get_params(self, deep=True):
        """The constructor's parameters, as a dict (scikit-learn convention).

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn; the parameters hold no nested estimators.

        Returns
        -------
        dict
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters by name; returns self (scikit-learn convention).

        Raises
        ------
        ValueError
            A name that is not a parameter.
        """
        names = self._param_names()
        for key, value in params.items():
            if key not in names:
                raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; "
                                 f"valid parameters: {', '.join(names)}")
            setattr(self, key, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (v is defaults.get(k) or (isinstance(v, (int, float, str))
                                                    and v == defaults.get(k)))]
        return f"{type(self).__name__}({', '.join(changed)})"

    # --- fit ------------------------------------------------------------------------------

    def _loss(self):
        return "logistic" if self._is_classifier else self.loss

    def _labels_in(self, name, y):
        """Labels as the loss needs them: ±1 for the classifier (from its two classes)."""
        y = np.asarray(y)
        if not self._is_classifier:
            return y.astype(np.float64)
        known = np.isin(y, self.classes_)
        if not known.all():
            raise ValueError(f"{name}: labels {np.unique(y[~known])[:5].tolist()} are not "
                             f"among the classes seen in fit, {self.classes_.tolist()}")
        return np.where(y == self.classes_[1], 1.0, -1.0)

    def fit(self, tasks, ys=None, Xq=None, yq=None):
        """Meta-train θ on raw-input tasks, by `gomaml.fit` to ‖∇L‖ <= tol or max_iter steps.

        Parameters
        ----------
        tasks : SyntheticTasks, tuple, or array_like
            A `gomaml.synthetic` family's tasks; a tuple (Xs, ys) or (Xs, ys, Xq, yq); or the
            support inputs Xs themselves, with ys (and Xq, yq) as the next arguments. Inputs
            per task: (k, p) or (k,) arrays (dense (n, k, p) arrays or lists of ragged ones);
            Xq = yq = None: the query set is the support set.
        ys, Xq, yq : array_like, optional
            Support labels, query inputs and labels, when `tasks` is Xs.

        Returns
        -------
        self

        Raises
        ------
        TypeError, ValueError
            Bad parameters or data, named (features and kernel both given, labels outside the
            classifier's two classes, ...).
        gomaml.DivergenceError
            Training diverged: the message names the step size to reduce.

        Warns
        -----
        ConvergenceWarning
            max_iter was reached before ‖∇L‖ <= tol (`fit_result_.message` says so).
        """
        if self.features is not None and self.kernel is not None:
            raise ValueError("features and kernel: give one of them, not both")
        resolve_loss(self._loss())
        Xs, ys, Xq, yq = _raw_tasks(tasks, ys, Xq, yq)
        p = Xs[0].shape[1]
        for name, parts in (("Xs", Xs), ("Xq", Xq or [])):
            for i, x in enumerate(parts):
                if x.shape[1] != p:
                    raise ValueError(f"{name}[{i}]: has {x.shape[1]} input columns, "
                                     f"Xs[0] has {p}")
        if self._is_classifier:
            seen = np.unique(np.concatenate([np.ravel(y) for y in ys + (yq or [])]))
            if seen.shape[0] != 2:
                raise ValueError(f"ys, yq: the classifier needs exactly two classes, got "
                                 f"{seen.shape[0]} ({seen[:5].tolist()})")
            self.classes_ = seen
        ys = [self._labels_in("ys", y) for y in ys]
        yq = None if yq is None else [self._labels_in("yq", y) for y in yq]
        self.n_features_in_ = p
        if self.kernel is not None:
            kernel = self.kernel
            if isinstance(kernel, str):
                kernel = KERNELS[_validate.choice("kernel", kernel, KERNELS)]()
            elif not isinstance(kernel, Kernel):
                raise TypeError(f"kernel must be a gomaml.kernels kernel or one of "
                                f"{', '.join(map(repr, KERNELS))}, got "
                                f"{type(kernel).__name__}")
            self.kernel_tasks_ = KernelTasks(Xs, ys, Xq, yq, kernel=kernel)
            self.feature_map_ = None
            meta_tasks = self.kernel_tasks_.tasks
        else:
            fmap = Identity() if self.features is None else self.features
            if not isinstance(fmap, FeatureMap):
                raise TypeError(f"features must be a gomaml.features map or None, got "
                                f"{type(fmap).__name__}")
            fmap = copy.deepcopy(fmap)          # parameters are never modified
            if fmap.input_dim is None:
                fmap.fit(p)
            elif fmap.input_dim != p:
                raise ValueError(f"features: fitted for {fmap.input_dim} input columns, the "
                                 f"tasks have {p}")
            self.feature_map_, self.kernel_tasks_ = fmap, None
            phi = lambda parts: None if parts is None else [fmap.transform(x) for x in parts]
            meta_tasks = Tasks(phi(Xs), ys, phi(Xq), yq)
        result = _fit(meta_tasks, loss=self._loss(), inner_lr=self.inner_lr,
                      inner_steps=self.inner_steps, first_order=self.first_order,
                      max_iter=self.max_iter, tol=self.tol, n_threads=self.n_threads)
        self.fit_result_ = result
        self.theta_ = result.theta
        if not result.converged:
            warnings.warn(f"{type(self).__name__}.fit: {result.message}; raise max_iter or "
                          f"tol", ConvergenceWarning, stacklevel=2)
        return self

    # --- adapt and predict ----------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, "theta_"):
            raise RuntimeError(f"{type(self).__name__}: call fit(tasks) first")

    def _inputs(self, name, X):
        X = _validate.array(name, X, np.float64)
        if X.ndim == 1 and self.n_features_in_ == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"{name}: expected shape (m, {self.n_features_in_}), got "
                             f"{X.shape}")
        if not np.isfinite(X).all():
            raise ValueError(f"{name}: contains NaN or inf")
        return X

    def _decision(self, theta, X, support=None):
        """φ(X)ᵀθ (feature form), or through the kernel after adapting θ to `support`."""
        if self.kernel_tasks_ is not None:
            return self.kernel_tasks_.predict(self.theta_, X, support=support,
                                              loss=self._loss(), inner_lr=self.inner_lr,
                                              inner_steps=self.inner_steps)
        return self.feature_map_.transform(X) @ theta

    def adapt(self, X, y):
        """Adapt the meta-trained θ to one new task: `inner_steps` steps of size `inner_lr` on
        its support set (X, y), exactly as in training.

        Parameters
        ----------
        X : array_like, shape (k, p) (or (k,) when p = 1)
            The new task's support inputs.
        y : array_like, shape (k,)
            Its labels (the classifier: its classes).

        Returns
        -------
        AdaptedModel
            With predict(X), score(X, y) (and predict_proba for the classifier).

        Raises
        ------
        RuntimeError
            Not fitted yet.
        TypeError, ValueError
            Bad inputs or labels, named.
        """
        self._check_fitted()
        X = self._inputs("X", X)
        y = _validate.array("y", y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected shape ({X.shape[0]},) (one label per row of X), "
                             f"got {y.shape}")
        y = self._labels_in("y", y)
        if not np.isfinite(y).all():
            raise ValueError("y: contains NaN or inf")
        if self.kernel_tasks_ is not None:
            return AdaptedModel(self, None, (X, y))
        task = Tasks([self.feature_map_.transform(X)], [y])
        theta_i = _adapt(self.theta_, task, loss=self._loss(), inner_lr=self.inner_lr,
                         inner_steps=self.inner_steps, n_threads=self.n_threads)[0]
        return AdaptedModel(self, theta_i, None)


class AdaptedModel:
    """One task's model after adaptation (what `adapt` returns): θ_i in the feature form, or
    the support set through which the kernel form adapts."""

    def __init__(self, estimator, theta, support):
        self.estimator, self.theta, self._support = estimator, theta, support

    def decision_function(self, X):
        """The adapted model's raw output h(x) = φ(x)ᵀθ_i, float64 (m,)."""
        est = self.estimator
        return est._decision(self.theta, est._inputs("X", X), self._support)

    def predict(self, X):
        """Predictions on X (m, p): values (regressor) or classes (classifier).

        Examples
        --------
        >>> import numpy as np, gomaml
        >>> model = gomaml.MAMLRegressor(max_iter=50, tol=1e-3).fit(
        ...     gomaml.synthetic.linear_regression(20, 5, 5, 3, seed=0))
        >>> adapted = model.adapt(np.eye(3), np.ones(3))
        >>> adapted.predict(np.eye(3)).shape
        (3,)
        """
        z = self.decision_function(X)
        if self.estimator._is_classifier:
            return np.where(z >= 0, self.estimator.classes_[1], self.estimator.classes_[0])
        return z

    def predict_proba(self, X):
        """Class probabilities (m, 2), columns in the order of `classes_`: the logistic
        model's P(y = classes_[1] | x) = σ(h(x)) and its complement (classifier only)."""
        if not self.estimator._is_classifier:
            raise AttributeError("predict_proba: only MAMLClassifier's models have it")
        z = self.decision_function(X)
        p1 = np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))),
                      np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))
        return np.column_stack([1 - p1, p1])

    def score(self, X, y):
        """R² of the predictions (regressor), or the accuracy (classifier), on (X, y)."""
        y = _validate.array("y", y)
        pred = self.predict(X)
        if y.shape != pred.shape:
            raise ValueError(f"y: expected shape {pred.shape}, got {y.shape}")
        if self.estimator._is_classifier:
            return float(np.mean(pred == y))
        y = y.astype(np.float64)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        ss_res = float(np.sum((y - pred) ** 2))
        return 1 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else -math.inf)


class MAMLRegressor(_MAMLEstimator):
    """MAML for a model linear in a feature map, h(x) = φ(x)ᵀθ, as a scikit-learn estimator.

    fit(tasks) meta-trains θ (exact meta-gradients, `gomaml.fit`); adapt(X, y) takes a new
    task's few labelled points and returns its adapted model (predict, score).

    Parameters
    ----------
    features : gomaml.features map, optional
        φ (fitted to the inputs' width on fit if it is not yet); None with kernel=None: the
        raw inputs themselves (Identity).
    kernel : gomaml.kernels kernel or str, optional
        d = ∞: train in the kernel form (KernelTasks); "linear", "rbf", "relu", "ntk", or an
        instance (e.g. RBF(bandwidth=2)). Not together with features.
    loss : {"squared", "pseudo_huber"} or Loss, default "squared"
    inner_lr : float, default 0.1
        The inner (adaptation) step size η, in training and in adapt.
    inner_steps : int, default 1
    first_order : bool, default False
        Train along the first-order MAML direction.
    max_iter : int, default 10000
    tol : float, default 1e-6
        Stop at ‖∇L‖ <= tol.
    n_threads : int, optional

    Attributes
    ----------
    theta_ : ndarray (d,)
        The meta-trained parameters.
    fit_result_ : gomaml.FitResult
        The training record (loss, ‖∇L‖, history, convergence message).
    feature_map_, kernel_tasks_
        The fitted feature map (feature form) or KernelTasks (kernel form); the other is None.
    n_features_in_ : int
        The raw input width p.

    Examples
    --------
    >>> import gomaml
    >>> from gomaml.features import RandomFourier
    >>> import numpy as np
    >>> train = gomaml.synthetic.sinusoid(200, 10, 10, seed=0)
    >>> model = gomaml.MAMLRegressor(features=RandomFourier(40, seed=0), inner_lr=1.0,
    ...                              inner_steps=5, max_iter=500).fit(train)
    >>> new = gomaml.synthetic.sinusoid(20, 10, 50, seed=1)      # 20 new tasks
    >>> r2 = [model.adapt(new.Xs[i], new.ys[i]).score(new.Xq[i], new.yq[i])
    ...       for i in range(20)]
    >>> bool(np.median(r2) > 0.7)
    True
    """

    def __init__(self, *, features=None, kernel=None, loss="squared", inner_lr=0.1,
                 inner_steps=1, first_order=False, max_iter=10000, tol=1e-6, n_threads=None):
        self.features, self.kernel, self.loss = features, kernel, loss
        self.inner_lr, self.inner_steps, self.first_order = inner_lr, inner_steps, first_order
        self.max_iter, self.tol, self.n_threads = max_iter, tol, n_threads


class MAMLClassifier(_MAMLEstimator):
    """MAML with the logistic loss for binary few-shot classification, h(x) = φ(x)ᵀθ.

    Labels: ±1, or any two classes (`classes_`, sorted; the second is the positive class).
    Adapted models have predict (classes), predict_proba and score (accuracy).

    Parameters
    ----------
    features, kernel, inner_lr, inner_steps, first_order, max_iter, tol, n_threads
        As for `MAMLRegressor` (no `loss`: it is the logistic loss).

    Attributes
    ----------
    classes_ : ndarray (2,)
        The two classes, sorted: classes_[0] is −1 for the loss, classes_[1] is +1.
    theta_, fit_result_, feature_map_, kernel_tasks_, n_features_in_
        As for `MAMLRegressor`.

    Examples
    --------
    >>> import gomaml
    >>> train = gomaml.synthetic.logistic_classification(50, 10, 10, 5, seed=0)
    >>> model = gomaml.MAMLClassifier(inner_lr=0.5, max_iter=300).fit(train)
    >>> model.classes_.tolist()
    [-1.0, 1.0]
    """

    _is_classifier = True

    def __init__(self, *, features=None, kernel=None, inner_lr=0.1, inner_steps=1,
                 first_order=False, max_iter=10000, tol=1e-6, n_threads=None):
        self.features, self.kernel = features, kernel
        self.inner_lr, self.inner_steps, self.first_order = inner_lr, inner_steps, first_order
        self.max_iter, self.tol, self.n_threads = max_iter, tol, n_threads
