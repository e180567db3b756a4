"""A local neuroglancer for the viewer: ``diced serve --neuroglancer``.

The pip package ``neuroglancer`` (extra ``diced[neuroglancer]``) ships the built client and
a small server of its own. :class:`LocalNeuroglancer` runs that server on 127.0.0.1 and
makes one neuroglancer viewer per request of ``GET /neuroglancer/{repo}/{version}``, with
the version's arrays as layers (label arrays as segmentation layers) read from this
server's ``/zarr/`` routes through each array's OME-NGFF group, so voxel sizes and units
come from the version itself. ``?compare=VERSION`` adds the other version's layers.
Nothing is fetched from anywhere but the two local servers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from diced import zarr_ome as ome
from diced.array import DicedArray
from diced.errors import InvalidInputError, NotFoundError
from diced.repo import DicedRepo
from diced_viewer._errors import ApiError
from diced_viewer._repos import store_of
from diced_viewer._slices import bounds

__all__ = ["LAYOUTS", "MAX_VIEWERS", "LayerSpec", "LocalNeuroglancer", "neuroglancer_routes",
           "version_layers"]

#: Neuroglancer viewers kept alive at once (each open link holds one; the oldest goes first).
MAX_VIEWERS = 32
#: Layouts ``?layout=`` accepts.
LAYOUTS = ("4panel", "xy", "xz", "yz", "3d", "xy-3d", "xz-3d", "yz-3d")
#: Metres per OME-NGFF space unit, for the units neuroglancer shows.
_METRES = {"angstrom": 1e-10, "picometer": 1e-12, "nanometer": 1e-9, "micrometer": 1e-6,
           "millimeter": 1e-3, "centimeter": 1e-2, "decimeter": 1e-1, "meter": 1.0,
           "kilometer": 1e3}


@dataclass(frozen=True)
class LayerSpec:
    """One neuroglancer layer: its name, ``zarr3://`` source and kind (image or segmentation)."""

    name: str
    source: str
    kind: str


def version_layers(repo: DicedRepo, server_url: str, *, suffix: str = "") -> list[LayerSpec]:
    """Layers of every array of ``repo``'s current version, read from ``server_url``'s ``/zarr/``.

    An array with an OME-NGFF group is read through it (voxel size, units, pyramid levels);
    others through the array itself. ``suffix`` is appended to each layer name.
    """
    base = f"{server_url}/zarr/{quote(repo.name, safe='')}/{repo.uuid}"
    layers = []
    for name, _ in repo.list_instances():
        array = repo.get_array(name)
        meta = array.zarr.metadata.to_dict()
        if ome.is_pyramid_level(meta):
            continue
        path = f".ome/{name}" if ome.axes_of(meta) is not None else name
        layers.append(LayerSpec(f"{name}{suffix}", f"zarr3://{base}/{path}/",
                                "segmentation" if array.islabel3D else "image"))
    return layers


def _dimensions(array: DicedArray) -> dict[str, Any]:
    """neuroglancer's global dimensions: the array's axes fastest first (x, y, z), so that
    its ``xy`` panel shows the x-y plane."""
    names = list(reversed(array.dimension_names))
    sizes = list(reversed(array.voxel_size))
    factor = _METRES.get(array.unit or "")
    if factor is None:
        return {"names": names, "units": "", "scales": sizes}
    return {"names": names, "units": "m", "scales": [s * factor for s in sizes]}


class LocalNeuroglancer:
    """neuroglancer's own server on 127.0.0.1 and the viewers it shows.

    Raises
    ------
    InvalidInputError
        The ``neuroglancer`` package is not installed (``pip install 'diced[neuroglancer]'``).
    """

    def __init__(self, port: int = 0) -> None:
        try:
            import neuroglancer
        except ImportError as exc:
            raise InvalidInputError("--neuroglancer needs the neuroglancer package: pip install "
                                    "'diced[neuroglancer]'") from exc
        self._ng = neuroglancer
        neuroglancer.set_server_bind_address("127.0.0.1", port)
        neuroglancer.server.start()
        self.url: str = neuroglancer.server.get_server_url()
        self._viewers: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def origin(self) -> str:
        """The web origin of neuroglancer's pages (``http://127.0.0.1:PORT``)."""
        return self.url.rstrip("/")

    def open(self, repo: DicedRepo, server_url: str, *, compare: DicedRepo | None = None,
             focus: str | None = None, layout: str = "4panel") -> str:
        """The URL of a neuroglancer viewer showing ``repo``'s current version.

        ``compare`` adds that version's layers (named ``ARRAY @ UUID8``), hidden at first;
        ``focus`` names the array to centre on (default: the first one).
        """
        if layout not in LAYOUTS:
            raise InvalidInputError(f"layout must be one of {', '.join(LAYOUTS)}")
        key = (repo.repo_uuid, repo.uuid, compare.uuid if compare else None, focus, layout,
               server_url)
        with self._lock:
            found = self._viewers.get(key)
            if found is not None:
                self._viewers.move_to_end(key)
                return str(found.get_viewer_url())
        layers = version_layers(repo, server_url)
        if compare is not None:
            layers += version_layers(compare, server_url, suffix=f" @ {compare.uuid[:8]}")
        names = [name for name, _ in repo.list_instances()]
        if focus is not None and focus not in names:
            raise NotFoundError(f"no array {focus!r} at version {repo.uuid}")
        viewer = self._ng.Viewer()
        with viewer.txn() as state:
            if names:
                array = repo.get_array(focus or names[0])
                state.dimensions = self._ng.CoordinateSpace(**_dimensions(array))
                extent = list(reversed(bounds(array)))
                state.position = [(lo + hi) / 2 for lo, hi in extent]
                # Voxels per screen pixel: the array's widest displayed side fills ~600 pixels.
                state.cross_section_scale = max(hi - lo for lo, hi in extent[:2]) / 600 or 1
            for layer in layers:
                kind = self._ng.SegmentationLayer if layer.kind == "segmentation" \
                    else self._ng.ImageLayer
                hidden = compare is not None and layer.name.endswith(f" @ {compare.uuid[:8]}")
                state.layers.append(name=layer.name, layer=kind(source=layer.source),
                                    visible=not hidden)
            state.layout = layout
        with self._lock:
            self._viewers[key] = viewer
            while len(self._viewers) > MAX_VIEWERS:
                self._viewers.popitem(last=False)
        return str(viewer.get_viewer_url())

    def stop(self) -> None:
        """Forget every viewer and stop neuroglancer's server."""
        with self._lock:
            self._viewers.clear()
        self._ng.server.stop()


def _bridge(request: Request) -> LocalNeuroglancer:
    found: LocalNeuroglancer | None = getattr(request.app.state, "neuroglancer", None)
    if found is None:
        raise ApiError("this viewer runs without neuroglancer: start it with diced serve "
                       "--neuroglancer (needs pip install 'diced[neuroglancer]')", 404)
    return found


def open_version(request: Request) -> Response:
    """``GET /neuroglancer/{repo}/{version}``: redirect to a local neuroglancer of that version."""
    bridge = _bridge(request)
    store = store_of(request)
    repo = store.open_repo(request.path_params["repo"], readonly=True)
    repo.change_version(request.path_params["version"])
    other = request.query_params.get("compare")
    compare = None
    if other:
        compare = store.open_repo(request.path_params["repo"], readonly=True)
        compare.change_version(other)
    server_url = f"{request.url.scheme}://{request.headers['host']}"
    try:
        url = bridge.open(repo, server_url, compare=compare,
                          focus=request.query_params.get("array") or None,
                          layout=request.query_params.get("layout", "4panel"))
    except InvalidInputError as exc:
        raise ApiError(str(exc)) from exc
    return RedirectResponse(url, status_code=303)


def neuroglancer_routes() -> list[Route]:
    return [Route("/neuroglancer/{repo}/{version}", open_version)]
