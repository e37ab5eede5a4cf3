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
from dataclasses import dataclass
from typing import Any, Final

from services.errors import (
    MALFORMED,
    UNKNOWN_CODE,
    BudgetEffect,
    CodeInfo,
    ProviderAuthError,
    ProviderBudgetError,
    ProviderError,
    ProviderInputError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.i18n import N_
from services.images import CHECK_LIMITS_JUMDATA, ImageLimits, PreparedImage
from services.models import DETECT_FIELD_UNITS, CheckResult, Measurements, Unit, Usage
from services.providers.answers import (
    Conflict,
    Unreadable,
    label,
    numbers,
    read_object,
    said_charged,
    short_text,
)
from services.providers.base import Checker
from services.providers.http import (
    RETRY_SAFE_HTTP,
    CloudClient,
    FilePart,
    HttpFaults,
    HttpReply,
    HttpRequest,
    HttpTransport,
    multipart_form,
    status_error,
)
from services.rules import classify_reason, evaluate
from services.signing import jumdata_sign
from services.values import integer

log = logging.getLogger(__name__)

CHECK_PATH = "/id-phote/check"  # sic: the vendor's spelling


# Every documented code of the check (jumdata's own and its Huawei resale): its failure
# family, the message that tells the user what to do next, and what it means for the
# account (603 spends it until an operator tops up; 606 and 609 ask us to slow down).
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
    603: CodeInfo(
        ProviderBudgetError, N_("jumdata.balance"), budget=BudgetEffect.SPENT_UNTIL_CLEARED
    ),
    604: CodeInfo(ProviderAuthError, N_("jumdata.api_disabled")),
    606: CodeInfo(
        ProviderRateLimitError, N_("jumdata.over_limit"), budget=BudgetEffect.BACK_OFF, backoff=60
    ),
    607: CodeInfo(ProviderAuthError, N_("jumdata.ip_not_allowed")),
    609: CodeInfo(
        ProviderRateLimitError,
        N_("jumdata.too_frequent"),
        retry_safe=True,
        budget=BudgetEffect.BACK_OFF,
        backoff=10,
    ),
    610: CodeInfo(ProviderUnavailableError, N_("jumdata.request_expired"), retry_safe=True),
    999: CodeInfo(ProviderUnavailableError, N_("jumdata.other")),
}

# A 400 about the credentials (not the photo) is the operator's to fix.
_CREDENTIAL_HINTS = ("签名", "sign", "appid", "appId", "timestamp", "时间戳")
AUTH_400 = CodeInfo(ProviderAuthError, N_("jumdata.bad_credentials"))
# A body that is not JSON: a proxy's page, a cut-off answer.
FAULTS: Final = HttpFaults()


def error_for_code(
    provider: str,
    code: int,
    msg: str | None,
    *,
    charged: bool,
    task_no: str | None,
    codes: Mapping[int, CodeInfo] = CODES,
) -> ProviderError:
    """The error for a code of ``codes`` (the check's own table by default)."""
    info = codes.get(code, UNKNOWN_CODE)
    if code == 400 and msg and any(hint.lower() in msg.lower() for hint in _CREDENTIAL_HINTS):
        info = AUTH_400
    return info.error(provider, code, msg=msg, usage=Usage(charged=charged, task_no=task_no))


@dataclass(frozen=True, slots=True)
class Answer:
    """The envelope every jumdata answer shares: ``code``, ``msg``, ``taskNo``, ``charge``."""

    provider: str
    code: int | None
    msg: str | None
    usage: Usage
    data: Any

    def malformed(self) -> ProviderError:
        return MALFORMED.error(self.provider, "malformed", msg=self.msg, usage=self.usage)


def read_answer(
    provider: str,
    reply: HttpReply,
    *,
    charge_field: bool = True,
    codes: Mapping[int, CodeInfo] = CODES,
) -> Answer:
    """The envelope of a successful answer; raises the error ``codes`` gives any other
    code, and for a body that is not a JSON object.

    ``charge_field`` is False for the Huawei resale, whose answers carry no ``charge``:
    there a code-200 answer is the billed one.
    """
    body = read_object(provider, reply, FAULTS)
    code = integer(body.get("code"))
    msg = short_text(body.get("msg"))
    charged = said_charged(body.get("charge")) if charge_field else code == 200
    task_no = _task_no(body.get("taskNo"))
    answer = Answer(provider, code, msg, Usage(charged=charged, task_no=task_no), body.get("data"))
    if code is None:
        if not charged:  # no vendor's envelope (a proxy's JSON): its status tells what it is
            raise status_error(provider, reply.status, FAULTS)
        raise answer.malformed()
    if code != 200:
        if msg:
            log.info("%s answered code %s: %s (task %s)", provider, code, msg, task_no)
        error = error_for_code(provider, code, msg, charged=charged, task_no=task_no, codes=codes)
        if reply.status != 200 and reply.status not in RETRY_SAFE_HTTP:
            # Behind a 504 (or another such status) the call may well have been done and
            # billed, whatever code the body says: never sent again.
            error.retry_safe = False
        raise error
    if isinstance(body.get("charge"), Conflict):  # charged or not: a result cannot say
        raise answer.malformed()
    return answer


def _task_no(value: Any) -> str | None:
    """``taskNo``, a string or a whole number; anything else is left out, not an error
    (it only names the call in logs)."""
    try:
        return label(value, "taskNo")
    except Unreadable:
        return None


# What a ``detect_result`` value can be, by unit: past these it is not a measurement.
# Ratios are not held to [0, 1]: the seed's own ``eyes_spacing`` is 150.
_RANGES: Final[Mapping[Unit, tuple[float, float]]] = {
    Unit.SCORE: (0.0, 100.0),
    Unit.DEGREES: (-180.0, 180.0),
}
_ANY_RANGE: Final = (-1e9, 1e9)


def _measurable(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The documented ``detect_result`` fields whose numbers lie in their unit's range.

    A value out of range is left out, as ``Measurements`` leaves out a value of the wrong
    type: one odd field does not cost the user a charged answer, nor reaches the picture.
    """
    kept = dict(raw)
    for name, unit in DETECT_FIELD_UNITS.items():
        if name not in raw:
            continue
        low, high = _RANGES.get(unit, _ANY_RANGE)
        if any(not low <= value <= high for value in numbers(raw[name])):
            log.info("check: detect_result.%s out of range, left out", name)
            del kept[name]
    return kept


def parse_check_answer(
    provider: str, reply: HttpReply, *, charge_field: bool = True
) -> CheckResult:
    """Turn the HTTP answer into a ``CheckResult`` or raise the matching ``ProviderError``.

    ``data`` and its ``pass``, ``reasons`` and ``detect_result`` must have their types, or
    the answer is malformed and keeps what it said about the charge.
    """
    answer = read_answer(provider, reply, charge_field=charge_field)
    data = answer.data
    if not isinstance(data, Mapping) or not isinstance(data.get("pass"), bool):
        raise answer.malformed()
    raw_reasons = data.get("reasons") or []
    if not isinstance(raw_reasons, list):  # a charged answer stays charged: see ``malformed``
        raise answer.malformed()
    reasons = tuple(
        classify_reason(text) for text in raw_reasons if isinstance(text, str) and text.strip()
    )
    detect_result = data.get("detect_result")
    if detect_result is not None and not isinstance(detect_result, Mapping):
        raise answer.malformed()
    measurements = Measurements.from_provider(
        None if detect_result is None else _measurable(detect_result)
    )
    return CheckResult(
        passed=data["pass"],
        reasons=reasons,
        measurements=measurements,
        outcomes=evaluate(measurements),
        provider=provider,
        usage=answer.usage,
    )


def signed_form(
    app_id: str, app_secret: str, timestamp_ms: int, image: PreparedImage, **fields: str
) -> tuple[bytes, dict[str, str]]:
    """Multipart form: signed credentials, the photo as ``file`` (the preferred field), then
    the endpoint's own ``fields``."""
    return multipart_form(
        [
            ("appId", app_id),
            ("timestamp", str(timestamp_ms)),
            ("sign", jumdata_sign(app_id, app_secret, timestamp_ms)),
            ("file", FilePart(image.file_name, image.mime_type, image.data)),
            *fields.items(),
        ]
    )


class JumdataClient(CloudClient):
    """What every jumdata endpoint shares: the credentials, the clock, the session."""

    name = "jumdata"
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
        super().__init__(timeout, transport=transport)
        self._app_id = app_id
        self._app_secret = app_secret
        self._url = base_url.rstrip("/") + self.path
        self._clock = clock

    def _request(self, image: PreparedImage, **fields: str) -> HttpRequest:
        """Signed afresh on every attempt: a retry after 610 needs a new timestamp."""
        timestamp_ms = int(self._clock() * 1000)
        body, headers = signed_form(self._app_id, self._app_secret, timestamp_ms, image, **fields)
        return HttpRequest(self._url, body, headers)


class JumdataChecker(JumdataClient, Checker):
    """The jumdata ID-photo check."""

    path = CHECK_PATH
    limits: ImageLimits = CHECK_LIMITS_JUMDATA

    async def check(self, image: PreparedImage) -> CheckResult:
        return await self.call(
            "check", lambda: self._request(image), lambda r: parse_check_answer(self.name, r)
        )
