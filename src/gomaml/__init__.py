"""gomaml: exact MAML meta-gradients for models linear in a feature map, h(x) = φ(x)ᵀθ,
and the global-optimality analysis of Wang, Cai, Yang & Wang (ICML 2020)."""
from gomaml import _threads  # first: sets OpenMP's wait policy before the kernels load
from gomaml._version import __version__
from gomaml._buildinfo import build_info
from gomaml.tasks import Tasks
from gomaml.losses import Loss, Squared, Logistic, PseudoHuber
from gomaml.objective import (NumericalOverflowError, meta_loss_grad, meta_loss, adapt,
                              task_losses, predict)
from gomaml.train import fit, FitResult, DivergenceError
from gomaml.minimizer import global_minimizer
from gomaml.kernel_tasks import KernelTasks
from gomaml import features, kernels, synthetic
from gomaml.estimators import MAMLRegressor, MAMLClassifier
from gomaml.bounds import (optimality_bound, corollary1_bound, functional_derivative,
                           BoundReport)

__all__ = [
    "__version__", "build_info", "Tasks", "Loss", "Squared", "Logistic", "PseudoHuber",
    "meta_loss_grad", "meta_loss", "adapt", "task_losses", "predict",
    "fit", "FitResult", "DivergenceError", "NumericalOverflowError", "global_minimizer",
    "optimality_bound", "corollary1_bound", "functional_derivative", "BoundReport",
    "KernelTasks", "kernels", "features", "synthetic", "MAMLRegressor", "MAMLClassifier",
]
