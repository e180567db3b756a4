"""diced's local web viewer and HTTP API.

Start it with ``diced serve LOCATION``, ``DicedStore(location, port=8000)`` or
:meth:`diced.DicedStore.serve`. The pages, the API and its limits are described in
``docs/viewer.md``; the API itself at ``/openapi.json`` and ``/docs`` of a running server.
"""

from __future__ import annotations

from diced_viewer._app import create_app
from diced_viewer._limits import ServerLimits
from diced_viewer._server import ExposedServerWarning, ViewerServer

__all__ = ["ExposedServerWarning", "ServerLimits", "ViewerServer", "create_app"]
