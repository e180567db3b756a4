"""A plain-Python downsampling oracle, sharing nothing with the vectorised code under test.

It walks the output voxel by voxel, gathers each input block by slicing, and reduces it
with Python integers and ``fractions.Fraction`` (exact), ``collections.Counter`` (mode),
``min``/``max``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt


def _reduce(values: list[Any], method: str, dtype: np.dtype[Any]) -> Any:
    if method == "min":
        return min(values)
    if method == "max":
        return max(values)
    if method == "nearest":
        return values[0]
    if method == "mode":
        counts = Counter(values)
        top = max(counts.values())
        return min(v for v, c in counts.items() if c == top)
    if dtype.kind == "f":
        return sum(float(v) for v in values) / len(values)
    exact = Fraction(sum(int(v) for v in values), len(values))
    return round(exact)  # Python rounds a Fraction half to even


def oracle(data: npt.NDArray[Any], factors: tuple[int, ...], method: str) -> npt.NDArray[Any]:
    """The downsample of ``data``, one output voxel at a time."""
    shape = tuple(math.ceil(n / f) for n, f in zip(data.shape, factors, strict=True))
    out = np.empty(shape, dtype=data.dtype)
    for index in itertools.product(*(range(n) for n in shape)):
        block = data[tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, factors,
                                                                      strict=True))]
        values = [v.item() for v in block.reshape(-1)]
        if data.dtype.kind == "b":
            values = [int(v) for v in values]
        out[index] = _reduce(values, method, data.dtype)
    return out


def pyramid_oracle(data: npt.NDArray[Any], factors: list[tuple[int, ...]], method: str
                   ) -> list[npt.NDArray[Any]]:
    """Levels 0..len(factors) of ``data``, each the oracle's downsample of the one below."""
    levels = [data]
    for f in factors:
        levels.append(oracle(levels[-1], f, method))
    return levels

