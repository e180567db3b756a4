"""zarr (v2 and v3) and N5, read with zarr-python; zarr v3 written with zarr-python.

A SOURCE is an array directory (``a.zarr``), or a group plus the array's path inside it
(``group.zarr:/path/to/array``). N5 containers are read through the ``zarr-n5`` package,
which presents N5 attributes as zarr v3 metadata on the fly (DEFAULT-mode blocks with raw,
gzip, zstd or blosc compression; lz4, xz and bzip2 blocks are not supported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from diced.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from diced.io.destination import Destination, StagedPath
from diced.io.source import Source, check_dtype, require

__all__ = ["ZarrDestination", "ZarrSource"]


def _arrays(group: Any) -> list[str]:
    """Paths of every array below a zarr group."""
    import zarr

    return [path for path, node in group.members(max_depth=None)
            if isinstance(node, zarr.Array)]


class ZarrSource(Source):
    """One array of a zarr (v2 or v3) or N5 hierarchy on the local disk."""

    def __init__(self, path: Path, inner: str, *, n5: bool = False) -> None:
        import zarr
        from zarr.storage import LocalStore

        store: Any = LocalStore(path, read_only=True)
        kind = "zarr"
        if n5:
            store = require("zarr_n5").N5WrapperStore(store)
            kind = "N5"
        self.description = f"{kind} {str(path)!r}" + (f":/{inner}" if inner else "")
        try:
            node = zarr.open(store, path=inner, mode="r")
        except FileNotFoundError as exc:
            raise NotFoundError(f"no {kind} array or group at {self.description}") from exc
        except Exception as exc:  # zarr raises several kinds for malformed metadata
            raise InvalidInputError(f"cannot read {self.description}: {exc}") from exc
        if isinstance(node, zarr.Group):
            names = _arrays(node)
            if len(names) != 1:
                raise InvalidInputError(
                    f"{self.description} is a group of {len(names)} arrays "
                    f"({', '.join(names[:10]) or 'none'}); name one as {path}:/path/to/array"
                )
            node = node[names[0]]
            self.description += f" array {names[0]!r}"
        if not isinstance(node, zarr.Array):
            raise NotFoundError(f"no array at {self.description}")
        self._array = node
        self.shape = tuple(int(n) for n in node.shape)
        self.dtype = check_dtype(np.dtype(node.dtype), self.description)

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        # docstring inherited
        try:
            return np.asarray(self._array[start:stop], dtype=self.dtype)
        except Exception as exc:
            raise InvalidInputError(f"cannot read {self.description}: {exc}") from exc


class ZarrDestination(Destination):
    """A zarr v3 array, chunked and compressed like diced's (blosc zstd-1, byte shuffle).

    ``a.zarr`` makes a new array directory (staged, renamed into place on commit);
    ``group.zarr:/path`` adds an array to an existing zarr group, in place (:meth:`abort`
    deletes it again). Rows are written by several threads at once.

    OME-Zarr hook: :attr:`store` and :attr:`path` locate the new array; a subclass that
    overrides :meth:`commit` can write a group around it (such as OME-NGFF
    ``multiscales`` attributes) before calling ``super().commit()``.
    """

    def __init__(self, path: Path, inner: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                 chunks: tuple[int, ...], overwrite: bool) -> None:
        import zarr
        from zarr.storage import LocalStore

        from diced.repo import default_compressor

        self._staged: StagedPath | None = None
        #: Where the array is written, and its path there ("" for the store's root).
        self.path = inner
        if inner:
            if not path.is_dir():
                raise NotFoundError(f"no zarr group at {str(path)!r} to add {inner!r} to")
            group = zarr.open_group(LocalStore(path), mode="r+")
            if inner in group:
                if not overwrite:
                    raise AlreadyExistsError(f"{str(path)!r} already holds {inner!r}; pass "
                                             "--overwrite (overwrite=True) to replace it")
                del group[inner]
            self.store = LocalStore(path)
        else:
            self._staged = StagedPath(path, overwrite)
            self.store = LocalStore(self._staged.temp)
        try:
            self._array = zarr.create_array(
                self.store, name=inner or None, shape=shape,
                chunks=tuple(max(1, min(c, n)) for c, n in zip(chunks, shape, strict=True)),
                dtype=dtype, fill_value=0, compressors=default_compressor())
        except Exception as exc:
            raise InvalidInputError(f"cannot create a zarr array at {path}: {exc}") from exc

    def write(self, start: int, data: npt.NDArray[Any]) -> None:
        # docstring inherited
        self._array[start:start + len(data)] = data

    def commit(self) -> None:
        # docstring inherited
        if self._staged is not None:
            self._staged.commit()

    def abort(self) -> None:
        # docstring inherited
        import zarr

        if self._staged is not None:
            self._staged.abort()
        else:
            del zarr.open_group(self.store, mode="r+")[self.path]
