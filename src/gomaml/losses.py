"""The per-sample losses of theory.md §2 as objects; the arithmetic is the kernels' point functions."""

import numpy as np

from gomaml import _validate
from gomaml import _kernels

SQUARED, LOGISTIC, PSEUDO_HUBER = 0, 1, 2


class Loss:
    """A convex, twice-differentiable per-sample loss l(z, y) of a prediction z.

    Every call taking `loss=` accepts an instance (Squared(), Logistic(), PseudoHuber(delta))
    or a name from LOSSES ("squared", "logistic", "pseudo_huber" with δ = 1). value, d1 and
    d2 evaluate l, l' and l'' elementwise with the kernels' own point functions.

    Examples
    --------
    >>> import gomaml
    >>> sq = gomaml.Squared()
    >>> float(sq.value(3.0, 1.0)), float(sq.d1(3.0, 1.0)), float(sq.d2(3.0, 1.0))
    (4.0, 4.0, 2.0)
    >>> float(gomaml.Logistic().value(0.0, 1.0))        # log 2
    0.6931471805599453
    """

    name = None
    code = None
    delta = 1.0

    def _eval(self, z, y):
        z, y = np.broadcast_arrays(np.asarray(z, dtype=np.float64),
                                   np.asarray(y, dtype=np.float64))
        shape = z.shape
        z = np.ascontiguousarray(z).ravel()
        y = np.ascontiguousarray(y).ravel()
        out = np.empty((3, z.size))
        _kernels.loss_arrays(self.code, float(self.delta), z, y, out[0], out[1], out[2])
        return out.reshape((3,) + shape)

    def value(self, z, y):
        """l(z, y), elementwise (arrays broadcast), float64."""
        return self._eval(z, y)[0]

    def d1(self, z, y):
        """dl/dz, elementwise, float64."""
        return self._eval(z, y)[1]

    def d2(self, z, y):
        """d²l/dz², elementwise, float64."""
        return self._eval(z, y)[2]

    def __eq__(self, other):
        return type(self) is type(other) and self.delta == other.delta

    def __hash__(self):
        return hash((self.name, self.delta))

    def __repr__(self):
        return f"{type(self).__name__}()"


class Squared(Loss):
    """l = (z - y)², l' = 2(z - y), l'' = 2 (not ½(z - y)²: theory.md §2)."""
    name = "squared"
    code = SQUARED


class Logistic(Loss):
    """l = log(1 + exp(-yz)) for labels y in {-1, +1}, in overflow-free form."""
    name = "logistic"
    code = LOGISTIC


class PseudoHuber(Loss):
    """l = δ²(√(1 + (r/δ)²) - 1), r = z - y, in a form without cancellation.

    Parameters
    ----------
    delta : float, default 1.0
        The scale δ > 0 where the loss turns from quadratic to linear.

    Raises
    ------
    TypeError, ValueError
        delta not a finite number > 0.
    """
    name = "pseudo_huber"
    code = PSEUDO_HUBER

    def __init__(self, delta=1.0):
        self.delta = _validate.positive("delta", delta)

    def __repr__(self):
        return f"PseudoHuber(delta={self.delta!r})"


#: every loss by name (the registry config checks and the CLI read)
LOSSES = {"squared": Squared, "logistic": Logistic, "pseudo_huber": PseudoHuber}


def resolve_loss(loss):
    """A Loss from a Loss instance or one of the names in LOSSES (TypeError/ValueError
    naming `loss` otherwise)."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        try:
            return LOSSES[loss]()
        except KeyError:
            raise ValueError(f"loss: unknown loss name {loss!r}; expected one of "
                             f"{', '.join(map(repr, LOSSES))} or a Loss instance") from None
    raise TypeError(f"loss must be a loss name or a Loss instance, got {type(loss).__name__}")
