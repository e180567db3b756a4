"""Axes, voxel sizes and units of diced arrays, and their OME-NGFF 0.5 description.

Every function here reads or builds JSON documents; nothing touches a store. The facts
live in an array's zarr v3 document (``zarr.json``), so they are versioned with it:

* ``dimension_names`` (zarr v3): one name per axis; :func:`dimension_names_of` supplies
  the defaults (:data:`DEFAULT_DIMENSION_NAMES`) for arrays stored without them;
* ``attributes.diced.voxel_size`` (one positive number per axis, default 1) and
  ``attributes.diced.unit`` (an OME-NGFF space unit such as ``"nanometer"``, or absent).

:func:`multiscale_group` turns an array (and its pyramid levels, when it has them) into the
``zarr.json`` of an OME-NGFF 0.5 image group; :mod:`diced.zarr_views` serves those groups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from diced.errors import InvalidInputError

__all__ = [
    "DEFAULT_DIMENSION_NAMES",
    "OME_VERSION",
    "SPACE_UNITS",
    "PyramidLevel",
    "axes_of",
    "check_dimension_names",
    "check_unit",
    "check_voxel_size",
    "dimension_names_of",
    "is_label",
    "is_pyramid_level",
    "multiscale_group",
    "pyramid_levels",
    "unit_of",
    "voxel_size_of",
    "with_scale",
]

OME_VERSION = "0.5"
#: Axis names an array gets when created without ``dimension_names``, by number of axes;
#: other dimensionalities get ``dim_0, dim_1, ...``.
DEFAULT_DIMENSION_NAMES: dict[int, tuple[str, ...]] = {
    1: ("x",),
    2: ("y", "x"),
    3: ("z", "y", "x"),
    4: ("c", "z", "y", "x"),
    5: ("t", "c", "z", "y", "x"),
}
#: Units OME-NGFF allows on space axes (UDUNITS-2 names).
SPACE_UNITS = frozenset({
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot",
    "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer",
    "mile", "millimeter", "nanometer", "parsec", "petameter", "picometer", "terameter",
    "yard", "yoctometer", "yottameter", "zeptometer", "zettameter",
})
_TIME_AXES = frozenset({"t", "time"})
_CHANNEL_AXES = frozenset({"c", "channel", "channels"})
_AXIS_ORDER = {"time": 0, "channel": 1, "space": 2}


def _diced_attributes(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = doc.get("attributes") or {}
    found = attributes.get("diced") if isinstance(attributes, Mapping) else None
    return found if isinstance(found, Mapping) else {}


# -- checking what users give --------------------------------------------------------------


def check_dimension_names(names: Any, ndim: int) -> tuple[str, ...]:
    """``names`` as ``ndim`` distinct, non-empty strings; :class:`InvalidInputError` if not."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InvalidInputError(f"dimension_names must be a sequence of {ndim} strings such as "
                                f"{DEFAULT_DIMENSION_NAMES.get(ndim, ('a',) * ndim)}, "
                                f"not {names!r:.80}")
    out = tuple(names)
    if len(out) != ndim or not all(isinstance(n, str) and n and len(n) <= 64 for n in out):
        raise InvalidInputError(f"dimension_names needs {ndim} non-empty strings (up to 64 "
                                f"characters), got {names!r:.80}")
    if len(set(out)) != ndim:
        raise InvalidInputError(f"dimension_names must be distinct, got {out!r}")
    return out


def check_voxel_size(value: Any, ndim: int) -> tuple[float, ...]:
    """``value`` as ``ndim`` positive finite floats; :class:`InvalidInputError` if not."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"voxel_size must be a sequence of {ndim} positive numbers "
                                f"(one per axis, e.g. (40, 8, 8)), not {value!r:.80}")
    items = list(value)
    if len(items) != ndim or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                 for v in items):
        raise InvalidInputError(f"voxel_size needs {ndim} numbers (one per axis), got "
                                f"{value!r:.80}")
    out = tuple(float(v) for v in items)
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise InvalidInputError(f"every voxel size must be a positive finite number, got {out!r}")
    return out


def check_unit(unit: Any) -> str | None:
    """``unit`` if it is an OME-NGFF space unit (or ``None``); :class:`InvalidInputError` if not."""
    if unit is None or unit in SPACE_UNITS:
        return unit  # type: ignore[no-any-return]
    hint = " (singular: 'nanometer', not 'nanometers')" if isinstance(unit, str) \
        and unit.removesuffix("s") in SPACE_UNITS else ""
    raise InvalidInputError(f"unknown unit {unit!r:.80}{hint}: use an OME-NGFF space unit such "
                            "as 'nanometer', 'micrometer' or 'millimeter'")


def with_scale(doc: Mapping[str, Any], voxel_size: Sequence[float] | None,
               unit: str | None) -> dict[str, Any]:
    """A copy of array document ``doc`` with this voxel size and unit (``None``: unchanged)."""
    out = dict(doc)
    attributes = dict(out.get("attributes") or {})
    diced = dict(_diced_attributes(doc))
    if voxel_size is not None:
        diced["voxel_size"] = list(voxel_size)
    if unit is not None:
        diced["unit"] = unit
    attributes["diced"] = diced
    out["attributes"] = attributes
    return out


# -- reading an array document -------------------------------------------------------------


def dimension_names_of(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The axis names of the array ``doc`` describes (stored, or the defaults)."""
    ndim = len(doc["shape"])
    stored = doc.get("dimension_names")
    if isinstance(stored, Sequence) and len(stored) == ndim and \
            all(isinstance(n, str) and n for n in stored) and len(set(stored)) == ndim:
        return tuple(stored)
    return DEFAULT_DIMENSION_NAMES.get(ndim, tuple(f"dim_{i}" for i in range(ndim)))


def voxel_size_of(doc: Mapping[str, Any]) -> tuple[float, ...]:
    """The voxel size per axis of the array ``doc`` describes (1 per axis when unset)."""
    ndim = len(doc["shape"])
    stored = _diced_attributes(doc).get("voxel_size")
    try:
        return check_voxel_size(stored, ndim)
    except InvalidInputError:
        return (1.0,) * ndim


def unit_of(doc: Mapping[str, Any]) -> str | None:
    """The space unit of the array ``doc`` describes, or ``None`` when unset."""
    unit = _diced_attributes(doc).get("unit")
    return unit if unit in SPACE_UNITS else None


def is_label(doc: Mapping[str, Any]) -> bool:
    """Whether the array holds label ids (created with ``islabel3D=True``)."""
    return bool(_diced_attributes(doc).get("islabel3D", False))


def _axis_type(name: str) -> str:
    lowered = name.lower()
    if lowered in _TIME_AXES:
        return "time"
    if lowered in _CHANNEL_AXES:
        return "channel"
    return "space"


def axes_of(doc: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """OME-NGFF axes of the array, or ``None`` when its axes break OME-NGFF's rules.

    The rules: 2 to 5 axes; 2 or 3 of type space, at most one time and one channel axis,
    ordered time, channel, space. Axes named ``t``/``time`` are time, ``c``/``channel``
    channel, all others space; space axes carry the array's unit.
    """
    names = dimension_names_of(doc)
    types = [_axis_type(n) for n in names]
    if not 2 <= len(names) <= 5 or not 2 <= types.count("space") <= 3 \
            or types.count("time") > 1 or types.count("channel") > 1 \
            or [_AXIS_ORDER[t] for t in types] != sorted(_AXIS_ORDER[t] for t in types):
        return None
    unit = unit_of(doc)
    out: list[dict[str, Any]] = []
    for name, kind in zip(names, types, strict=True):
        axis: dict[str, Any] = {"name": name, "type": kind}
        if kind == "space" and unit is not None:
            axis["unit"] = unit
        out.append(axis)
    return out


# -- pyramids (written by the pyramid feature, read here) ----------------------------------


@dataclass(frozen=True)
class PyramidLevel:
    """One coarser level of an array's pyramid: the array holding it, and its factors.

    ``factors`` are per axis and cumulative: level voxel ``i`` covers level-0 voxels
    ``i * f`` to ``(i + 1) * f - 1`` along an axis with factor ``f``.
    """

    array: str
    factors: tuple[float, ...]


def pyramid_levels(doc: Mapping[str, Any]) -> list[PyramidLevel]:
    """The coarser levels of the array ``doc`` describes, finest first (``[]``: none).

    This is the one place that reads a pyramid's description, so the OME-NGFF layer and
    the pyramid feature agree through it. The base array's
    ``attributes.diced.pyramid`` is ``{"levels": [{"array": NAME, "factors": [...]}, ...]}``:
    the arrays of the same version holding levels 1, 2, ..., with cumulative factors
    relative to level 0. Malformed entries are skipped.
    """
    ndim = len(doc["shape"])
    pyramid = _diced_attributes(doc).get("pyramid")
    levels = pyramid.get("levels") if isinstance(pyramid, Mapping) else None
    out = []
    for entry in levels if isinstance(levels, Sequence) else ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("array"), str):
            continue
        try:
            factors = check_voxel_size(entry.get("factors"), ndim)
        except InvalidInputError:
            continue
        out.append(PyramidLevel(entry["array"], factors))
    return out


def is_pyramid_level(doc: Mapping[str, Any]) -> bool:
    """Whether the array is a coarser level of another array's pyramid.

    Such arrays carry ``attributes.diced.pyramid_of`` (the base array's name); they are
    datasets of their base array's OME-NGFF group, not images of their own.
    """
    return isinstance(_diced_attributes(doc).get("pyramid_of"), str)


# -- the OME-NGFF group --------------------------------------------------------------------


def _round(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def multiscale_group(name: str, doc: Mapping[str, Any],
                     levels: Sequence[tuple[PyramidLevel, Mapping[str, Any]]] = ()
                     ) -> dict[str, Any] | None:
    """The ``zarr.json`` of the OME-NGFF 0.5 image group of array ``name``.

    Its datasets are ``"0"`` (the array) and ``"1"``, ``"2"``, ... (the pyramid ``levels``,
    each with its array's document), with ``scale`` transforms from the voxel size and, for
    levels, the ``translation`` that centres a coarse voxel on the voxels it covers. A
    label array's group also carries ``image-label``. The group document holds its
    datasets' metadata consolidated, so zarr lists them without a listing request.
    ``None`` when the array's axes do not fit OME-NGFF (see :func:`axes_of`).
    """
    axes = axes_of(doc)
    if axes is None:
        return None
    size = voxel_size_of(doc)
    datasets: list[dict[str, Any]] = [{
        "path": "0",
        "coordinateTransformations": [{"type": "scale", "scale": [_round(s) for s in size]}],
    }]
    members: dict[str, Any] = {"0": dict(doc)}
    for index, (level, level_doc) in enumerate(levels, start=1):
        scale = [_round(s * f) for s, f in zip(size, level.factors, strict=True)]
        shift = [_round(s * (f - 1) / 2) for s, f in zip(size, level.factors, strict=True)]
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
        if any(shift):
            transforms.append({"type": "translation", "translation": shift})
        datasets.append({"path": str(index), "coordinateTransformations": transforms})
        members[str(index)] = dict(level_doc)
    multiscale: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets}
    if levels:
        multiscale["type"] = "mode" if is_label(doc) else "mean"
    ome: dict[str, Any] = {"version": OME_VERSION, "multiscales": [multiscale]}
    if is_label(doc):
        ome["image-label"] = {}
    return {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {"ome": ome},
        "consolidated_metadata": {"kind": "inline", "must_understand": False,
                                  "metadata": members},
    }
