"""What the cloud clients share: the request and reply types, one transport, one call loop.

A vendor module is pure functions that build an ``HttpRequest`` (bytes and headers,
signed) and read an ``HttpReply`` into a typed result or a typed error; its client
subclasses ``CloudClient`` and hands both to ``call``, which signs each attempt afresh,
posts, parses and retries only where the provider cannot have charged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import aiohttp

from services.errors import (
    MALFORMED,
    BudgetEffect,
    ProviderError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.models import Usage

log = logging.getLogger(__name__)
R = TypeVar("R")

MAX_ATTEMPTS: Final = 3
# The most of an answer read: far above any documented one (jumdata's detect with 120 faces
# is under 100 KB); a larger body is not read on, so it cannot take the process's memory.
MAX_REPLY_BYTES: Final = 8 * 1024 * 1024
# A gateway that answers 502 or 503 did not pass the call on; a 504 may have.
RETRY_SAFE_HTTP: Final = frozenset({502, 503})
_MAYBE_BILLED: Final = Usage(charged=False, unknown=True)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpFaults:
    """A vendor's messages for a body that is not its JSON, by HTTP status."""

    throttled: str | None = None  # 429; None: read like any other status
    server: str | None = None  # 5xx; None: the family's own message
    other: str | None = None  # any other non-200 status


def status_error(provider: str, status: int, faults: HttpFaults) -> ProviderError:
    """The error for an answer whose body is not the vendor's (a proxy page, a cut-off
    body), by HTTP status alone.

    At 200, and at a 5xx other than a gateway's 502 or 503, the API ran or may have run,
    and so may have billed: the outcome is unknown, as for a request never answered.
    """
    if status == 200:
        return MALFORMED.error(provider, "malformed", usage=_MAYBE_BILLED)
    code = f"http_{status}"
    if status == 429 and faults.throttled is not None:
        return ProviderRateLimitError(
            provider,
            code=code,
            message_id=faults.throttled,
            retry_safe=True,
            budget=BudgetEffect.BACK_OFF,
        )
    if status in RETRY_SAFE_HTTP:
        return ProviderUnavailableError(
            provider, code=code, message_id=faults.server, retry_safe=True
        )
    if status >= 500:
        return ProviderUnavailableError(
            provider, code=code, message_id=faults.server, usage=_MAYBE_BILLED
        )
    return ProviderUnavailableError(provider, code=code, message_id=faults.other)


@dataclass(frozen=True, slots=True)
class FilePart:
    file_name: str
    mime_type: str
    data: bytes


def multipart_form(parts: Sequence[tuple[str, str | FilePart]]) -> tuple[bytes, dict[str, str]]:
    """A ``multipart/form-data`` body of text fields and files, in order, and its headers."""
    boundary = secrets.token_hex(16)
    chunks: list[bytes] = []
    for name, value in parts:
        if isinstance(value, FilePart):
            _header_safe(name, value.file_name, value.mime_type)
            head = (
                f'Content-Disposition: form-data; name="{name}"; filename="{value.file_name}"\r\n'
                f"Content-Type: {value.mime_type}"
            )
            data = value.data
        else:
            _header_safe(name)
            head = (
                f'Content-Disposition: form-data; name="{name}"\r\n'
                "Content-Type: text/plain; charset=utf-8"
            )
            data = value.encode("utf-8")
        chunks.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _header_safe(*values: str) -> None:
    """Names go into part headers unquoted: they are ours, never a user's, and plain."""
    for value in values:
        if any(c in value for c in '"\r\n'):
            raise ValueError(f"not usable in a part header: {value!r}")


class HttpTransport:
    """One ``aiohttp.ClientSession`` per provider, created on first use, a timeout on every call.

    Transport faults become ``ProviderUnavailableError``, marked ``retry_safe`` only
    when the request cannot have reached the provider (and so cannot have been charged).
    A request that was sent and got no answer we read (a timeout, a dropped connection,
    an answer over the cap) has an unknown outcome (``Usage.unknown``): the provider may
    have billed it.
    """

    def __init__(self, provider: str, timeout: float) -> None:
        self.provider = provider
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                headers={"User-Agent": "facecheck-bot"},
                raise_for_status=False,
            )
        return self._session

    async def post(self, request: HttpRequest) -> HttpReply:
        session = self._get_session()
        try:
            async with session.post(
                request.url, data=request.body, headers=dict(request.headers)
            ) as response:
                return HttpReply(status=response.status, body=await self._read(response))
        except aiohttp.ClientConnectorError as error:
            # The connection was never made: nothing can have been processed or charged.
            raise self._unavailable("network", error, sent=False) from None
        except TimeoutError as error:
            raise self._unavailable("timeout", error, sent=True) from None
        except aiohttp.ClientError as error:
            raise self._unavailable("network", error, sent=True) from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, up to ``MAX_REPLY_BYTES``; a larger one is refused unread (the call was
        made, so it is not repeated)."""
        declared = response.content_length
        if declared is not None and declared > MAX_REPLY_BYTES:
            raise self._too_big(declared)
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > MAX_REPLY_BYTES:
                raise self._too_big(len(body))
        return bytes(body)

    def _too_big(self, size: int) -> ProviderError:
        return ProviderUnavailableError(
            self.provider,
            code="too_big",
            message_id=MALFORMED.message_id,
            usage=_MAYBE_BILLED,
            detail=f"{self.provider}: an answer of {size} bytes or more, over {MAX_REPLY_BYTES}",
        )

    def _unavailable(self, code: str, error: BaseException, *, sent: bool) -> ProviderError:
        return ProviderUnavailableError(
            self.provider,
            code=code,
            usage=Usage(charged=False, unknown=sent),
            retry_safe=not sent,
            detail=f"{self.provider}: {code}: {type(error).__name__}",
        )

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector finish closing its transports before the loop goes away.
            await asyncio.sleep(0)


def backoff_delay(attempt: int) -> float:
    """Short, bounded waits between retries: 0.5 s, 1 s, ... capped at 3 s."""
    return min(0.5 * 2.0**attempt, 3.0)


async def backoff(attempt: int) -> None:
    await asyncio.sleep(backoff_delay(attempt))


def longest_call(timeout: float, attempts: int = MAX_ATTEMPTS) -> float:
    """The most seconds ``CloudClient.call`` can take: every attempt used to its timeout,
    with the waits between them. A reservation must outlive it."""
    return timeout * attempts + sum(backoff_delay(attempt) for attempt in range(attempts - 1))


class CloudClient:
    """A provider reached over HTTP: one transport, and ``call`` around every request."""

    name: str

    def __init__(self, timeout: float, *, transport: HttpTransport | None = None) -> None:
        """``transport``: a session shared with another client of the same vendor."""
        self._http = transport or HttpTransport(self.name, timeout)

    async def call(
        self,
        operation: str,
        build: Callable[[], HttpRequest],
        parse: Callable[[HttpReply], R],
        attempts: int = MAX_ATTEMPTS,
    ) -> R:
        """Build (and so sign) each attempt afresh, post it and parse the answer.

        A failure is repeated only when the provider certainly did not charge for it, so a
        retry never reuses a stale timestamp or nonce and never bills twice.
        """
        for attempt in range(attempts):
            try:
                return parse(await self._http.post(build()))
            except ProviderError as error:
                if not error.retry_safe or attempt + 1 >= attempts:
                    raise
                log.warning(
                    "%s %s attempt %d failed (code %s); retrying",
                    self.name,
                    operation,
                    attempt + 1,
                    error.code,
                )
                await backoff(attempt)
        raise AssertionError("attempts must be at least 1")

    async def close(self) -> None:
        await self._http.close()
