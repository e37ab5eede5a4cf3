"""jumdata (聚美智数) ID-photo check, ``POST {JUMDATA_URL}/id-phote/check``.

The request building and the response parsing are pure functions; the client only
adds the transport and the retry policy. The same vendor resells this check on the
Huawei Cloud marketplace (``services.providers.huawei``), with the same codes and
``data`` shape, so the code table and ``parse_check_answer`` serve both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import aiohttp

from services.errors import (
    ProviderAuthError,
    ProviderBudgetError,
    ProviderError,
    ProviderInputError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.i18n import N_
from services.images import CHECK_LIMITS_JUMDATA, ImageLimits, PreparedImage
from services.models import CheckResult, Measurements
from services.providers.base import CodeInfo, HttpReply, HttpTransport, with_retries
from services.rules import classify_reason
from services.signing import jumdata_sign
from services.values import integer

log = logging.getLogger(__name__)

CHECK_PATH = "/id-phote/check"  # sic: the vendor's spelling


# Every documented code of seeds 001 (jumdata) and 000 (Huawei resale): its failure
# family and the message that tells the user what to do next.
CODES: dict[int, CodeInfo] = {
    201: CodeInfo(ProviderInputError, N_("jumdata.photo_processing_failed")),
    202: CodeInfo(ProviderInputError, N_("jumdata.face_detection_failed")),
    203: CodeInfo(ProviderInputError, N_("jumdata.photo_not_found")),
    204: CodeInfo(ProviderInputError, N_("jumdata.photo_too_large_px")),
    205: CodeInfo(ProviderInputError, N_("jumdata.no_face")),
    206: CodeInfo(ProviderInputError, N_("jumdata.no_head")),
    207: CodeInfo(ProviderInputError, N_("jumdata.spec_not_found")),
    208: CodeInfo(ProviderInputError, N_("jumdata.content_violation")),
    209: CodeInfo(ProviderInputError, N_("jumdata.encoding_failed")),
    210: CodeInfo(ProviderInputError, N_("jumdata.unsuitable_photo")),
    400: CodeInfo(ProviderInputError, N_("jumdata.bad_request")),
    404: CodeInfo(ProviderAuthError, N_("jumdata.wrong_endpoint")),
    500: CodeInfo(ProviderUnavailableError, N_("jumdata.maintenance"), retry_safe=True),
    501: CodeInfo(ProviderUnavailableError, N_("jumdata.source_maintenance"), retry_safe=True),
    601: CodeInfo(ProviderAuthError, N_("jumdata.not_enabled")),
    602: CodeInfo(ProviderAuthError, N_("jumdata.account_disabled")),
    603: CodeInfo(ProviderBudgetError, N_("jumdata.balance")),
    604: CodeInfo(ProviderAuthError, N_("jumdata.api_disabled")),
    606: CodeInfo(ProviderRateLimitError, N_("jumdata.over_limit")),
    607: CodeInfo(ProviderAuthError, N_("jumdata.ip_not_allowed")),
    609: CodeInfo(ProviderRateLimitError, N_("jumdata.too_frequent"), retry_safe=True),
    610: CodeInfo(ProviderUnavailableError, N_("jumdata.request_expired"), retry_safe=True),
    999: CodeInfo(ProviderUnavailableError, N_("jumdata.other")),
}

# A 400 about the credentials (not the photo) is the operator's to fix.
_CREDENTIAL_HINTS = ("签名", "sign", "appid", "appId", "timestamp", "时间戳")
_AUTH_400 = N_("jumdata.bad_credentials")
_UNKNOWN_CODE = N_("provider.unknown_code")
_MALFORMED = N_("provider.malformed")


def error_for_code(
    provider: str, code: int, msg: str | None, *, charged: bool, task_no: str | None
) -> ProviderError:
    info = CODES.get(code)
    if info is None:
        return ProviderUnavailableError(
            provider,
            code=code,
            provider_msg=msg,
            message_id=_UNKNOWN_CODE,
            charged=charged,
            task_no=task_no,
        )
    if code == 400 and msg and any(hint.lower() in msg.lower() for hint in _CREDENTIAL_HINTS):
        return ProviderAuthError(
            provider,
            code=code,
            provider_msg=msg,
            message_id=_AUTH_400,
            charged=charged,
            task_no=task_no,
        )
    return info.family(
        provider,
        code=code,
        provider_msg=msg,
        message_id=info.message_id,
        charged=charged,
        task_no=task_no,
        retry_safe=info.retry_safe,
    )


def parse_check_answer(
    provider: str, reply: HttpReply, *, charge_field: bool = True
) -> CheckResult:
    """Turn the HTTP answer into a ``CheckResult`` or raise the matching ``ProviderError``.

    ``charge_field`` is False for the Huawei resale, whose answers carry no ``charge``:
    there a code-200 answer is the billed one.
    """
    body = reply.json()
    if not isinstance(body, Mapping):
        retry_safe = reply.status in (502, 503, 504)
        raise ProviderUnavailableError(
            provider,
            code=f"http_{reply.status}" if reply.status != 200 else "malformed",
            message_id=_MALFORMED if reply.status == 200 else None,
            retry_safe=retry_safe,
        )
    code = integer(body.get("code"))
    msg = body.get("msg") if isinstance(body.get("msg"), str) else None
    task_no = str(body["taskNo"]) if body.get("taskNo") is not None else None
    if charge_field:
        charged = body.get("charge") is True
    else:
        charged = code == 200
    if code is None:
        raise ProviderUnavailableError(
            provider,
            code="malformed",
            provider_msg=msg,
            message_id=_MALFORMED,
            charged=charged,
            task_no=task_no,
        )
    if code != 200:
        if msg:
            log.info("%s answered code %s: %s (task %s)", provider, code, msg, task_no)
        raise error_for_code(provider, code, msg, charged=charged, task_no=task_no)
    data = body.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("pass"), bool):
        raise ProviderUnavailableError(
            provider,
            code="malformed",
            provider_msg=msg,
            message_id=_MALFORMED,
            charged=charged,
            task_no=task_no,
        )
    raw_reasons = data.get("reasons") or []
    reasons = tuple(
        classify_reason(text) for text in raw_reasons if isinstance(text, str) and text.strip()
    )
    return CheckResult(
        passed=data["pass"],
        reasons=reasons,
        measurements=Measurements.from_provider(data.get("detect_result")),
        provider=provider,
        charged=charged,
        task_no=task_no,
    )


def build_check_form(
    image: PreparedImage, app_id: str, app_secret: str, timestamp_ms: int
) -> aiohttp.FormData:
    """Multipart form: signed credentials and the photo as ``file``, the preferred field."""
    form = aiohttp.FormData()
    form.add_field("appId", app_id)
    form.add_field("timestamp", str(timestamp_ms))
    form.add_field("sign", jumdata_sign(app_id, app_secret, timestamp_ms))
    form.add_field("file", image.data, filename=image.file_name, content_type=image.mime_type)
    return form


class JumdataClient:
    """What every jumdata endpoint shares: the credentials, the clock, the session."""

    name = "jumdata"
    available = True
    path = ""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        base_url: str,
        timeout: float,
        *,
        clock: Callable[[], float] = time.time,
        transport: HttpTransport | None = None,
    ) -> None:
        """``transport``: the session shared with the other jumdata client, if any."""
        self._app_id = app_id
        self._app_secret = app_secret
        self._url = base_url.rstrip("/") + self.path
        self._clock = clock
        self._http = transport or HttpTransport(self.name, timeout)

    def _timestamp_ms(self) -> int:
        return int(self._clock() * 1000)

    async def close(self) -> None:
        await self._http.close()


class JumdataChecker(JumdataClient):
    """The jumdata ID-photo check with bounded retries on faults that are safe to repeat."""

    path = CHECK_PATH
    limits: ImageLimits = CHECK_LIMITS_JUMDATA

    async def check(self, image: PreparedImage) -> CheckResult:
        async def attempt() -> CheckResult:
            # Signed afresh on every attempt: a retry after 610 needs a new timestamp.
            form = build_check_form(image, self._app_id, self._app_secret, self._timestamp_ms())
            reply = await self._http.post(self._url, data=form)
            return parse_check_answer(self.name, reply)

        return await with_retries(self.name, "check", attempt)
