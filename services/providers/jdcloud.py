"""JD Cloud NeuHub face compare (``/jdai/faceCompareV1``) and attributes (``/jdai/facePropV1``).

Seeds 004 and 002 and ``docs/provider-protocols.md`` section 1. Like the other cloud
providers this is a pure part (build the JSON body, parse the answer into typed
results or typed errors) and a thin client that signs each attempt with
``JDCLOUD2-HMAC-SHA256`` and posts through ``HttpTransport`` and ``with_retries``.

An answer can fail at three levels, read in this order:

1. the API gateway refuses the call in the JD OpenAPI envelope
   ``{"requestId": …, "error": {"code": <http>, "status": <NAME>, "message": …}}``
   (``GATEWAY_STATUSES``, then by HTTP status);
2. the system ``code`` (a string, ``"10000"`` = success; ``SYSTEM_CODES``);
3. the business ``result.code`` (an int, ``0`` = success; ``BUSINESS_CODES``).

JD sends the numbers inside ``faceItems`` and the compare ``score`` as strings
(``"0.65"``, ``"133.65"``); they become floats here and nowhere else. Every answer
carries ``charge``/``remain``/``remainTimes``/``remainSeconds``: results keep them in
``usage``; errors keep ``charge`` as ``charged`` and the rest in ``error.values``
(``remain``, ``remain_times``, ``remain_seconds``), and the client keeps the last seen
figures in ``last_usage``.

One class, ``JdCloudClient``, serves both operations the bot uses JD for: it has
the provider attributes (``name``, ``limits``, ``available``) and ``compare``,
``analyze`` and ``close``, so one instance (one ``ClientSession``) can be handed to
the bot as the comparer and as the analyzer.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from services.errors import (
    ProviderAuthError,
    ProviderBudgetError,
    ProviderError,
    ProviderInputError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.faces import (
    JDCLOUD_THRESHOLDS,
    AnalyzeResult,
    Box,
    CompareResult,
    CompareThresholds,
    Emotion,
    Face,
    Gender,
    Glasses,
    Race,
    Usage,
)
from services.i18n import N_
from services.images import ImageLimits, PreparedImage
from services.models import HeadPose
from services.providers.base import CodeInfo, HttpReply, HttpTransport, with_retries
from services.signing import jdcloud_sign
from services.values import flag, integer, number, text

__all__ = [
    "ANALYZE_PATH",
    "BUSINESS_CODES",
    "COMPARE_PATH",
    "GATEWAY_STATUSES",
    "JDCLOUD_LIMITS",
    "MAX_FACE_COUNT",
    "PROVIDER",
    "SYSTEM_CODES",
    "CodeInfo",
    "JdCloudClient",
    "build_analyze_body",
    "build_compare_body",
    "parse_analyze",
    "parse_compare",
    "parse_face",
    "usage_of",
]

log = logging.getLogger(__name__)

PROVIDER: Final = "jdcloud"
COMPARE_PATH: Final = "/jdai/faceCompareV1"
ANALYZE_PATH: Final = "/jdai/facePropV1"
MAX_FACE_COUNT: Final = 100
"""Seed 002: ``maxFaceCount`` lies in [1, 100] (default 5)."""

_BASE64_CAP: Final = 2 * 1024 * 1024 - 1
JDCLOUD_LIMITS = ImageLimits(
    # The largest file whose base64 text stays under 2 MB: 3 * (cap // 4) = 1_572_861.
    max_bytes=3 * (_BASE64_CAP // 4),
    max_side=2048,
    min_side=48,
    formats=frozenset({"JPEG", "PNG", "BMP"}),
    max_base64_chars=_BASE64_CAP,
)
"""Seeds 002/004: bmp/jpg/png, 48..2048 px a side, base64 text under 2 MB."""

SUCCESS_CODE: Final = "10000"


# Top-level ``code``: the NeuHub system table (Face-Anti-Spoofing Error-Code.md; the
# same table in jdclouddocs/CN-AM-Repo Face-Search, which adds 10020/10030/10044/10060).
# The 1004x/1000x codes of the old appkey+sign scheme do not apply to JDCLOUD2 calls.
SYSTEM_CODES: dict[str, CodeInfo] = {
    "10010": CodeInfo(ProviderBudgetError, N_("jdcloud.pay_required")),
    "10020": CodeInfo(ProviderUnavailableError, N_("jdcloud.system_busy"), retry_safe=True),
    "10030": CodeInfo(ProviderUnavailableError, N_("jdcloud.gateway_failed")),
    "10040": CodeInfo(ProviderBudgetError, N_("jdcloud.daily_limit")),
    "10043": CodeInfo(ProviderRateLimitError, N_("jdcloud.qps_limit"), retry_safe=True),
    "10044": CodeInfo(ProviderRateLimitError, N_("jdcloud.cluster_qps_limit"), retry_safe=True),
    "10048": CodeInfo(ProviderAuthError, N_("jdcloud.no_permission")),
    "10050": CodeInfo(ProviderAuthError, N_("jdcloud.user_disabled")),
    "10060": CodeInfo(ProviderAuthError, N_("jdcloud.publisher_permission")),
    "11010": CodeInfo(ProviderUnavailableError, N_("jdcloud.publisher_fault")),
    "11030": CodeInfo(ProviderUnavailableError, N_("jdcloud.publisher_bad_answer")),
}

# ``result.code`` of seeds 002/004. 1, 9 and 31 mean our request was wrong, not the
# photo; 41 means JD gave up after 10 s, possibly having done the work.
BUSINESS_CODES: dict[int, CodeInfo] = {
    1: CodeInfo(ProviderUnavailableError, N_("jdcloud.request_missing_fields")),
    2: CodeInfo(ProviderInputError, N_("jdcloud.image_too_small")),
    3: CodeInfo(ProviderInputError, N_("jdcloud.image_too_large")),
    4: CodeInfo(ProviderInputError, N_("jdcloud.base64_invalid")),
    5: CodeInfo(ProviderInputError, N_("jdcloud.base64_too_large")),
    9: CodeInfo(ProviderUnavailableError, N_("jdcloud.request_param_invalid")),
    10: CodeInfo(ProviderInputError, N_("jdcloud.no_face")),
    11: CodeInfo(ProviderInputError, N_("jdcloud.face_quality")),
    12: CodeInfo(ProviderInputError, N_("jdcloud.face_posture")),
    15: CodeInfo(ProviderInputError, N_("jdcloud.compare_failed")),
    31: CodeInfo(ProviderUnavailableError, N_("jdcloud.request_not_json")),
    41: CodeInfo(ProviderUnavailableError, N_("jdcloud.timeout")),
}
NO_FACE_CODE: Final = 10
_NO_FACE_A = N_("jdcloud.no_face_a")
_NO_FACE_B = N_("jdcloud.no_face_b")

# Gateway refusals by ``error.status`` (protocols doc 1.5; API-Gateway API_Errorcode.md).
GATEWAY_STATUSES: dict[str, CodeInfo] = {
    "APIGW_SIGN_RESULT_NOT_SAME": CodeInfo(ProviderAuthError, N_("jdcloud.gateway_sign_mismatch")),
    "APIGW_KEY_NOT_EXITST": CodeInfo(ProviderAuthError, N_("jdcloud.gateway_key_unknown")),
    "APIGW_LACK_PARAMS": CodeInfo(ProviderAuthError, N_("jdcloud.gateway_lack_params")),
    "UNAUTHENTICATED": CodeInfo(ProviderAuthError, N_("jdcloud.gateway_unauthenticated")),
    # A fresh nonce (every attempt signs anew) fixes it; the call was not processed.
    "APIGW_NONCE_CONFLICT": CodeInfo(
        ProviderUnavailableError, N_("jdcloud.gateway_nonce"), retry_safe=True
    ),
}
_GATEWAY_AUTH = N_("jdcloud.gateway_auth")  # any other 401/403
_GATEWAY_NOT_FOUND = N_("jdcloud.gateway_not_found")  # 404: wrong JDCLOUD_URL
_GATEWAY_THROTTLED = N_("jdcloud.gateway_throttled")  # 429
_GATEWAY_FAULT = N_("jdcloud.gateway_fault")  # 5xx
_GATEWAY_ERROR = N_("jdcloud.gateway_error")  # any other 4xx
_MALFORMED = N_("provider.malformed")
_UNKNOWN_CODE = N_("provider.unknown_code")
_RETRY_SAFE_HTTP: Final = frozenset({502, 503})

"""Every ``jdcloud.*`` message id with its English sentence (what to do next)."""

_EMOTIONS: dict[str, Emotion] = {
    "惊讶": Emotion.SURPRISE,
    "高兴": Emotion.HAPPY,
    "悲伤": Emotion.SAD,
    "生气": Emotion.ANGRY,
    "平静": Emotion.NEUTRAL,
}
_RACES: dict[str, Race] = {"白种人": Race.WHITE, "黑种人": Race.BLACK, "黄种人": Race.ASIAN}


# ----------------------------------------------------------------------- values


# ----------------------------------------------------------------------- request


def _b64(image: PreparedImage) -> str:
    """Plain base64 of the file, without a ``data:image/…;base64,`` prefix (seeds 002/004)."""
    return base64.b64encode(image.data).decode("ascii")


def _json_bytes(payload: Mapping[str, str]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def build_compare_body(a: PreparedImage, b: PreparedImage) -> bytes:
    """``{"imgBase64A": …, "imgBase64B": …}`` as UTF-8 JSON."""
    return _json_bytes({"imgBase64A": _b64(a), "imgBase64B": _b64(b)})


def build_analyze_body(image: PreparedImage) -> bytes:
    """``{"imgBase64": …}`` as UTF-8 JSON; ``maxFaceCount`` travels in the query."""
    return _json_bytes({"imgBase64": _b64(image)})


# ----------------------------------------------------------------------- answers


def usage_of(reply: HttpReply) -> Usage | None:
    """``charge``/``remain``/``remainTimes``/``remainSeconds`` of a NeuHub answer, if it is one."""
    body = reply.json()
    if not isinstance(body, Mapping) or "code" not in body:
        return None
    return _usage(body)


def _usage(body: Mapping[str, Any]) -> Usage:
    return Usage(
        charged=body.get("charge") is True,
        remain=integer(body.get("remain")),
        remain_times=integer(body.get("remainTimes")),
        remain_seconds=integer(body.get("remainSeconds")),
    )


def _usage_values(usage: Usage) -> dict[str, int]:
    values = {
        "remain": usage.remain,
        "remain_times": usage.remain_times,
        "remain_seconds": usage.remain_seconds,
    }
    return {name: value for name, value in values.items() if value is not None}


def _raise(
    info: CodeInfo | None,
    *,
    code: int | str,
    msg: str | None,
    usage: Usage | None,
    message_id: str | None = None,
    task_no: str | None = None,
    family: type[ProviderError] = ProviderUnavailableError,
    retry_safe: bool = False,
) -> ProviderError:
    """Build the error for ``info`` (or the given fallback), keeping code, msg and usage."""
    if info is not None:
        family, retry_safe = info.family, info.retry_safe
        message_id = message_id or info.message_id
    charged = usage.charged if usage is not None else False
    error = family(
        PROVIDER,
        code=code,
        provider_msg=msg,
        message_id=message_id,
        charged=charged,
        task_no=task_no,
        # A charged call was processed: never repeat it automatically.
        retry_safe=retry_safe and not charged,
    )
    if usage is not None:
        error.values.update(_usage_values(usage))
    return error


def _gateway_error(reply: HttpReply, body: Mapping[str, Any]) -> ProviderError:
    """The JD OpenAPI error envelope: the gateway refused before the API ran."""
    error = body.get("error")
    details: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    status_name = text(details.get("status")) or ""
    http_code = integer(details.get("code")) or reply.status
    msg = text(details.get("message"))
    request_id = text(body.get("requestId"))
    log.warning(
        "%s gateway refused the call: HTTP %s %s %s (request %s)",
        PROVIDER,
        http_code,
        status_name,
        msg,
        request_id,
    )
    code = status_name or f"http_{http_code}"
    info = GATEWAY_STATUSES.get(status_name)
    if info is not None:
        return _raise(info, code=code, msg=msg, usage=None, task_no=request_id)
    if http_code == 429:
        family: type[ProviderError] = ProviderRateLimitError
        message_id, retry_safe = _GATEWAY_THROTTLED, True
    elif http_code >= 500:
        family, message_id = ProviderUnavailableError, _GATEWAY_FAULT
        retry_safe = http_code in _RETRY_SAFE_HTTP
    elif http_code in (401, 403):
        family, message_id, retry_safe = ProviderAuthError, _GATEWAY_AUTH, False
    elif http_code == 404:
        family, message_id, retry_safe = ProviderAuthError, _GATEWAY_NOT_FOUND, False
    else:
        family, message_id, retry_safe = ProviderUnavailableError, _GATEWAY_ERROR, False
    return _raise(
        None,
        code=code,
        msg=msg,
        usage=None,
        message_id=message_id,
        task_no=request_id,
        family=family,
        retry_safe=retry_safe,
    )


def _not_json(reply: HttpReply) -> ProviderError:
    """A body that is not a JSON object: a proxy page, a cut-off answer."""
    status = reply.status
    code = "malformed" if status == 200 else f"http_{status}"
    if status == 429:
        return ProviderRateLimitError(
            PROVIDER, code=code, message_id=_GATEWAY_THROTTLED, retry_safe=True
        )
    if status >= 500:
        return ProviderUnavailableError(
            PROVIDER, code=code, message_id=_GATEWAY_FAULT, retry_safe=status in _RETRY_SAFE_HTTP
        )
    return ProviderUnavailableError(PROVIDER, code=code, message_id=_MALFORMED)


def _result(reply: HttpReply) -> tuple[Mapping[str, Any], Usage]:
    """The ``result`` object of a system-level success, and the answer's usage.

    Raises the matching ``ProviderError`` for a gateway refusal, a system code or an
    unreadable answer. ``result.code`` is left to the caller (checked to be an int), so
    a compare can say which photo had no face before raising ``_business_error``.
    """
    body = reply.json()
    if not isinstance(body, Mapping):
        raise _not_json(reply)
    if "error" in body and "code" not in body:
        raise _gateway_error(reply, body)
    usage = _usage(body)
    system_code = body.get("code")
    msg = text(body.get("msg"))
    if system_code is None:
        raise _raise(None, code="malformed", msg=msg, usage=usage, message_id=_MALFORMED)
    system_code = str(system_code).strip()
    if system_code != SUCCESS_CODE:
        log.info("%s answered system code %s: %s", PROVIDER, system_code, msg)
        info = SYSTEM_CODES.get(system_code)
        raise _raise(
            info, code=system_code, msg=msg, usage=usage, message_id=None if info else _UNKNOWN_CODE
        )
    result = body.get("result")
    if not isinstance(result, Mapping) or integer(result.get("code")) is None:
        raise _raise(None, code="malformed", msg=msg, usage=usage, message_id=_MALFORMED)
    return result, usage


def _business_error(
    result: Mapping[str, Any], usage: Usage, *, message_id: str | None = None
) -> ProviderError:
    code = integer(result.get("code"))
    assert code is not None
    msg = text(result.get("msg"))
    log.info("%s answered business code %s: %s", PROVIDER, code, msg)
    info = BUSINESS_CODES.get(code)
    if info is None:
        return _raise(None, code=code, msg=msg, usage=usage, message_id=_UNKNOWN_CODE)
    return _raise(info, code=code, msg=msg, usage=usage, message_id=message_id)


def _no_face_message(result: Mapping[str, Any]) -> str | None:
    """Which compare photo had no face, when the answer tells (one list empty, one not)."""
    items_a, items_b = result.get("faceItemsA"), result.get("faceItemsB")
    if not isinstance(items_a, list) or not isinstance(items_b, list):
        return None
    if not items_a and items_b:
        return _NO_FACE_A
    if items_a and not items_b:
        return _NO_FACE_B
    return None


def _emotion(value: Any) -> Emotion | None:
    label = text(value)
    if label is None:
        return None
    emotion = _EMOTIONS.get(label.strip())
    if emotion is None:
        try:
            emotion = Emotion(label.strip().lower())
        except ValueError:
            log.info("%s: unknown emotion %r", PROVIDER, label)
    return emotion


def _race(value: Any) -> Race | None:
    label = text(value)
    if label is None:
        return None
    race = _RACES.get(label.strip())
    if race is None:
        try:
            race = Race(label.strip().lower())
        except ValueError:
            log.info("%s: unknown race %r", PROVIDER, label)
    return race


def _glasses(props: Mapping[str, Any]) -> Glasses | None:
    sun, common = flag(props.get("hasSunGlasses")), flag(props.get("hasEyeGlasses"))
    if sun:
        return Glasses.SUN
    if common:
        return Glasses.COMMON
    if sun is None and common is None:
        return None
    return Glasses.NONE


def parse_face(item: Mapping[str, Any], props: Mapping[str, Any] | None = None) -> Face:
    """One ``faceItems`` entry (and the ``props`` entry of the same index, if any).

    Raises ``ValueError`` when the entry has no usable ``boundingBox``.
    """
    raw_box = item.get("boundingBox")
    if not isinstance(raw_box, Mapping):
        raise ValueError("faceItem without boundingBox")
    sides = [number(raw_box.get(name)) for name in ("left", "top", "width", "height")]
    if any(value is None for value in sides):
        raise ValueError(f"boundingBox not numeric: {raw_box!r}")
    left, top, width, height = (float(value) for value in sides)  # type: ignore[arg-type]

    pose = None
    posture = item.get("posture")
    if isinstance(posture, Mapping):
        angles = [number(posture.get(name)) for name in ("yaw", "pitch", "roll")]
        if all(angle is not None for angle in angles):
            yaw, pitch, roll = (float(angle) for angle in angles)  # type: ignore[arg-type]
            pose = HeadPose(yaw=yaw, pitch=pitch, roll=roll)

    attributes: Mapping[str, Any] = props if isinstance(props, Mapping) else {}
    female = flag(attributes.get("isFemale"))
    return Face(
        box=Box(left=left, top=top, width=width, height=height),
        pose=pose,
        valid_pose=flag(item.get("isValidPosture")),
        sharpness=number(item.get("blurScore")),
        age=number(attributes.get("age")),
        gender=None if female is None else (Gender.FEMALE if female else Gender.MALE),
        emotion=_emotion(attributes.get("emotion")),
        smile=number(attributes.get("smile")),
        glasses=_glasses(attributes),
        mask=flag(attributes.get("hasMask")),
        beard=flag(attributes.get("hasBeard")),
        race=_race(attributes.get("race")),
        beauty=number(attributes.get("beauty")),
    )


def _faces(
    items: Any, props: Any, usage: Usage, msg: str | None, *, field: str
) -> tuple[Face, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise _raise(None, code="malformed", msg=msg, usage=usage, message_id=_MALFORMED)
    prop_list = props if isinstance(props, list) else []
    faces = []
    for index, item in enumerate(items):
        attributes = prop_list[index] if index < len(prop_list) else None
        try:
            if not isinstance(item, Mapping):
                raise ValueError(f"{field}[{index}] is not an object")
            faces.append(parse_face(item, attributes))
        except ValueError as error:
            log.warning("%s: unreadable %s[%d]: %s", PROVIDER, field, index, error)
            raise _raise(
                None, code="malformed", msg=msg, usage=usage, message_id=_MALFORMED
            ) from None
    return tuple(faces)


def parse_compare(reply: HttpReply) -> CompareResult:
    """A ``faceCompareV1`` answer as a ``CompareResult``, or the matching ``ProviderError``.

    Business code 10 names the photo without a face (``jdcloud.no_face_a``/``_b``) when
    one of ``faceItemsA``/``faceItemsB`` is empty and the other is not.
    """
    result, usage = _result(reply)
    code = integer(result.get("code"))
    if code != 0:
        refined = _no_face_message(result) if code == NO_FACE_CODE else None
        raise _business_error(result, usage, message_id=refined)
    msg = text(result.get("msg"))
    score = number(result.get("score"))
    if score is None:
        raise _raise(None, code="malformed", msg=msg, usage=usage, message_id=_MALFORMED)
    return CompareResult(
        score=score,
        faces_a=_faces(result.get("faceItemsA"), None, usage, msg, field="faceItemsA"),
        faces_b=_faces(result.get("faceItemsB"), None, usage, msg, field="faceItemsB"),
        provider=PROVIDER,
        usage=usage,
    )


def parse_analyze(reply: HttpReply) -> AnalyzeResult:
    """A ``facePropV1`` answer as an ``AnalyzeResult`` (``props[i]`` goes with ``faceItems[i]``)."""
    result, usage = _result(reply)
    if integer(result.get("code")) != 0:
        raise _business_error(result, usage)
    msg = text(result.get("msg"))
    faces = _faces(result.get("faceItems"), result.get("props"), usage, msg, field="faceItems")
    return AnalyzeResult(faces=faces, provider=PROVIDER, usage=usage)


# ----------------------------------------------------------------------- client


class JdCloudClient:
    """Compare and analyze through one signed, retried HTTP session.

    ``clock`` returns the signing time (aware or naive-UTC ``datetime``); ``None`` means
    now. ``region``/``service`` form the credential scope (protocols doc 1.2).
    """

    name = PROVIDER
    limits: ImageLimits = JDCLOUD_LIMITS
    thresholds: CompareThresholds = JDCLOUD_THRESHOLDS
    available = True

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        base_url: str,
        timeout: float,
        *,
        region: str = "jdcloud-api",
        service: str = "simpleclient",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._base_url = base_url.rstrip("/")
        self._region = region
        self._service = service
        self._clock = clock or (lambda: datetime.now(UTC))
        self._http = HttpTransport(self.name, timeout)
        self.last_usage: Usage | None = None
        """Billing figures of the last NeuHub answer (success or error)."""

    def _signed_headers(self, url: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        headers.update(
            jdcloud_sign(
                "POST",
                url,
                headers,
                body,
                self._access_key,
                self._secret_key,
                region=self._region,
                service=self._service,
                now=self._clock(),
            )
        )
        return headers

    async def _post(self, url: str, body: bytes) -> HttpReply:
        # New date and nonce on every attempt: the gateway refuses a reused nonce.
        reply = await self._http.post(url, data=body, headers=self._signed_headers(url, body))
        usage = usage_of(reply)
        if usage is not None:
            self.last_usage = usage
        return reply

    async def compare(self, a: PreparedImage, b: PreparedImage) -> CompareResult:
        url = self._base_url + COMPARE_PATH
        body = build_compare_body(a, b)

        async def attempt() -> CompareResult:
            return parse_compare(await self._post(url, body))

        return await with_retries(self.name, "compare", attempt)

    async def analyze(self, image: PreparedImage, *, max_faces: int = 5) -> AnalyzeResult:
        """``max_faces`` is clamped to JD's [1, 100] and sent as ``maxFaceCount``."""
        count = min(max(1, int(max_faces)), MAX_FACE_COUNT)
        url = f"{self._base_url}{ANALYZE_PATH}?maxFaceCount={count}"
        body = build_analyze_body(image)

        async def attempt() -> AnalyzeResult:
            return parse_analyze(await self._post(url, body))

        return await with_retries(self.name, "analyze", attempt)

    async def close(self) -> None:
        await self._http.close()
