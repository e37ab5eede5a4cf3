"""services.providers.http: the multipart body a real server reads, bodies that are not JSON,
and the call loop that re-signs every attempt and retries only what cannot have charged."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.errors import (
    ProviderError,
    ProviderInputError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.models import Usage
from services.providers.answers import read_object
from services.providers.http import (
    CloudClient,
    FilePart,
    HttpFaults,
    HttpReply,
    HttpRequest,
    HttpTransport,
    longest_call,
    multipart_form,
)

PHOTO = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"


async def read_with_aiohttp(body: bytes, headers: dict[str, str]) -> list[tuple[str, Any]]:
    """What aiohttp's own server-side multipart reader makes of the body."""
    seen: list[tuple[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        reader = await request.multipart()
        async for part in reader:
            assert not isinstance(part, type(reader))
            content = await part.read()
            seen.append((part.name or "", (part.filename, part.headers["Content-Type"], content)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/", data=body, headers=headers)
        assert response.status == 200
    return seen


async def test_a_server_reads_the_multipart_form_in_order() -> None:
    body, headers = multipart_form(
        [
            ("appId", "app"),
            ("timestamp", "1700000000000"),
            ("file", FilePart("photo.jpg", "image/jpeg", PHOTO)),
            ("faceField", "landmark,quality"),
        ]
    )
    parts = await read_with_aiohttp(body, headers)
    assert [name for name, _ in parts] == ["appId", "timestamp", "file", "faceField"]
    assert parts[0][1] == (None, "text/plain; charset=utf-8", b"app")
    assert parts[2][1] == ("photo.jpg", "image/jpeg", PHOTO)
    assert parts[3][1][2] == b"landmark,quality"


def test_header_values_that_would_break_a_part_are_refused() -> None:
    with pytest.raises(ValueError):
        multipart_form([('na"me', "x")])
    with pytest.raises(ValueError):
        multipart_form([("file", FilePart("a\r\nb.jpg", "image/jpeg", b""))])


FAULTS = HttpFaults(throttled="x.throttled", server="x.fault", other="x.other")


@pytest.mark.parametrize(
    ("status", "family", "message_id", "retry_safe", "unknown"),
    [
        # The API answered: it ran and may have billed, whatever came back.
        (200, ProviderUnavailableError, "provider.malformed", False, True),
        (429, ProviderRateLimitError, "x.throttled", True, False),
        (502, ProviderUnavailableError, "x.fault", True, False),
        (503, ProviderUnavailableError, "x.fault", True, False),
        (504, ProviderUnavailableError, "x.fault", False, True),  # it may have passed it on
        (500, ProviderUnavailableError, "x.fault", False, True),
        (404, ProviderUnavailableError, "x.other", False, False),
    ],
)
@pytest.mark.parametrize("body", [b"<html>proxy</html>", b'{"code": 200, "da'], ids=["page", "cut"])
def test_a_body_that_is_not_json(
    status: int,
    family: type[ProviderError],
    message_id: str,
    retry_safe: bool,
    unknown: bool,
    body: bytes,
) -> None:
    with pytest.raises(ProviderError) as caught:
        read_object("x", HttpReply(status, body), FAULTS)
    error = caught.value
    assert type(error) is family and error.message_id == message_id
    assert error.retry_safe is retry_safe and not error.charged
    assert error.unknown is unknown
    assert error.code == ("malformed" if status == 200 else f"http_{status}")


class Scripted(CloudClient):
    name = "x"

    def __init__(self, failures: list[ProviderError]) -> None:
        super().__init__(1)
        self.failures = failures
        self.built: list[int] = []

    async def run(self) -> str:
        async def post(request: HttpRequest) -> HttpReply:
            return HttpReply(200, request.body)

        self._http.post = post  # type: ignore[method-assign]

        def build() -> HttpRequest:
            self.built.append(len(self.built))
            return HttpRequest("http://x/", str(len(self.built)).encode(), {})

        def parse(reply: HttpReply) -> str:
            if self.failures:
                raise self.failures.pop(0)
            return reply.body.decode()

        return await self.call("check", build, parse)


async def test_each_attempt_is_built_afresh_and_only_safe_failures_repeat(monkeypatch) -> None:
    async def no_wait(attempt: int) -> None:
        return None

    monkeypatch.setattr("services.providers.http.backoff", no_wait)
    unsent = ProviderUnavailableError("x", code="network", retry_safe=True)
    client = Scripted([unsent, unsent])
    assert await client.run() == "3"  # the third request, signed anew, answered
    assert client.built == [0, 1, 2]

    client = Scripted([unsent, unsent, unsent])
    with pytest.raises(ProviderUnavailableError):
        await client.run()
    assert len(client.built) == 3  # bounded

    client = Scripted([ProviderInputError("x", code=205)])
    with pytest.raises(ProviderInputError):
        await client.run()
    assert client.built == [0]  # the provider looked at the photo: never again


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_answer_over_the_cap_is_refused_unread(declared: bool) -> None:
    """A provider (or a proxy) sending hundreds of MB was read whole: 865 MB of memory."""
    sent = 0
    chunk = b"x" * (1024 * 1024)
    total = 128 * len(chunk)

    async def huge(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse()
        if declared:
            response.content_length = total
        await response.prepare(request)
        try:
            while sent < total:
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away: what the cap is for
        return response

    async def small(request: web.Request) -> web.Response:
        return web.json_response({"code": 200, "data": "y" * 1000})

    app = web.Application()
    app.router.add_post("/huge", huge)
    app.router.add_post("/small", small)
    async with TestServer(app) as server:
        transport = HttpTransport("jumdata", timeout=30)
        try:
            ok = await transport.post(HttpRequest(str(server.make_url("/small")), b"{}", {}))
            assert ok.status == 200 and len(ok.body) > 1000
            with pytest.raises(ProviderUnavailableError) as caught:
                await transport.post(HttpRequest(str(server.make_url("/huge")), b"{}", {}))
        finally:
            await transport.close()
    assert caught.value.code == "too_big" and caught.value.message_id == "provider.malformed"
    assert caught.value.retry_safe is False  # the call was made: it may have been billed
    assert caught.value.unknown and not caught.value.charged
    # The rest was never read (what was sent went into socket buffers): over the cap
    # declared, nothing was; streamed, the reading stopped at the cap.
    assert sent < total // 2


async def test_a_request_sent_and_never_answered_has_an_unknown_outcome() -> None:
    """The provider got the request and may have billed it: not "not charged"."""
    release = asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/", hang)
    async with TestServer(app) as server:
        transport = HttpTransport("jdcloud", timeout=0.3)
        try:
            with pytest.raises(ProviderUnavailableError) as caught:
                await transport.post(HttpRequest(str(server.make_url("/")), b"{}", {}))
        finally:
            release.set()
            await transport.close()
    error = caught.value
    assert (error.code, error.unknown, error.charged, error.retry_safe) == (
        "timeout",
        True,
        False,
        False,
    )


async def test_a_request_never_sent_is_certainly_not_charged() -> None:
    with socket.socket() as listener:  # a port nobody listens on once closed
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    transport = HttpTransport("jdcloud", timeout=5)
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            await transport.post(HttpRequest(f"http://127.0.0.1:{port}/", b"{}", {}))
    finally:
        await transport.close()
    error = caught.value
    assert (error.code, error.unknown, error.charged, error.retry_safe) == (
        "network",
        False,
        False,
        True,
    )


def test_an_unknown_outcome_is_never_retried() -> None:
    unknown = Usage(charged=False, unknown=True)
    assert not ProviderUnavailableError(
        "x", code="timeout", usage=unknown, retry_safe=True
    ).retry_safe


def test_the_longest_call_counts_every_attempt_and_the_waits() -> None:
    assert longest_call(15) == 15 * 3 + 0.5 + 1.0
    assert longest_call(10, attempts=1) == 10
