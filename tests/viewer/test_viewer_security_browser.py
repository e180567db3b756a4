"""Another web page in a real Chromium cannot drive the viewer; its own pages still can.

A page served from another origin (127.0.0.1 on another port, as any page a user has open)
fires every request a page can send without a CORS preflight at every write endpoint:
``no-cors`` fetches with text, form and multipart bodies, a beacon, and form submissions.
Playwright sees each request reach the server and be refused; every node's content is the
same afterwards.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _browser import launched, needs_chromium, new_page, open_page
from _viewer_data import Served, serve, snapshot

pytestmark = needs_chromium

TOKEN = "browser-token-0123456789"

# Every way a page may POST without a preflight, fired at one URL. Forms target their own
# iframe each, so no submission cancels another.
ATTACK_PAGE = """<!doctype html>
<html><body><h1>an innocent page</h1>
<script>
window.attack = (url, index) => {
  const json = '{"message": "intruder", "name": "intruder"}';
  const form = new URLSearchParams({message: "intruder", name: "intruder"});
  const multi = new FormData();
  multi.append("message", "intruder");
  const bytes = new Uint8Array(8).fill(255);
  const shots = [
    fetch(url, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                body: json}),
    fetch(url, {method: "POST", mode: "no-cors", body: form}),
    fetch(url, {method: "POST", mode: "no-cors", body: multi}),
    fetch(url, {method: "POST", mode: "no-cors", body: new Blob([bytes])}),
    fetch(url, {method: "POST", mode: "no-cors", body: bytes}),
    // Needs a preflight, which the server does not grant: the POST is never sent.
    fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: json}),
  ];
  navigator.sendBeacon(url, json);
  for (const [i, enctype] of ["text/plain", "application/x-www-form-urlencoded",
                              "multipart/form-data"].entries()) {
    const sink = document.createElement("iframe");
    sink.name = `sink-${index}-${i}`;
    document.body.append(sink);
    const f = document.createElement("form");
    f.method = "POST"; f.action = url; f.enctype = enctype; f.target = sink.name;
    const field = document.createElement("input");
    // The text/plain trick: name=value becomes {"message": "intruder", "x": "="}
    field.name = '{"message": "intruder", "x": "'; field.value = '"}';
    f.append(field);
    document.body.append(f);
    f.submit();
  }
  return Promise.allSettled(shots).then((r) => r.map((s) => s.status));
};
</script></body></html>
"""
#: POSTs per endpoint that reach the server: five no-cors fetches, a beacon, three forms.
REACHING = 9


class _AttackerSite:
    """A second web server on 127.0.0.1 (another port) serving :data:`ATTACK_PAGE`."""

    def __init__(self) -> None:
        page = ATTACK_PAGE.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _AttackerSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _write_endpoints(served: Served) -> list[str]:
    node = f"{served.url}/api/node"
    return [f"{node}/{served.v3}/lock", f"{node}/{served.root}/branch",
            f"{node}/{served.alt}/branch", f"{node}/{served.v3}/img/raw/0_1_2/2_2_2/0_0_0",
            f"{node}/{served.alt}/seg/raw/0_1_2/1_1_1/0_0_0"]


class _Wire:
    """Every request a page sends and the status the server answered, seen through the
    DevTools protocol (which, unlike the page, also sees the answers it may not read)."""

    def __init__(self, page: Any, origin: str) -> None:
        self.origin = origin
        self.sent: dict[str, tuple[str, str]] = {}
        self.status: dict[str, int] = {}
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.responseReceivedExtraInfo",
               lambda event: self.status.__setitem__(event["requestId"], event["statusCode"]))
        cdp.send("Network.enable")

    def _sent(self, event: dict[str, Any]) -> None:
        request = event["request"]
        if request["url"].startswith(self.origin):
            self.sent[event["requestId"]] = (request["method"], request["url"])

    def answered(self, method: str) -> list[tuple[str, int]]:
        return [(url, self.status[key]) for key, (m, url) in self.sent.items()
                if m == method and key in self.status]


def test_another_origin_cannot_change_anything(browser: Any, served_rw: Served) -> None:
    before = snapshot(served_rw.store)
    endpoints = _write_endpoints(served_rw)
    with _AttackerSite() as site, new_page(browser) as page:
        wire = _Wire(page, served_rw.url)
        page.goto(site.url)
        for index, url in enumerate(endpoints):
            outcomes = page.evaluate("([url, i]) => window.attack(url, i)", [url, index])
            # Each fetch fails in the page: the answers are refused to another site
            # (Cross-Origin-Resource-Policy), the preflighted one is never allowed.
            assert outcomes == ["rejected"] * 6
        deadline = time.monotonic() + 60
        while len(wire.answered("POST")) < REACHING * len(endpoints):
            assert time.monotonic() < deadline, f"not every request was answered: {wire.sent}"
            page.wait_for_timeout(100)
    posts = wire.answered("POST")
    assert sorted({url for url, _ in posts}) == sorted(endpoints)
    assert all(status in (403, 415) for _, status in posts), posts
    assert [status for _, status in wire.answered("OPTIONS")] == [405] * len(endpoints)
    assert snapshot(served_rw.store) == before


def test_a_rebinding_name_gets_no_answer(browser: Any, served: Served) -> None:
    """A page whose name resolves to 127.0.0.1 (DNS rebinding) is refused by Host."""
    rule = "--host-resolver-rules=MAP rebind.test 127.0.0.1"
    with launched(browser.browser_type, [rule]) as rebinding, new_page(rebinding) as page:
        port = served.server.port
        for path in ("/", "/api/repos", f"/zarr/em/{served.root}/zarr.json"):
            response = page.goto(f"http://rebind.test:{port}{path}")
            assert response.status == 421
            assert json.loads(response.body())["status"] == 421
        assert page.goto(f"http://localhost:{port}/api/repos").status == 200


@pytest.fixture
def with_token(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path / "store.diced", allow_writes=True, token=TOKEN)


def test_own_pages_write_with_the_token_and_not_without(browser: Any,
                                                        with_token: Served) -> None:
    node = f"#/repo/em/{with_token.v3}"
    with new_page(browser) as page:
        open_page(page, f"{with_token.url}/{node}")
        page.fill("#lock-message", "without the token")
        page.click("#lock-button")
        page.wait_for_selector("#lock-form .status.err")
        assert "token" in page.locator("#lock-form .status").inner_text()
    assert not with_token.store.open_repo(uuid=with_token.v3).locked
    with new_page(browser) as page:
        open_page(page, f"{with_token.url}/?token={TOKEN}{node}")
        assert "token" not in page.url  # kept in the tab, not in the address bar or history
        page.fill("#lock-message", "with the token")
        page.click("#lock-button")
        page.wait_for_selector("#branch-form")
        page.reload()  # the tab keeps the token across reloads
        page.wait_for_selector("body[data-ready]")
        page.fill("#branch-note", "next")
        page.fill("#branch-name", "tokened")
        page.click("#branch-button")
        page.wait_for_selector("#lock-form")
    repo = with_token.store.open_repo(uuid=with_token.v3)
    assert repo.locked and repo.node_record().lock_message == "with the token"
    assert any(n.branch == "tokened" for n in repo.list_nodes())
