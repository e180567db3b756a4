"""The Starlette application: API routes, zarr routes, OpenAPI, and the static front end."""

from __future__ import annotations

from importlib.resources import files

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from diced.store import DicedStore
from diced_viewer._api import api_routes
from diced_viewer._dvid import dvid_routes
from diced_viewer._dvid_images import image_routes
from diced_viewer._dvid_kv import keyvalue_routes
from diced_viewer._errors import exception_handlers
from diced_viewer._limits import BodyTimeout, ByteBudget, ServerLimits
from diced_viewer._neuroglancer import neuroglancer_routes
from diced_viewer._openapi import openapi_document
from diced_viewer._openapi_dvid import dvid_paths
from diced_viewer._security import AccessGuard, AccessPolicy
from diced_viewer._versions import version_routes
from diced_viewer._zarr_http import zarr_routes

__all__ = ["create_app"]

_STATIC = str(files("diced_viewer") / "static")


def _page(name: str) -> Route:
    async def endpoint(request: Request) -> Response:
        return FileResponse(f"{_STATIC}/{name}", headers={"Cache-Control": "no-cache"})

    return Route("/" if name == "index.html" else f"/{name.removesuffix('.html')}", endpoint)


async def _openapi(request: Request) -> Response:
    writable = bool(request.app.state.allow_writes)
    document = openapi_document(writable)
    document["paths"].update(dvid_paths(writable))
    return JSONResponse(document)


def create_app(store: DicedStore, *, allow_writes: bool = False,
               policy: AccessPolicy | None = None,
               limits: ServerLimits | None = None) -> Starlette:
    """An ASGI app serving ``store``: read-only unless ``allow_writes``.

    ``policy`` (default: a server on 127.0.0.1) says which hosts and origins it answers;
    ``limits`` (default :class:`ServerLimits`) bound memory and body time. Every route,
    including any added to the app later, sits behind both.
    """
    limits = limits or ServerLimits()
    routes: list[BaseRoute] = [
        _page("index.html"),
        _page("docs.html"),
        Route("/openapi.json", _openapi),
        # DVID's routes first: /api/repos/info must win over /api/repos/{repo}.
        *dvid_routes(),
        *image_routes(),
        *api_routes(),
        *keyvalue_routes(),
        *version_routes(),
        *zarr_routes(),
        *neuroglancer_routes(),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers=exception_handlers,
                    middleware=[Middleware(AccessGuard), Middleware(BodyTimeout)])
    app.state.store = store
    app.state.allow_writes = allow_writes
    app.state.access_policy = policy or AccessPolicy.for_server("127.0.0.1")
    app.state.limits = limits
    app.state.neuroglancer = None  # a LocalNeuroglancer once ViewerServer starts one
    app.state.byte_budget = ByteBudget(limits.memory_budget, limits.queue_wait)
    return app
