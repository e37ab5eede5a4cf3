"""What every provider implements, and the small HTTP transport the cloud ones share."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp

from services.errors import ProviderError, ProviderUnavailableError
from services.faces import AnalyzeResult, CompareResult, CompareThresholds, DetectResult
from services.images import ImageLimits, PreparedImage
from services.models import CheckResult

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What a provider code means: its failure family, its message, whether a retry is safe."""

    family: type[ProviderError]
    message_id: str
    retry_safe: bool = False


class IdPhotoChecker(Protocol):
    """An ID-photo compliance check: the jumdata API, its Huawei resale, the local engine."""

    name: str
    limits: ImageLimits

    @property
    def available(self) -> bool: ...

    async def check(self, image: PreparedImage) -> CheckResult: ...

    async def close(self) -> None: ...


class FaceComparer(Protocol):
    """1:1 face compare: JD Cloud ``faceCompareV1`` or the local engine."""

    name: str
    limits: ImageLimits
    thresholds: CompareThresholds

    @property
    def available(self) -> bool: ...

    async def compare(self, a: PreparedImage, b: PreparedImage) -> CompareResult: ...

    async def close(self) -> None: ...


class FaceDetector(Protocol):
    """Every face in a photo: jumdata ``/face/detect`` or the local engine.

    ``limits_for`` exists because jumdata bounds both sides (1920x1080 either way).
    """

    name: str

    @property
    def available(self) -> bool: ...

    def limits_for(self, width: int, height: int) -> ImageLimits: ...

    async def detect(
        self, image: PreparedImage, *, max_faces: int = 120, attributes: bool = False
    ) -> DetectResult: ...

    async def close(self) -> None: ...


class FaceAnalyzer(Protocol):
    """Per-face attributes: JD Cloud ``facePropV1`` or the local engine."""

    name: str
    limits: ImageLimits

    @property
    def available(self) -> bool: ...

    async def analyze(self, image: PreparedImage, *, max_faces: int = 5) -> AnalyzeResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes

    def json(self) -> Any:
        """The decoded body, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class HttpTransport:
    """One ``aiohttp.ClientSession`` per provider, created on first use, a timeout on every call.

    Transport faults become ``ProviderUnavailableError``, marked ``retry_safe`` only
    when the request cannot have reached the provider (and so cannot have been charged).
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

    async def post(
        self, url: str, *, data: Any, headers: dict[str, str] | None = None
    ) -> HttpReply:
        session = self._get_session()
        try:
            async with session.post(url, data=data, headers=headers) as response:
                body = await response.read()
                return HttpReply(status=response.status, body=body)
        except aiohttp.ClientConnectorError as error:
            # The connection was never made: nothing can have been processed or charged.
            raise _unavailable(self.provider, "network", error, sent=False) from None
        except TimeoutError as error:
            raise _unavailable(self.provider, "timeout", error, sent=True) from None
        except aiohttp.ClientError as error:
            raise _unavailable(self.provider, "network", error, sent=True) from None

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector finish closing its transports before the loop goes away.
            await asyncio.sleep(0)


def _unavailable(
    provider: str, code: str, error: BaseException, *, sent: bool
) -> ProviderUnavailableError:
    return ProviderUnavailableError(
        provider,
        code=code,
        retry_safe=not sent,
        detail=f"{provider}: {code}: {type(error).__name__}",
    )


async def backoff(attempt: int, retry_after: float | None = None) -> None:
    """Short, bounded waits between retries: 0.5 s, 1 s, ... capped at 3 s."""
    delay = retry_after if retry_after is not None else 0.5 * (2**attempt)
    await asyncio.sleep(min(delay, 3.0))


async def with_retries(
    provider: str, operation: str, call: Callable[[], Awaitable[T]], attempts: int = MAX_ATTEMPTS
) -> T:
    """Repeat ``call`` only after failures the provider certainly did not charge for.

    ``call`` builds and signs its request each time, so a retry never reuses a stale
    timestamp or nonce.
    """
    for attempt in range(attempts):
        try:
            return await call()
        except ProviderError as error:
            if not error.retry_safe or error.charged or attempt + 1 >= attempts:
                raise
            log.warning(
                "%s %s attempt %d failed (code %s); retrying",
                provider,
                operation,
                attempt + 1,
                error.code,
            )
            await backoff(attempt, error.retry_after)
    raise AssertionError("attempts must be at least 1")
