"""Who may reach the viewer and change the store, over plain HTTP (docs/viewer.md, Security).

Foreign ``Host`` headers on every route family, foreign ``Origin`` and ``Sec-Fetch-Site``
on every write, wrong body types, the write token, ``/zarr/`` CORS, and binding beyond
loopback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from _viewer_data import Served, serve, snapshot
from diced_viewer import ExposedServerWarning, ViewerServer
from diced_viewer._security import AccessPolicy
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from diced import DicedStore, InvalidInputError, StorageError

TOKEN = "s3cret-token-for-tests"
FOREIGN_ORIGINS = ["http://127.0.0.1:9", "http://localhost:1", "https://attacker.example",
                   "null"]
FORM_TYPES = ["text/plain", "application/x-www-form-urlencoded",
              "multipart/form-data; boundary=x", "text/plain;charset=UTF-8"]


def _route_families(served: Served) -> list[str]:
    """One GET of each kind of route: pages, static files, OpenAPI, API, DVID, zarr."""
    return ["/", "/docs", "/static/app.js", "/openapi.json", "/api/repos",
            f"/api/node/{served.root}", f"/api/node/{served.root}/img/raw/0_1_2/2_2_2/0_0_0",
            f"/api/node/{served.root}/img/slice.png", f"/zarr/em/{served.root}/zarr.json",
            "/no/such/route"]


def _writes(served: Served) -> list[tuple[str, bytes, str, int]]:
    """Every write endpoint: path, a valid body, its media type, the status on success."""
    block = np.arange(8, dtype="<u1").tobytes()
    return [
        (f"/api/node/{served.v3}/lock", b'{"message": "intruder"}', "application/json", 200),
        (f"/api/node/{served.root}/branch", b'{"message": "x", "name": "intruder"}',
         "application/json", 201),
        (f"/api/node/{served.v3}/img/raw/0_1_2/2_2_2/0_0_0", block,
         "application/octet-stream", 204),
    ]


def _foreign_host_answers(url: str, paths: list[str], host: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        for path in paths:
            for method in ("GET", "POST", "OPTIONS"):
                response = http.request(method, path, headers={"Host": host})
                assert response.status_code == 421, (method, path, response.text)
                assert response.json()["status"] == 421
                assert "--allowed-host" in response.json()["error"]


def test_foreign_host_is_refused_on_every_route(served: Served) -> None:
    paths = _route_families(served)
    for host in ("attacker.example", f"attacker.example:{served.server.port}",
                 "127.0.0.1.attacker.example", "localhost.", "10.0.0.1"):
        _foreign_host_answers(served.url, paths, host)
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for host in ("127.0.0.1", f"localhost:{served.server.port}", "[::1]:1", "LOCALHOST"):
            assert http.get("/api/repos", headers={"Host": host}).status_code == 200


def test_every_route_added_later_is_guarded_too(served_rw: Served) -> None:
    """The rules hold for routes the app does not have yet (no list of routes to forget)."""
    async def echo(request: Request) -> Response:
        return JSONResponse({"got": (await request.body()).decode()})

    served_rw.server.app.add_route("/later/echo", echo, methods=["GET", "POST", "PUT"])
    with httpx.Client(base_url=served_rw.url, timeout=30) as http:
        assert http.post("/later/echo", json="hi").json() == {"got": '"hi"'}
        assert http.put("/later/echo", content=b"x",
                        headers={"Origin": "http://127.0.0.1:9"}).status_code == 403
        assert http.post("/later/echo", content=b"x",
                         headers={"Content-Type": "text/plain"}).status_code == 415
        assert http.get("/later/echo", headers={"Host": "evil.example"}).status_code == 421


def test_writes_from_other_origins_and_form_types_change_nothing(served_rw: Served) -> None:
    before = snapshot(served_rw.store)
    port = served_rw.server.port
    with httpx.Client(base_url=served_rw.url, timeout=30) as http:
        for path, body, kind, _ in _writes(served_rw):
            for origin in FOREIGN_ORIGINS:
                response = http.post(path, content=body,
                                     headers={"Content-Type": kind, "Origin": origin})
                assert response.status_code == 403, (path, origin, response.text)
                assert "refused" in response.json()["error"]
            for site in ("cross-site", "same-site"):
                response = http.post(path, content=body,
                                     headers={"Content-Type": kind, "Sec-Fetch-Site": site})
                assert response.status_code == 403, (path, site)
            for form in FORM_TYPES:
                response = http.post(path, content=body, headers={"Content-Type": form})
                assert response.status_code == 415, (path, form)
                # The server's own origin cannot use them either.
                response = http.post(path, content=body, headers={
                    "Content-Type": form, "Origin": f"http://127.0.0.1:{port}",
                    "Sec-Fetch-Site": "same-origin"})
                assert response.status_code == 415, (path, form)
            for method in ("PUT", "DELETE", "PATCH"):
                response = http.request(method, path, content=body, headers={
                    "Content-Type": kind, "Origin": "https://attacker.example"})
                assert response.status_code == 403, (method, path)
        json_only = http.post(f"/api/node/{served_rw.v3}/lock", content=b"{}",
                              headers={"Content-Type": "application/octet-stream"})
        assert json_only.status_code == 415 and "application/json" in json_only.json()["error"]
        raw_only = http.post(f"/api/node/{served_rw.v3}/img/raw/0_1_2/1_1_1/0_0_0",
                             content=b"1", headers={"Content-Type": "application/json"})
        assert raw_only.status_code == 415
    assert snapshot(served_rw.store) == before


def test_own_pages_and_programs_may_write(served_rw: Served) -> None:
    own = {"Origin": served_rw.url, "Sec-Fetch-Site": "same-origin"}
    with httpx.Client(base_url=served_rw.url, timeout=30) as http:
        for path, body, kind, status in _writes(served_rw):
            if path.endswith("/lock"):
                continue  # locking v3 would make the raw write a 409; locked below
            as_page = http.post(path, content=body, headers={"Content-Type": kind, **own})
            assert as_page.status_code == status, as_page.text
            as_program = http.post(path, content=body, headers={"Content-Type": kind})
            assert as_program.status_code in (status, 409), as_program.text
        # DVID clients send raw data without a Content-Type.
        untyped = http.post(f"/api/node/{served_rw.v3}/img/raw/0_1_2/1_1_1/5_5_5",
                            content=b"\x07")
        assert untyped.status_code == 204
        locked = http.post(f"/api/node/{served_rw.v3}/lock", json={"message": "mine"},
                           headers=own)
        assert locked.status_code == 200
    repo = served_rw.store.open_repo(uuid=served_rw.v3)
    assert repo.node_record().lock_message == "mine"
    assert repo.get_array("img")[5, 5, 5] == 7


@pytest.fixture
def with_token(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path / "store.diced", allow_writes=True, token=TOKEN)


def test_a_token_guards_every_write(with_token: Served) -> None:
    before = snapshot(with_token.store)
    with httpx.Client(base_url=with_token.url, timeout=30) as http:
        for path, body, kind, _ in _writes(with_token):
            for auth in (None, "Bearer wrong-token-wrong-token", TOKEN, f"Basic {TOKEN}"):
                headers = {"Content-Type": kind, **({"Authorization": auth} if auth else {})}
                response = http.post(path, content=body, headers=headers)
                assert response.status_code == 401, (path, auth)
                assert response.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/api/repos").status_code == 200  # reads need no token
        assert snapshot(with_token.store) == before
        made = http.post(f"/api/node/{with_token.root}/branch", json={"message": "ok", "name": "t"},
                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert made.status_code == 201


def test_zarr_cors_only_for_allowed_origins(served: Served, tmp_path: Path) -> None:
    key = f"/zarr/em/{served.root}/img/zarr.json"
    with httpx.Client(base_url=served.url, timeout=30) as http:
        foreign = http.get(key, headers={"Origin": "http://127.0.0.1:9"})
        assert foreign.status_code == 200
        assert "access-control-allow-origin" not in foreign.headers
        preflight = http.options(key, headers={"Origin": "http://127.0.0.1:9",
                                               "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 403 and "--cors-origin" in preflight.json()["error"]
        own = http.get(key, headers={"Origin": served.url})
        assert own.headers["access-control-allow-origin"] == served.url
        assert http.options(key).status_code == 204  # no Origin: not a preflight
        api = http.get("/api/repos", headers={"Origin": served.url})
        assert "access-control-allow-origin" not in api.headers  # /api is never CORS
        for page in ("/", "/api/repos", key):
            headers = http.get(page).headers
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
    with DicedStore(str(tmp_path / "s.diced")) as store:
        store.create_repo("r")
        ng = "http://127.0.0.1:9000"
        handle = store.serve(port=0, cors_origins=[ng + "/"])
        node = store.open_repo("r").uuid
        key = f"/zarr/r/{node}/zarr.json"
        with httpx.Client(base_url=handle.url, timeout=30) as http:
            allowed = http.get(key, headers={"Origin": ng})
            assert allowed.headers["access-control-allow-origin"] == ng
            assert "Range" in allowed.headers["access-control-allow-headers"]
            preflight = http.options(key, headers={"Origin": ng,
                                                   "Access-Control-Request-Method": "GET"})
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == ng
            other = "http://127.0.0.1:9001"
            assert "access-control-allow-origin" not in http.get(
                key, headers={"Origin": other}).headers
            handle.allow_cors_origin(other)
            assert http.get(key, headers={"Origin": other}).headers[
                "access-control-allow-origin"] == other
        handle.stop()
        with store.serve(port=0, cors_origins=["*"]) as anyone, \
                httpx.Client(base_url=anyone.url, timeout=30) as http:
            assert http.get(key, headers={"Origin": "https://x.example"}).headers[
                "access-control-allow-origin"] == "*"
            with pytest.raises(InvalidInputError, match="not a web origin"):
                anyone.allow_cors_origin("ftp://x")


def test_writes_beyond_loopback_need_a_token_and_exposure_warns(tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "s.diced")) as store:
        for host in ("0.0.0.0", "::", "192.0.2.1"):
            with pytest.raises(InvalidInputError, match="need a token"):
                ViewerServer(store, host, 0, allow_writes=True)
        # 192.0.2.1 (TEST-NET-1) is on no interface here: it warns, then cannot bind.
        with pytest.warns(ExposedServerWarning, match="every machine that can reach"), \
                pytest.raises(StorageError, match="cannot listen"):
            ViewerServer(store, "192.0.2.1", 0, allow_writes=True, token=TOKEN)
        with pytest.raises(InvalidInputError, match="16 characters"):
            ViewerServer(store, "127.0.0.1", 0, token="short")
        with pytest.raises(InvalidInputError, match="not a host name"):
            ViewerServer(store, "127.0.0.1", 0, allowed_hosts=["http://x/"])
    result = subprocess.run([sys.executable, "-c", "from diced.cli import main; main()",
                             "serve", str(tmp_path / "s.diced"), "--host", "192.0.2.1",
                             "--port", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "warning: the viewer listens on 192.0.2.1" in result.stderr
    assert "error: cannot listen" in result.stderr
    refused = subprocess.run([sys.executable, "-c", "from diced.cli import main; main()",
                              "serve", str(tmp_path / "s.diced"), "--host", "0.0.0.0",
                              "--allow-writes"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "need a token" in refused.stderr


def test_hosts_a_wildcard_bind_answers() -> None:
    """Bound to 0.0.0.0, any IP address and this machine's name work; other names do not."""
    policy = AccessPolicy.for_server("0.0.0.0", allowed_hosts=["data.example.org"])
    for host in ("192.168.1.5:8000", "[fe80::1]:8000", "127.0.0.1", "data.example.org",
                 f"{socket.gethostname()}:8000"):
        assert policy.host_allowed(host), host
    for host in ("attacker.example", "data.example.org.attacker.example", "", None):
        assert not policy.host_allowed(host), host
    loopback = AccessPolicy.for_server("127.0.0.1")
    assert not loopback.host_allowed("192.168.1.5")
    assert not loopback.host_allowed(socket.gethostname())


def test_allowed_host_behind_a_proxy(tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "s.diced")) as store:
        store.create_repo("r")
        node = store.open_repo("r").uuid
        with store.serve(port=0, allow_writes=True, allowed_hosts=["data.example.org"]) as h, \
                httpx.Client(base_url=h.url, timeout=30) as http:
            proxied = {"Host": "data.example.org"}
            assert http.get("/api/repos", headers=proxied).status_code == 200
            # A page of the proxied origin (https, default port) may write.
            locked = http.post(f"/api/node/{node}/lock", json={"message": "via proxy"},
                               headers={**proxied, "Origin": "https://data.example.org"})
            assert locked.status_code == 200, locked.text
            other = http.post(f"/api/node/{node}/branch", json={"message": "x"},
                              headers={**proxied, "Origin": "https://data.example.org:8443"})
            assert other.status_code == 403
