"""Argument checks: one rule everywhere. A value of the wrong type (including a bool where a
number is needed, and a non-integral number where an int is needed) is a TypeError; a value of
the right type that is out of range is a ValueError. Every message names the argument.
"""
import math
import numbers

import numpy as np


def _none_ok(allow_none):
    return " or None" if allow_none else ""


def real(name, value, *, low=None, strict=False, high=None, allow_none=False):
    """A finite real number as float, >= low (> low when strict) and <= high when given."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number{_none_ok(allow_none)}, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v) or (low is not None and (v <= low if strict else v < low)) \
        or (high is not None and v > high)
    if bad:
        rng = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        rng += "" if high is None else f"{' and' if rng else ''} <= {high:g}"
        raise ValueError(f"{name} must be a finite number{rng}{_none_ok(allow_none)}, "
                         f"got {value!r}")
    return v


def positive(name, value, *, allow_none=False):
    """A finite real number > 0."""
    return real(name, value, low=0, strict=True, allow_none=allow_none)


def integer(name, value, *, low=None, high=None, allow_none=False):
    """An int (any Integral but bool) with low <= value <= high when given."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{_none_ok(allow_none)}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        if high is None:
            what = f">= {low}"
        elif low is None:
            what = f"<= {high}"
        else:
            what = f"between {low} and {high}"
        raise ValueError(f"{name} must be an int {what}, got {value!r}")
    return v


def boolean(name, value):
    """True or False (a NumPy bool too)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def choice(name, value, registry):
    """One of the registry's names (a str)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, registry))}, "
                        f"got {type(value).__name__}")
    if value not in registry:
        raise ValueError(f"{name}: unknown name {value!r}; expected one of "
                         f"{', '.join(map(repr, registry))}")
    return value


def interval(name, value):
    """A pair (low, high) of finite reals with low < high."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}") from None
    lo, hi = real(f"{name}[0]", lo), real(f"{name}[1]", hi)
    if not lo < hi:
        raise ValueError(f"{name} must have low < high, got {value!r}")
    return lo, hi


def array(name, value, dtype=None):
    """np.asarray(value, dtype), or a TypeError naming the argument: for a tensor that
    requires grad (say what to do), or for anything NumPy cannot read as numbers."""
    if getattr(value, "requires_grad", False) is True:
        raise TypeError(f"{name}: a tensor that requires grad; pass {name}.detach() (gomaml "
                        f"computes exact meta-gradients itself; CPU tensors without grad are "
                        f"read as they are)")
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name}: cannot be read as a numeric array ({exc})") from None
