"""JSON-safe values for reports, results and study rows."""
import math

import numpy as np


def json_safe(x):
    """x with inf and NaN spelled "inf", "-inf", "nan", NumPy scalars and arrays as Python
    numbers and lists, recursively through dicts, lists and tuples."""
    if isinstance(x, np.ndarray):
        return [json_safe(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x
