"""JD Cloud NeuHub face compare (``/jdai/faceCompareV1``) and attributes (``/jdai/facePropV1``).

As JD documents them (人脸对比, 人脸检测与属性分析). Like the other cloud providers
this is a pure part (build the signed request, parse the answer into typed results
or typed errors) and a thin ``CloudClient`` that signs each attempt with
``JDCLOUD2-HMAC-SHA256``.

An answer can fail at three levels, read in this order:

1. the API gateway refuses the call in the JD OpenAPI envelope
   ``{"requestId": …, "error": {"code": <http>, "status": <NAME>, "message": …}}``
   (``GATEWAY_STATUSES``, then by HTTP status);
2. the system ``code`` (a string, ``"10000"`` = success; ``SYSTEM_CODES``);
3. the business ``result.code`` (an int, ``0`` = success; ``BUSINESS_CODES``).

JD sends the numbers inside ``faceItems`` and the compare ``score`` as strings
(``"0.65"``, ``"133.65"``); they become floats here and nowhere else. Every answer
carries ``charge``/``remain``/``remainTimes``/``remainSeconds``: results and errors
keep them in ``usage``.

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
from services.images import ImageLimits, PreparedImage
from services.models import (
    JDCLOUD_THRESHOLDS,
    CompareResult,
    CompareThresholds,
    Emotion,
    Face,
    FacesResult,
    Gender,
    Glasses,
    Race,
    Usage,
)
from services.providers import answers
from services.providers.base import Analyzer, Comparer
from services.providers.http import (
    RETRY_SAFE_HTTP,
    CloudClient,
    HttpFaults,
    HttpReply,
    HttpRequest,
    status_error,
)
from services.signing import jdcloud_sign
from services.values import integer

__all__ = [
    "ANALYZE_PATH",
    "BUSINESS_CODES",
    "COMPARE_PATH",
    "GATEWAY_STATUSES",
    "JDCLOUD_LIMITS",
    "MAX_FACE_COUNT",
    "PROVIDER",
    "SYSTEM_CODES",
    "JdCloudClient",
    "build_analyze_body",
    "build_compare_body",
    "parse_analyze",
    "parse_compare",
    "parse_face",
]

log = logging.getLogger(__name__)

PROVIDER: Final = "jdcloud"
COMPARE_PATH: Final = "/jdai/faceCompareV1"
ANALYZE_PATH: Final = "/jdai/facePropV1"
# faceCompareV1's ``score`` is a similarity in [0, 1] (seed 004: "1.00" in the example,
# thresholds 0.49/0.54/0.58); a rounding step past either end is clamped, more is malformed.
SCORE_SLACK: Final = 0.01
MAX_FACE_COUNT: Final = 100
"""facePropV1: ``maxFaceCount`` lies in [1, 100] (default 5)."""
MAX_SIDE: Final = 2048
"""Both APIs take photos of at most 2048 px a side: face boxes are read against it."""
MAX_AGE: Final = 150
# ``blurScore`` has no documented range (0.21 and 0.03 in the seeds; higher is sharper):
# what a 0..1 or a 0..100 scale can give is read, more is malformed.
MAX_BLUR_SCORE: Final = 100

_BASE64_CAP: Final = 2 * 1024 * 1024 - 1
JDCLOUD_LIMITS = ImageLimits(
    # The largest file whose base64 text stays under 2 MB: 3 * (cap // 4) = 1_572_861.
    max_bytes=3 * (_BASE64_CAP // 4),
    max_side=MAX_SIDE,
    min_side=48,
    formats=frozenset({"JPEG", "PNG", "BMP"}),
    max_base64_chars=_BASE64_CAP,
)
"""Both APIs: bmp/jpg/png, 48..2048 px a side, base64 text under 2 MB."""

SUCCESS_CODE: Final = "10000"


# Top-level ``code``: the NeuHub system code table that JD publishes with its AI APIs.
# The 1004x/1000x codes of the old appkey+sign scheme do not apply to JDCLOUD2 calls.
SYSTEM_CODES: dict[str, CodeInfo] = {
    "10010": CodeInfo(
        ProviderBudgetError, N_("jdcloud.pay_required"), budget=BudgetEffect.SPENT_UNTIL_CLEARED
    ),
    "10020": CodeInfo(ProviderUnavailableError, N_("jdcloud.system_busy"), retry_safe=True),
    "10030": CodeInfo(ProviderUnavailableError, N_("jdcloud.gateway_failed")),
    "10040": CodeInfo(
        ProviderBudgetError, N_("jdcloud.daily_limit"), budget=BudgetEffect.SPENT_UNTIL_RESET
    ),
    "10043": CodeInfo(
        ProviderRateLimitError,
        N_("jdcloud.qps_limit"),
        retry_safe=True,
        budget=BudgetEffect.BACK_OFF,
        backoff=1,
    ),
    "10044": CodeInfo(
        ProviderRateLimitError,
        N_("jdcloud.cluster_qps_limit"),
        retry_safe=True,
        budget=BudgetEffect.BACK_OFF,
        backoff=1,
    ),
    "10048": CodeInfo(ProviderAuthError, N_("jdcloud.no_permission")),
    "10050": CodeInfo(ProviderAuthError, N_("jdcloud.user_disabled")),
    "10060": CodeInfo(ProviderAuthError, N_("jdcloud.publisher_permission")),
    "11010": CodeInfo(ProviderUnavailableError, N_("jdcloud.publisher_fault")),
    "11030": CodeInfo(ProviderUnavailableError, N_("jdcloud.publisher_bad_answer")),
}

# ``result.code`` of both APIs. 1, 9 and 31 mean our request was wrong, not the
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

# Gateway refusals by ``error.status``, JD API gateway's own error codes.
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
# Any other gateway refusal, by its HTTP status.
_GATEWAY_AUTH = CodeInfo(ProviderAuthError, N_("jdcloud.gateway_auth"))  # 401/403
_GATEWAY_NOT_FOUND = CodeInfo(ProviderAuthError, N_("jdcloud.gateway_not_found"))  # wrong URL
_GATEWAY_THROTTLED = CodeInfo(
    ProviderRateLimitError,
    N_("jdcloud.gateway_throttled"),
    retry_safe=True,
    budget=BudgetEffect.BACK_OFF,
)
_GATEWAY_FAULT = CodeInfo(ProviderUnavailableError, N_("jdcloud.gateway_fault"))  # 5xx
_GATEWAY_FAULT_UNSENT = CodeInfo(
    ProviderUnavailableError, N_("jdcloud.gateway_fault"), retry_safe=True
)  # 502/503: not passed on
_GATEWAY_ERROR = CodeInfo(ProviderUnavailableError, N_("jdcloud.gateway_error"))  # other 4xx
# A body that is not JSON: a proxy's page, a cut-off answer.
FAULTS: Final = HttpFaults(
    throttled=_GATEWAY_THROTTLED.message_id,
    server=_GATEWAY_FAULT.message_id,
    other=MALFORMED.message_id,
)

_EMOTIONS: dict[str, Emotion] = {
    "惊讶": Emotion.SURPRISE,
    "高兴": Emotion.HAPPY,
    "悲伤": Emotion.SAD,
    "生气": Emotion.ANGRY,
    "平静": Emotion.NEUTRAL,
}
_RACES: dict[str, Race] = {"白种人": Race.WHITE, "黑种人": Race.BLACK, "黄种人": Race.ASIAN}


# ----------------------------------------------------------------------- request


def _b64(image: PreparedImage) -> str:
    """Plain base64 of the file, without a ``data:image/…;base64,`` prefix, as both APIs ask."""
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


def _usage(body: Mapping[str, Any]) -> Usage:
    return Usage(
        charged=answers.said_charged(body.get("charge")),
        remain=answers.count(body.get("remain")),
        remain_times=answers.count(body.get("remainTimes")),
        remain_seconds=answers.count(body.get("remainSeconds")),
    )


def _malformed(
    usage: Usage, msg: str | None, error: answers.Unreadable | None = None
) -> ProviderError:
    if error is not None:
        log.warning("%s: unreadable answer: %s", PROVIDER, error)
    return MALFORMED.error(PROVIDER, "malformed", msg=msg, usage=usage)


def _gateway_info(status_name: str, http_code: int) -> CodeInfo:
    info = GATEWAY_STATUSES.get(status_name)
    if info is not None:
        return info
    if http_code == 429:
        return _GATEWAY_THROTTLED
    if http_code >= 500:
        return _GATEWAY_FAULT_UNSENT if http_code in RETRY_SAFE_HTTP else _GATEWAY_FAULT
    if http_code in (401, 403):
        return _GATEWAY_AUTH
    if http_code == 404:
        return _GATEWAY_NOT_FOUND
    return _GATEWAY_ERROR


def _gateway_error(reply: HttpReply, body: Mapping[str, Any]) -> ProviderError:
    """The JD OpenAPI error envelope: the gateway refused before the API ran."""
    error = body.get("error")
    details: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    status_name = answers.short_text(details.get("status")) or ""
    http_code = integer(details.get("code")) or reply.status
    msg = answers.short_text(details.get("message"))
    request_id = answers.short_text(body.get("requestId"))
    log.warning(
        "%s gateway refused the call: HTTP %s %s %s (request %s)",
        PROVIDER,
        http_code,
        status_name,
        msg,
        request_id,
    )
    return _gateway_info(status_name, http_code).error(
        PROVIDER,
        status_name or f"http_{http_code}",
        msg=msg,
        usage=Usage(charged=False, task_no=request_id),
    )


def _result(reply: HttpReply) -> tuple[Mapping[str, Any], Usage]:
    """The ``result`` object of a system-level success, and the answer's usage.

    Raises the matching ``ProviderError`` for a gateway refusal, a system code or an
    unreadable answer. ``result.code`` is left to the caller (checked to be an int), so
    a compare can say which photo had no face before raising ``_business_error``.
    """
    body = answers.read_object(PROVIDER, reply, FAULTS)
    if "error" in body and "code" not in body:
        raise _gateway_error(reply, body)
    usage = _usage(body)
    msg = answers.short_text(body.get("msg"))
    system_code = _system_code(body.get("code"))
    if system_code is None:
        if not usage.charged:  # no vendor's envelope (a proxy's JSON): judged by its status
            raise status_error(PROVIDER, reply.status, FAULTS)
        raise _malformed(usage, msg)
    if system_code != SUCCESS_CODE:
        log.info("%s answered system code %s: %s", PROVIDER, system_code, msg)
        info = SYSTEM_CODES.get(system_code, UNKNOWN_CODE)
        raise info.error(PROVIDER, system_code, msg=msg, usage=usage)
    result = body.get("result")
    conflict = isinstance(body.get("charge"), answers.Conflict)  # a result cannot say which
    if conflict or not isinstance(result, Mapping) or integer(result.get("code")) is None:
        raise _malformed(usage, msg)
    return result, usage


def _system_code(value: Any) -> str | None:
    """The system ``code``: a string (``"10000"``), or a whole number JD may send for one."""
    if isinstance(value, str):
        return value.strip()[: answers.MAX_TEXT]
    number = integer(value)
    return None if number is None else str(number)


def _business_error(
    result: Mapping[str, Any], usage: Usage, *, message_id: str | None = None
) -> ProviderError:
    code = integer(result.get("code"))
    assert code is not None
    msg = answers.short_text(result.get("msg"))
    log.info("%s answered business code %s: %s", PROVIDER, code, msg)
    info = BUSINESS_CODES.get(code, UNKNOWN_CODE)
    return info.error(PROVIDER, code, msg=msg, usage=usage, message_id=message_id)


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
    label = _word(value, "emotion")
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
    label = _word(value, "race")
    if label is None:
        return None
    race = _RACES.get(label.strip())
    if race is None:
        try:
            race = Race(label.strip().lower())
        except ValueError:
            log.info("%s: unknown race %r", PROVIDER, label)
    return race


def _word(value: Any, field: str) -> str | None:
    """A label JD writes in words (``高兴``, ``黄种人``): a string or nothing."""
    if value is None or isinstance(value, str):
        return answers.short_text(value)
    raise answers.Unreadable(f"{field}: {type(value).__name__}, not a string")


def _glasses(props: Mapping[str, Any]) -> Glasses | None:
    sun = answers.switch(props.get("hasSunGlasses"), "hasSunGlasses")
    common = answers.switch(props.get("hasEyeGlasses"), "hasEyeGlasses")
    if sun:
        return Glasses.SUN
    if common:
        return Glasses.COMMON
    if sun is None and common is None:
        return None
    return Glasses.NONE


def parse_face(item: Mapping[str, Any], props: Mapping[str, Any] | None = None) -> Face:
    """One ``faceItems`` entry (and the ``props`` entry of the same index, if any).

    Every field read has its documented type and range (seeds 002, 004), or this raises
    ``Unreadable`` (a ``ValueError``): no usable ``boundingBox``, a box far off a 2048 px
    photo, an angle past [-180, 180], an age past [0, 150], a 0..100 value past it.
    """
    attributes: Mapping[str, Any] = props or {}
    female = answers.switch(attributes.get("isFemale"), "isFemale")
    return Face(
        box=answers.box(item.get("boundingBox"), "boundingBox", MAX_SIDE),
        pose=answers.pose(item.get("posture"), "posture"),
        valid_pose=answers.switch(item.get("isValidPosture"), "isValidPosture"),
        sharpness=answers.bounded(item.get("blurScore"), "blurScore", 0, MAX_BLUR_SCORE),
        age=answers.bounded(attributes.get("age"), "age", 0, MAX_AGE),
        gender=None if female is None else (Gender.FEMALE if female else Gender.MALE),
        emotion=_emotion(attributes.get("emotion")),
        smile=answers.bounded(attributes.get("smile"), "smile", 0, 100),
        glasses=_glasses(attributes),
        mask=answers.switch(attributes.get("hasMask"), "hasMask"),
        beard=answers.switch(attributes.get("hasBeard"), "hasBeard"),
        race=_race(attributes.get("race")),
        beauty=answers.bounded(attributes.get("beauty"), "beauty", 0, 100),
    )


def _faces(
    items: Any, props: Any, usage: Usage, msg: str | None, *, field: str, most: int | None = None
) -> tuple[Face, ...]:
    """``items`` (with ``props`` by index) as faces, or the malformed error keeping ``usage``."""
    try:
        entries = answers.items(items, field, most)
        prop_list = answers.items(props, "props")
        faces = []
        for index, item in enumerate(entries):
            props_item = prop_list[index] if index < len(prop_list) else None
            faces.append(
                parse_face(
                    answers.entry(item, f"{field}[{index}]"),
                    answers.mapping(props_item, f"props[{index}]"),
                )
            )
    except answers.Unreadable as error:
        raise _malformed(usage, msg, error) from None
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
    msg = answers.short_text(result.get("msg"))
    try:
        score = answers.bounded(result.get("score"), "score", -SCORE_SLACK, 1 + SCORE_SLACK)
        for field in ("faceItemsA", "faceItemsB"):
            if result.get(field) == []:
                raise answers.Unreadable(f"{field}: no face in a compare's success")
    except answers.Unreadable as error:
        raise _malformed(usage, msg, error) from None
    if score is None:
        raise _malformed(usage, msg)
    return CompareResult(
        score=min(1.0, max(0.0, score)),
        faces_a=_faces(result.get("faceItemsA"), None, usage, msg, field="faceItemsA"),
        faces_b=_faces(result.get("faceItemsB"), None, usage, msg, field="faceItemsB"),
        provider=PROVIDER,
        usage=usage,
    )


def parse_analyze(reply: HttpReply) -> FacesResult:
    """A ``facePropV1`` answer as a ``FacesResult`` (``props[i]`` goes with ``faceItems[i]``)."""
    result, usage = _result(reply)
    if integer(result.get("code")) != 0:
        raise _business_error(result, usage)
    msg = answers.short_text(result.get("msg"))
    faces = _faces(
        result.get("faceItems"),
        result.get("props"),
        usage,
        msg,
        field="faceItems",
        most=MAX_FACE_COUNT,
    )
    return FacesResult(faces=faces, provider=PROVIDER, usage=usage)


# ----------------------------------------------------------------------- client


def signed_request(
    url: str,
    body: bytes,
    access_key: str,
    secret_key: str,
    *,
    now: datetime,
    region: str = "jdcloud-api",
    service: str = "simpleclient",
) -> HttpRequest:
    """A JSON body signed with ``JDCLOUD2-HMAC-SHA256``; every call needs a new date and nonce."""
    headers = {"Content-Type": "application/json"}
    headers.update(
        jdcloud_sign(
            "POST",
            url,
            headers,
            body,
            access_key,
            secret_key,
            region=region,
            service=service,
            now=now,
        )
    )
    return HttpRequest(url, body, headers)


class JdCloudClient(CloudClient, Comparer, Analyzer):
    """Compare and analyze through one signed, retried HTTP session.

    ``clock`` returns the signing time (aware or naive-UTC ``datetime``); ``None`` means
    now. ``region``/``service`` form the credential scope.
    """

    name = PROVIDER
    limits: ImageLimits = JDCLOUD_LIMITS
    thresholds: CompareThresholds = JDCLOUD_THRESHOLDS

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
        super().__init__(timeout)
        self._access_key = access_key
        self._secret_key = secret_key
        self._base_url = base_url.rstrip("/")
        self._region = region
        self._service = service
        self._clock = clock or (lambda: datetime.now(UTC))

    def _request(self, url: str, body: bytes) -> HttpRequest:
        return signed_request(
            url,
            body,
            self._access_key,
            self._secret_key,
            now=self._clock(),
            region=self._region,
            service=self._service,
        )

    async def compare(self, a: PreparedImage, b: PreparedImage) -> CompareResult:
        url = self._base_url + COMPARE_PATH
        body = build_compare_body(a, b)
        return await self.call("compare", lambda: self._request(url, body), parse_compare)

    async def analyze(self, image: PreparedImage, *, max_faces: int = 5) -> FacesResult:
        """``max_faces`` is clamped to JD's [1, 100] and sent as ``maxFaceCount``."""
        count = min(max(1, int(max_faces)), MAX_FACE_COUNT)
        url = f"{self._base_url}{ANALYZE_PATH}?maxFaceCount={count}"
        body = build_analyze_body(image)
        return await self.call("analyze", lambda: self._request(url, body), parse_analyze)
