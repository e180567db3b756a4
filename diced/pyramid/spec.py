"""What a pyramid is: its levels' factors and method, their names, shapes and attributes.

A pyramid is declared by its level 0 (the array itself), in the array's zarr attributes,
in the form :func:`diced.zarr_ome.pyramid_levels` reads for the OME-NGFF view::

    attributes.diced.pyramid = {"method": "mean", "levels": [
        {"array": "em.s1", "factors": [1, 2, 2]},
        {"array": "em.s2", "factors": [2, 4, 4]}]}

Level ``k`` (1 ≤ k ≤ number of levels) is the array ``<name>.s<k>`` of the same version;
its ``factors`` are cumulative: one of its voxels covers ``factors`` level-0 voxels per
axis (each a multiple of the level below's). A level array says whose level it is::

    attributes.diced.pyramid_of = "em"

Names ending in ``.s<digits>`` are reserved for levels. docs/pyramids.md states the schema.
A description naming other arrays (written by hand or by another tool) is served as it is
and not maintained by diced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diced.errors import InvalidInputError
from diced.pyramid.downsample import METHODS, downsampled_shape

__all__ = ["LEVEL_NAME", "MAX_LEVELS", "LevelTag", "PyramidSpec", "is_level_name",
           "level_name", "level_tag", "plan_spec", "pyramid_of"]

#: Names reserved for pyramid levels: ``<name>.s<k>``.
LEVEL_NAME = re.compile(r"^(?P<of>.+)\.s(?P<level>[1-9][0-9]*)$")
#: Most levels a pyramid may have (2⁶⁴ voxels per axis would need fewer).
MAX_LEVELS = 64
_MAX_NAME = 200


def level_name(name: str, level: int) -> str:
    """The name of level ``level`` (≥ 1) of array ``name``."""
    return f"{name}.s{level}"


def is_level_name(name: str) -> bool:
    """Whether ``name`` has the form reserved for pyramid levels (``<name>.s<k>``)."""
    return LEVEL_NAME.match(name) is not None


@dataclass(frozen=True)
class PyramidSpec:
    """The levels of one pyramid: per-level factors and the downsampling method.

    ``factors[k - 1]`` is the factor per axis from level ``k - 1`` to level ``k``; the
    number of levels above level 0 is ``len(factors)``.
    """

    factors: tuple[tuple[int, ...], ...]
    method: str

    @property
    def levels(self) -> int:
        """Number of levels above level 0."""
        return len(self.factors)

    def scale(self, level: int) -> tuple[int, ...]:
        """Size of one voxel of ``level`` in level-0 voxels, per axis (its cumulative factors)."""
        ndim = len(self.factors[0])
        return tuple(math.prod(f[axis] for f in self.factors[:level]) for axis in range(ndim))

    def shapes(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Shapes of levels 0..levels for a level 0 of ``shape``."""
        out = [shape]
        for factors in self.factors:
            out.append(downsampled_shape(out[-1], factors))
        return out

    def to_json(self, name: str) -> dict[str, Any]:
        """The ``attributes.diced.pyramid`` object of level 0, array ``name``."""
        return {"method": self.method,
                "levels": [{"array": level_name(name, k), "factors": list(self.scale(k))}
                           for k in range(1, self.levels + 1)]}


@dataclass(frozen=True)
class LevelTag:
    """What a level array is: level ``level`` of array ``of``."""

    of: str
    level: int


def _diced_attributes(zarr_meta: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = zarr_meta.get("attributes")
    diced = attrs.get("diced") if isinstance(attrs, Mapping) else None
    return diced if isinstance(diced, Mapping) else {}


def _int_tuple(value: Any, ndim: int) -> tuple[int, ...] | None:
    if not isinstance(value, list) or len(value) != ndim:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        return None
    return tuple(value)


def pyramid_of(name: str, zarr_meta: Mapping[str, Any]) -> PyramidSpec | None:
    """The pyramid array ``name``'s metadata declares and diced maintains, or ``None``.

    ``None`` too for a malformed declaration (a tool rewrote the attributes) and for one
    naming other arrays than ``<name>.s1, <name>.s2...`` in order, or without a method.
    """
    found = _diced_attributes(zarr_meta).get("pyramid")
    if not isinstance(found, Mapping):
        return None
    entries, method = found.get("levels"), found.get("method")
    if method not in METHODS or not isinstance(entries, list) or not entries \
            or len(entries) > MAX_LEVELS:
        return None
    ndim = len(zarr_meta.get("shape", ()))
    below, factors = (1,) * ndim, []
    for k, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping) or entry.get("array") != level_name(name, k):
            return None
        scale = _int_tuple(entry.get("factors"), ndim)
        if scale is None or any(s % b for s, b in zip(scale, below, strict=True)):
            return None
        step = tuple(s // b for s, b in zip(scale, below, strict=True))
        if all(f == 1 for f in step):
            return None
        factors.append(step)
        below = scale
    return PyramidSpec(tuple(factors), str(method))


def level_tag(name: str, zarr_meta: Mapping[str, Any]) -> LevelTag | None:
    """What array ``name`` is, if its metadata and name make it a pyramid level.

    A level says ``attributes.diced.pyramid_of = <array>`` and is named ``<array>.s<k>``.
    """
    of = _diced_attributes(zarr_meta).get("pyramid_of")
    match = LEVEL_NAME.match(name)
    if not isinstance(of, str) or match is None or match.group("of") != of:
        return None
    return LevelTag(of, int(match.group("level")))


def _factor_tuple(value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        raise InvalidInputError(f"pyramid factors must be a sequence of {ndim} integers such "
                                f"as {(2,) * ndim}, not {value!r:.80}")
    items = list(value)
    if len(items) != ndim or any(not isinstance(f, (int, np.integer))
                                 or isinstance(f, (bool, np.bool_)) or not 1 <= f <= 2**20
                                 for f in items):
        raise InvalidInputError(f"pyramid factors need {ndim} integers from 1 to 2**20 (one per "
                                f"axis), got {value!r:.80}")
    if all(f == 1 for f in items):
        raise InvalidInputError(f"pyramid factors {tuple(items)} downsample nothing: at least "
                                "one axis needs a factor of 2 or more")
    return tuple(int(f) for f in items)


def _default_method(dtype: np.dtype[Any], islabel: bool) -> str:
    return "mode" if islabel or dtype.kind == "b" else "mean"


def plan_spec(name: str, shape: tuple[int, ...], unit: tuple[int, ...], dtype: np.dtype[Any],
              islabel: bool, levels: Any, factors: Any, method: Any) -> PyramidSpec:
    """The pyramid ``build_pyramid(levels, factors, method)`` asks for, validated.

    ``factors`` is one tuple (every level) or a sequence of tuples (one per level), default
    2 on every axis. ``levels=None`` adds levels until every downsampled axis (factor > 1)
    fits in one chunk (``unit``), at least one level. ``method=None`` is ``mode`` for label
    volumes and booleans, else ``mean``.

    Raises
    ------
    InvalidInputError
        A bad argument, or a name too long to give its levels names.
    """
    ndim = len(shape)
    if method is None:
        method = _default_method(dtype, islabel)
    if method not in METHODS:
        raise InvalidInputError(f"unknown pyramid method {method!r}; choose one of "
                                f"{', '.join(METHODS)}")
    if levels is not None and (not isinstance(levels, (int, np.integer))
                               or isinstance(levels, (bool, np.bool_))
                               or not 1 <= levels <= MAX_LEVELS):
        raise InvalidInputError(f"levels must be an integer from 1 to {MAX_LEVELS} (or None "
                                f"for as many as fit), not {levels!r:.80}")
    if factors is None:
        factors = (2,) * ndim
    listed = (isinstance(factors, Sequence | np.ndarray) and not isinstance(factors, str)
              and len(factors) > 0 and all(isinstance(f, Sequence | np.ndarray)
                                           and not isinstance(f, str) for f in factors))
    if listed:
        per_level = [_factor_tuple(f, ndim) for f in factors]
        if levels is not None and levels != len(per_level):
            raise InvalidInputError(f"levels={levels} disagrees with the {len(per_level)} "
                                    "factor tuples given (one per level)")
        if len(per_level) > MAX_LEVELS:
            raise InvalidInputError(f"at most {MAX_LEVELS} levels, got {len(per_level)}")
    else:
        step = _factor_tuple(factors, ndim)
        count = int(levels) if levels is not None else _levels_that_fit(shape, unit, step)
        per_level = [step] * count
    longest = level_name(name, len(per_level))
    if len(longest) > _MAX_NAME:
        raise InvalidInputError(f"array name {name!r} is too long for level names such as "
                                f"{longest!r} (at most {_MAX_NAME} characters)")
    return PyramidSpec(tuple(per_level), str(method))


def _levels_that_fit(shape: tuple[int, ...], unit: tuple[int, ...],
                     factors: tuple[int, ...]) -> int:
    """Levels until every axis with a factor above 1 fits in one chunk (at least one)."""
    count, current = 1, downsampled_shape(shape, factors)
    while count < MAX_LEVELS and any(f > 1 and n > u for n, u, f in
                                     zip(current, unit, factors, strict=True)):
        current = downsampled_shape(current, factors)
        count += 1
    return count
