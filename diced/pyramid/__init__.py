"""Multiscale pyramids, kept right in every version (see docs/pyramids.md).

A pyramid of array ``em`` is a stack of arrays of the same version node, ``em.s1``,
``em.s2``..., each a downsample of the one below (:mod:`diced.pyramid.downsample`). Its
shape, factors and method are declared in ``em``'s zarr attributes
(:mod:`diced.pyramid.spec`). Writes to ``em`` leave the levels alone; ``lock_node`` (or
``update_pyramid``) recomputes exactly the blocks over the chunks the node changed
(:mod:`diced.pyramid.refresh`, :mod:`diced.pyramid.kept`), so every locked version's
levels are downsamples of its own level 0.
"""

from __future__ import annotations

from diced.pyramid.downsample import METHODS, downsample, downsampled_shape
from diced.pyramid.kept import (
    after_seal,
    before_lock,
    bring_up,
    check_deletable,
    delete_levels,
    remove,
)
from diced.pyramid.refresh import PyramidUpdate
from diced.pyramid.spec import (
    LevelTag,
    PyramidSpec,
    is_level_name,
    level_name,
    level_tag,
    plan_spec,
    pyramid_of,
)

__all__ = ["METHODS", "LevelTag", "PyramidSpec", "PyramidUpdate", "after_seal", "before_lock",
           "bring_up", "check_deletable", "delete_levels", "downsample", "downsampled_shape",
           "is_level_name", "level_name", "level_tag", "plan_spec", "pyramid_of", "remove"]
