"""DVID keyvalue instances over a version's files: ``/api/node/{uuid}/{instance}/key/...``.

Instance ``.files`` holds every file of the version, under its own name. Any other instance
name ``N`` (that is not an array) holds the files named ``N/KEY``, as key ``KEY``; it exists
once it holds a key (``POST /api/repo/{uuid}/instance`` with ``typename: keyvalue`` is
accepted and changes nothing). Endpoints and shapes follow DVID's keyvalue help text:
``keys``, ``keyrange``, ``keyrangevalues`` and ``keyvalues`` (protobuf by default, ``json``,
``tar``), and ``key`` with GET, HEAD, POST and DELETE (writes need ``--allow-writes``).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diced.errors import NotFoundError
from diced.repo import DicedRepo
from diced_viewer._errors import ApiError, WritesDisabled
from diced_viewer._limits import budget, hold, read_body
from diced_viewer._repos import repo_at, writes_allowed
from diced_viewer._security import media_type

__all__ = [
    "FILES_INSTANCE",
    "MAX_VALUE_BYTES",
    "decode_key_values",
    "decode_keys",
    "encode_key_values",
    "keyvalue_instances",
    "keyvalue_routes",
]

#: The keyvalue instance holding every file of a version.
FILES_INSTANCE = ".files"
#: Largest value a POST stores, and largest batch a keyvalues POST sends, in bytes.
MAX_VALUE_BYTES = 256 * 2**20
#: Most keys one keyvalues/keyrangevalues response carries.
MAX_KEYS = 100_000
_INSTANCE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_OCTETS = "application/octet-stream"


# -- protobuf (DVID's KeyValues and Keys messages; a few lines, not a dependency) ------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fields(data: bytes) -> Iterable[tuple[int, bytes | int]]:
    """``(field number, bytes or int)`` of a protobuf message; :class:`ApiError` if malformed."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            if pos >= len(data) or shift > 63:
                raise ApiError("the protobuf body is truncated or malformed")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            size = varint()
            if pos + size > len(data):
                raise ApiError("the protobuf body is truncated or malformed")
            yield number, data[pos:pos + size]
            pos += size
        else:
            raise ApiError(f"the protobuf body has an unsupported wire type {wire}")


def encode_key_values(pairs: Iterable[tuple[str, bytes]]) -> bytes:
    """DVID's ``KeyValues`` message: ``repeated KeyValue kvs = 1`` (``key = 1``, ``value = 2``)."""
    return b"".join(_field(1, _field(1, k.encode()) + _field(2, v)) for k, v in pairs)


def decode_key_values(data: bytes) -> list[tuple[str, bytes]]:
    """The ``(key, value)`` pairs of a ``KeyValues`` message."""
    out = []
    for number, kv in _fields(data):
        if number != 1 or not isinstance(kv, bytes):
            continue
        key, value = "", b""
        for inner, payload in _fields(kv):
            if inner == 1 and isinstance(payload, bytes):
                key = payload.decode("utf-8", "replace")
            elif inner == 2 and isinstance(payload, bytes):
                value = payload
        out.append((key, value))
    return out


def decode_keys(data: bytes) -> list[tuple[str, int | None, int | None]]:
    """``(key, byte_start, byte_end)`` of a ``Keys`` message (``keys = 1``, ``key_ranges = 2``)."""
    whole, ranged = [], []
    for number, payload in _fields(data):
        if number == 1 and isinstance(payload, bytes):
            whole.append((payload.decode("utf-8", "replace"), None, None))
        elif number == 2 and isinstance(payload, bytes):
            found: dict[int, Any] = dict(_fields(payload))
            key = found.get(1, b"")
            ranged.append((key.decode("utf-8", "replace") if isinstance(key, bytes) else "",
                           found.get(2, 0), found.get(3, 0)))
    return whole + ranged


# -- instances and keys ------------------------------------------------------------------------


def keyvalue_instances(files: Iterable[str]) -> list[str]:
    """The keyvalue instances a version's ``files`` make: ``.files`` and each ``N/`` prefix."""
    names = list(files)
    prefixes = {n.split("/", 1)[0] for n in names if "/" in n}
    return ([FILES_INSTANCE] if names else []) + sorted(p for p in prefixes
                                                        if _INSTANCE.match(p))


def _file_name(instance: str, key: str) -> str:
    return key if instance == FILES_INSTANCE else f"{instance}/{key}"


def _instance(request: Request) -> tuple[DicedRepo, str]:
    """The repo at the requested version, and the keyvalue instance the request names."""
    repo = repo_at(request, request.path_params["uuid"])
    instance = request.path_params["instance"]
    if instance != FILES_INSTANCE and not _INSTANCE.match(instance):
        raise NotFoundError(f"no keyvalue instance {instance[:80]!r}")
    if instance != FILES_INSTANCE and instance in dict(repo.list_instances()):
        raise ApiError(f"{instance!r} is an array, not a keyvalue instance: use its raw "
                       "endpoints, or keys of .files")
    return repo, instance


def _keys(repo: DicedRepo, instance: str) -> list[str]:
    files = repo.list_files()
    if instance == FILES_INSTANCE:
        return files
    prefix = instance + "/"
    return sorted(f[len(prefix):] for f in files if f.startswith(prefix))


def _read(repo: DicedRepo, instance: str, key: str) -> bytes | None:
    try:
        return repo.download_filedata(_file_name(instance, key))
    except NotFoundError:
        return None


def keys(request: Request) -> Response:
    repo, instance = _instance(request)
    return JSONResponse(_keys(repo, instance))


def _in_range(request: Request) -> tuple[DicedRepo, str, list[str]]:
    repo, instance = _instance(request)
    low, high = request.path_params["key1"], request.path_params["key2"]
    found = [k for k in _keys(repo, instance) if low <= k <= high]
    if len(found) > MAX_KEYS:
        raise ApiError(f"{len(found)} keys are in that range; ask for at most {MAX_KEYS} at once",
                       413)
    return repo, instance, found


def key_range(request: Request) -> Response:
    return JSONResponse(_in_range(request)[2])


def _values_response(request: Request, pairs: list[tuple[str, bytes | None]]) -> Response:
    """``pairs`` as DVID's JSON (``json=true``), tar (``tar``/``jsontar``) or protobuf."""
    query = request.query_params
    if query.get("json", "").lower() in ("true", "1"):
        out: dict[str, Any] = {}
        for key, value in pairs:
            try:
                out[key] = json.loads(value) if value is not None else {}
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise ApiError(f"the value of key {key!r} is not JSON; ask without json=true"
                               ) from exc
        return JSONResponse(out)
    if query.get("tar", "").lower() in ("true", "1") or "jsontar" in query:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for key, value in pairs:
                info = tarfile.TarInfo(key)
                info.size = len(value or b"")
                tar.addfile(info, io.BytesIO(value or b""))
        return Response(buffer.getvalue(), media_type="application/tar")
    return Response(encode_key_values((k, v or b"") for k, v in pairs), media_type=_OCTETS)


async def key_range_values(request: Request) -> Response:
    def read() -> Response:
        repo, instance, found = _in_range(request)
        return _values_response(request, [(k, _read(repo, instance, k)) for k in found])

    response = await run_in_threadpool(read)
    return await hold(request, len(response.body), "these values", response)


async def _requested_keys(request: Request) -> list[tuple[str, int | None, int | None]]:
    """The keys a ``GET keyvalues`` body asks for: a ``Keys`` message, or JSON."""
    body = bytes(await read_body(request, limit=16 * 2**20,
                                 expect=media_type(request.headers.get("content-type"))
                                 or _OCTETS))
    query = request.query_params
    if query.get("json", "").lower() in ("true", "1") or "jsontar" in query \
            or query.get("tar", "").lower() in ("true", "1"):
        try:
            items = json.loads(body or b"[]")
        except (ValueError, RecursionError) as exc:
            raise ApiError(f"Malformed JSON request in body: {exc}") from exc
        if not isinstance(items, list):
            raise ApiError("the body must be a JSON array of keys")
        out: list[tuple[str, int | None, int | None]] = []
        for item in items:
            if isinstance(item, str):
                out.append((item, None, None))
            elif isinstance(item, dict) and isinstance(item.get("key"), str):
                start, end = item.get("byte_start"), item.get("byte_end")
                if (start is None) != (end is None):
                    raise ApiError("give both byte_start and byte_end, or neither")
                out.append((item["key"], start, end))
            else:
                raise ApiError("each key is a string or {\"key\": ..., \"byte_start\": ..., "
                               "\"byte_end\": ...}")
        return out
    return decode_keys(body)


async def get_key_values(request: Request) -> Response:
    wanted = await _requested_keys(request)
    if len(wanted) > MAX_KEYS:
        raise ApiError(f"ask for at most {MAX_KEYS} keys at once", 413)

    def read() -> Response:
        repo, instance = _instance(request)
        pairs: list[tuple[str, bytes | None]] = []
        for key, start, end in wanted:
            value = _read(repo, instance, key)
            if value is not None and start is not None and end is not None:
                value = value[start:end + 1]
            pairs.append((key, value))
        return _values_response(request, pairs)

    response = await run_in_threadpool(read)
    return await hold(request, len(response.body), "these values", response)


async def _body(request: Request, what: str) -> bytes:
    """A write's body, of any type (the access guard let only programs send other types)."""
    if not writes_allowed(request):
        raise WritesDisabled()
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else MAX_VALUE_BYTES
    async with await budget(request).acquire(min(size, MAX_VALUE_BYTES), what):
        return bytes(await read_body(request, limit=MAX_VALUE_BYTES,
                                     expect=media_type(request.headers.get("content-type"))
                                     or _OCTETS))


async def post_key_values(request: Request) -> Response:
    pairs = decode_key_values(await _body(request, "these values"))

    def write() -> None:
        repo, instance = _instance(request)
        for key, value in pairs:
            repo.upload_filedata(_file_name(instance, key), value)

    await run_in_threadpool(write)
    return Response(status_code=200)


async def key(request: Request) -> Response:
    key_name = request.path_params["key"]
    if request.method == "POST":
        value = await _body(request, "this value")

        def write() -> None:
            repo, instance = _instance(request)
            repo.upload_filedata(_file_name(instance, key_name), value)

        await run_in_threadpool(write)
        return Response(status_code=200)
    if request.method == "DELETE":
        if not writes_allowed(request):
            raise WritesDisabled()

        def delete() -> None:
            repo, instance = _instance(request)
            if _read(repo, instance, key_name) is not None:
                repo.delete_file(_file_name(instance, key_name))

        await run_in_threadpool(delete)
        return Response(status_code=200)

    def read() -> bytes:
        repo, instance = _instance(request)
        value = _read(repo, instance, key_name)
        if value is None:
            raise NotFoundError(f"key {key_name[:80]!r} not found")
        return value

    data = await run_in_threadpool(read)
    return await hold(request, len(data), "this value", Response(data, media_type=_OCTETS))


def keyvalue_routes() -> list[Route]:
    """Routes to mount *after* the viewer's own (which serve GET ``.files/keys`` and ``key``)."""
    base = "/api/node/{uuid}/{instance}"
    return [
        Route(base + "/keys", keys),
        Route(base + "/keyrange/{key1}/{key2}", key_range),
        Route(base + "/keyrangevalues/{key1}/{key2}", key_range_values),
        Route(base + "/keyvalues", get_key_values, methods=["GET"]),
        Route(base + "/keyvalues", post_key_values, methods=["POST"]),
        Route(base + "/key/{key:path}", key, methods=["GET", "HEAD", "POST", "DELETE"]),
    ]
