"""Fake JD Cloud NeuHub (``aiapi.jdcloud.com``) for ``faceCompareV1`` and ``facePropV1``.

Serves both endpoints over real HTTP the way the documented service does (seeds 002
and 004, and JD Cloud's signing and gateway documents):

* an API gateway in front verifies ``JDCLOUD2-HMAC-SHA256`` with
  ``tests/fakes/_sigcheck.jdcloud2_verify`` (independent of ``services/signing.py``)
  and refuses in the JD OpenAPI envelope ``{"requestId", "error": {"code", "status",
  "message"}}`` (1.5): no/unsigned date or nonce or a signed header missing -> 401
  ``APIGW_LACK_PARAMS``; unknown access key -> 401 ``APIGW_KEY_NOT_EXITST`` (the
  vendor's spelling); wrong signature -> 401 ``APIGW_SIGN_RESULT_NOT_SAME``; date more
  than ``max_skew_s`` off -> 401 ``UNAUTHENTICATED`` (assumed); reused nonce -> 403
  ``APIGW_NONCE_CONFLICT``; unknown path -> 404 ``NOT_FOUND`` (assumed);
* the API answers HTTP 200 with the NeuHub envelope and string-typed numbers exactly
  as the seed examples: system ``code`` "10000" plus ``result.code`` 0 on success
  (``charge: true``, ``remain``/``remainTimes`` one less), a business error with
  ``charge: false`` and ``msg`` "查询成功,不扣费" (assumed, 1.6), and the daily budget
  used up -> system code "10040" (assumed form, 1.6).

Bodies must be JSON objects (else business 31). Each ``imgBase64*`` must be present
(else 1) and a string (else 9), under 2*1024*1024 characters (else 5), plain base64
without a ``data:`` prefix that Pillow opens as a whole BMP/JPEG/PNG (else 4), 48..2048
px a side (else 2 / 3). ``maxFaceCount`` must be an integer in [1, 100] (else 9).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import http
import io
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web
from PIL import Image

from tests.fakes._sigcheck import jdcloud2_verify
from tests.fakes.faults import Fault, Faults, photo_key

__all__ = [
    "BUSINESS_MESSAGES",
    "COMPARE_CODES",
    "COMPARE_PATH",
    "GATEWAY_REFUSALS",
    "PROP_CODES",
    "PROP_PATH",
    "SEED_FACE_ITEM",
    "SEED_PROPS",
    "SYSTEM_MESSAGES",
    "FakeJdCloud",
    "Received",
    "Script",
]

COMPARE_PATH = "/jdai/faceCompareV1"
PROP_PATH = "/jdai/facePropV1"
PATHS = (COMPARE_PATH, PROP_PATH)

BASE64_LIMIT = 2 * 1024 * 1024
"""Base64 text of this many characters or more is refused with 5 (seeds: under 2 MB)."""
MIN_SIDE, MAX_SIDE = 48, 2048
MAX_FACE_COUNT, DEFAULT_MAX_FACE_COUNT = 100, 5
CLIENT_MAX_SIZE = 64 * 1024 * 1024
"""aiohttp's 1 MiB default would refuse a 2 MB image before the fake could."""
_FORMATS = frozenset({"JPEG", "PNG", "BMP"})

BUSINESS_MESSAGES: dict[int, str] = {
    1: "NoRequiredFields",
    2: "ImageIsTooSmall",
    3: "ImageIsTooLarge",
    4: "Base64IsInvalid",
    5: "Base64IsTooLarge",
    9: "ParamTypeIsInvalid",
    10: "NoFaceDetected",
    11: "InvalidFaceQuality",
    12: "InvalidFacePosture",
    15: "FeatureCompareFail",
    31: "RequestBodyIsNotJson",
    41: "TimeoutException",
}
"""``result.msg`` of each business code (seeds 002/004)."""
COMPARE_CODES = frozenset({1, 2, 3, 4, 5, 10, 11, 12, 15, 31, 41})
PROP_CODES = frozenset({1, 2, 3, 4, 5, 9, 10, 11, 12, 31, 41})

SYSTEM_MESSAGES: dict[str, str] = {
    "10010": "接口需要付费，请充值",
    "10020": "系统繁忙，请稍后再试",
    "10030": "调用网关失败，请与NeuHub联系",
    "10040": "超过每天限量，请明天继续",
    "10043": "超过QPS限额，请降低调用频率或与NeuHub联系",
    "10044": "集群QPS超限额，请与NeuHub联系",
    "10048": "无接口权限，请下单购买",
    "10050": "用户已被禁用",
    "10060": "发布方设置调用权限，请联系发布方",
    "11010": "发布方接口调用异常，请稍后再试",
    "11030": "发布方接口返回格式有误",
}
"""NeuHub system-level codes (Error-Code.md pages of the JD AI docs)."""

GATEWAY_REFUSALS: dict[str, tuple[int, str, str]] = {
    "missing": (401, "APIGW_LACK_PARAMS", "某个参数不存在"),
    "unknown_key": (401, "APIGW_KEY_NOT_EXITST", "错误的密钥"),
    "bad_signature": (401, "APIGW_SIGN_RESULT_NOT_SAME", "签名不一致"),
    "expired": (401, "UNAUTHENTICATED", "认证失败"),
    "nonce_reused": (403, "APIGW_NONCE_CONFLICT", "重复访问"),
}
"""``_sigcheck.Verdict.reason`` -> (HTTP status, ``error.status``, ``error.message``)."""

_HTTP_STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "BAD_GATEWAY",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""``error.status`` for a scripted ``http_status`` (assumed names)."""

SEED_FACE_ITEM: dict[str, Any] = {
    "blurScore": "0.21",
    "boundingBox": {"height": "133.65", "left": "365.02", "top": "20.81", "width": "102.35"},
    "isValidPosture": True,
    "posture": {"pitch": "-4.59", "roll": "-9.92", "yaw": "-3.87"},
}
"""The ``faceItems`` entry of the seed 002 example, key order and string numbers as published."""
SEED_PROPS: dict[str, Any] = {
    "age": 18,
    "beauty": 94,
    "emotion": "平静",
    "hasBeard": False,
    "hasEyeGlasses": False,
    "hasMask": False,
    "hasSunGlasses": False,
    "isFemale": False,
    "race": "黄种人",
    "smile": 20,
}
"""The ``props`` entry of the seed 002 example."""

_DEFAULT_SCORE = "0.65"
_HTML_ERROR = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Script:
    """One queued answer, see :meth:`FakeJdCloud.script`."""

    code: int | None = None
    system_code: str | None = None
    score: str | None = None
    faces: Sequence[Mapping[str, Any]] | None = None
    faces_a: Sequence[Mapping[str, Any]] | None = None
    faces_b: Sequence[Mapping[str, Any]] | None = None
    hang: float | None = None
    malformed: bool = False
    http_status: int | None = None


@dataclass
class Received:
    """One request as the fake saw it, and what it answered."""

    path: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    """The decoded JSON body, None when the body is not JSON."""
    auth_ok: bool = False
    auth_reason: str = ""
    """``_sigcheck.Verdict.reason`` of a refused request ("" when accepted)."""
    http_status: int | None = None
    answer: dict[str, Any] | None = None
    system_code: str | None = None
    business_code: int | None = None
    images: dict[str, bytes] = field(default_factory=dict)
    """Decoded ``imgBase64*`` values that passed the checks, by field name."""
    received_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None


class _Refusal(Exception):
    """A business code found while validating the request."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _format(value: float) -> str:
    return f"{value:.2f}"


def _request_id() -> str:
    return secrets.token_hex(16)


class FakeJdCloud:
    """Fake NeuHub gateway and API. ``async with FakeJdCloud() as fake: fake.base_url``.

    ``remain`` (calls left today) starts at ``daily_limit`` and drops with every
    charged answer; tests may set it. ``charged`` counts charged answers.
    """

    def __init__(
        self,
        access_key: str = "test-ak",
        secret_key: str = "test-sk",
        *,
        daily_limit: int = 1000,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = 15 * 60,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.daily_limit = daily_limit
        self.remain = daily_limit
        self.charged = 0
        self.max_skew_s = max_skew_s
        self.requests: list[Received] = []
        self.nonces: set[str] = set()
        """Nonces of accepted requests; a second use is refused with 403."""
        self._clock = clock
        self._scripts: dict[str, deque[Script]] = {path: deque() for path in PATHS}
        self.faults: Faults | None = None
        """Fault injection and the billing ledger (``tests.fakes.faults``); None: no faults."""
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()

    # lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on ``host:port`` (0 = a free port); returns self for chaining."""
        if self._runner is not None:
            raise RuntimeError("fake already started")
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        self._runner = runner
        self._base_url = f"http://{bound_host}:{bound_port}"
        return self

    async def stop(self) -> None:
        """Stop listening; requests still hanging are released at once."""
        self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running fake."""
        if self._base_url is None:
            raise RuntimeError("fake not started")
        return self._base_url

    # scripting -------------------------------------------------------------

    def script(
        self,
        path: str,
        *,
        code: int | None = None,
        system_code: int | str | None = None,
        score: float | str | None = None,
        faces: list[dict[str, Any]] | None = None,
        faces_a: list[dict[str, Any]] | None = None,
        faces_b: list[dict[str, Any]] | None = None,
        hang: float | None = None,
        malformed: bool = False,
        http_status: int | None = None,
        times: int = 1,
    ) -> None:
        """Queue the next ``times`` answers for ``path`` (used by authenticated requests).

        ``code``: business ``result.code`` answered (charge false) instead of processing;
        ``system_code``: that top-level code with its documented msg. ``score`` (compare):
        the similarity, a float or the exact string. ``faces`` (facePropV1): one dict per
        face, each merged over the seed face; ``faceItems`` keys (``blurScore``,
        ``boundingBox``, ``isValidPosture``, ``posture``) go to ``faceItems``, the others
        to ``props``; ``[]`` = no face -> code 10. ``faces_a``/``faces_b`` (compare): the
        same for ``faceItemsA``/``B``; an empty list -> code 10 with that list empty.
        ``hang``: wait that many seconds first. ``http_status``: that status with the
        gateway error envelope; with ``malformed`` an HTML page instead. ``malformed``
        alone: HTTP 200 with a cut-off JSON body.
        """
        if path not in self._scripts:
            raise ValueError(f"unknown path {path!r}; expected one of {PATHS}")
        if times < 1 or (hang is not None and hang < 0):
            raise ValueError("times must be >= 1 and hang >= 0")
        if faces is not None and path != PROP_PATH:
            raise ValueError("faces= only applies to facePropV1")
        if (faces_a is not None or faces_b is not None or score is not None) and (
            path != COMPARE_PATH
        ):
            raise ValueError("score=/faces_a=/faces_b= only apply to faceCompareV1")
        if system_code is not None and str(system_code) not in SYSTEM_MESSAGES:
            raise ValueError(f"undocumented system code {system_code}")
        entry = Script(
            code=code,
            system_code=None if system_code is None else str(system_code),
            score=None if score is None else (score if isinstance(score, str) else _format(score)),
            faces=faces,
            faces_a=faces_a,
            faces_b=faces_b,
            hang=hang,
            malformed=malformed,
            http_status=http_status,
        )
        self._scripts[path].extend([entry] * times)

    def received(self, path: str | None = None) -> list[Received]:
        """Logged requests, optionally only those to ``path``."""
        return [r for r in self.requests if path is None or r.path == path]

    async def _hang(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # answers ---------------------------------------------------------------

    def _respond(
        self, received: Received, payload: dict[str, Any], status: int = 200
    ) -> web.Response:
        received.http_status, received.answer = status, payload
        received.answered_at = time.monotonic()
        if "code" in payload:
            received.system_code = str(payload["code"])
            result = payload.get("result")
            if isinstance(result, dict) and isinstance(result.get("code"), int):
                received.business_code = result["code"]
        return web.json_response(
            payload, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
        )

    def _respond_gateway(
        self, received: Received, status: int, name: str, message: str
    ) -> web.Response:
        envelope = {
            "requestId": _request_id(),
            "error": {"code": status, "status": name, "message": message},
        }
        return self._respond(received, envelope, status=status)

    def _respond_html(self, received: Received, status: int) -> web.Response:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        received.http_status, received.answered_at = status, time.monotonic()
        return web.Response(
            status=status,
            text=_HTML_ERROR.format(status=status, phrase=phrase),
            content_type="text/html",
        )

    def _respond_malformed(self, received: Received) -> web.Response:
        received.http_status, received.answered_at = 200, time.monotonic()
        truncated = '{"code":"10000","charge":true,"remain":99'
        return web.Response(status=200, text=truncated, content_type="application/json")

    def _envelope(self, *, charge: bool, result: dict[str, Any]) -> dict[str, Any]:
        if charge:
            self.remain -= 1
            self.charged += 1
        return {
            "code": "10000",
            "charge": charge,
            "remain": self.remain,
            "remainTimes": self.remain,
            "remainSeconds": -1,
            "msg": "查询成功,扣费" if charge else "查询成功,不扣费",
            "result": result,
        }

    def _system(self, code: str) -> dict[str, Any]:
        remain = 0 if code == "10040" else self.remain
        return {
            "code": code,
            "charge": False,
            "remain": remain,
            "remainTimes": remain,
            "remainSeconds": -1,
            "msg": SYSTEM_MESSAGES[code],
        }

    @staticmethod
    def _result_head(code: int) -> dict[str, Any]:
        return {"code": code}

    @staticmethod
    def _result_tail(result: dict[str, Any], msg: str) -> dict[str, Any]:
        """Adds ``msg``/``processTimeInMs``/``timestamp`` keeping the seeds' sorted key order."""
        result.update(
            msg=msg,
            processTimeInMs=34 + secrets.randbelow(120),
            timestamp=int(time.time() * 1000),
        )
        return dict(sorted(result.items()))

    def _business(self, code: int, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        result = self._result_head(code)
        result.update(extra or {})
        msg = BUSINESS_MESSAGES.get(code, "UnknownError")
        return self._envelope(charge=False, result=self._result_tail(result, msg))

    # request handling --------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            decoded: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            decoded = None
        received = Received(
            path=request.path,
            method=request.method,
            query=dict(parse_qsl(request.query_string, keep_blank_values=True)),
            headers=dict(request.headers),
            body=body,
            json=decoded,
        )
        self.requests.append(received)
        if request.path not in self._scripts or request.method != "POST":
            return self._respond_gateway(received, 404, "NOT_FOUND", "api not found")

        verdict = jdcloud2_verify(
            method=request.method,
            raw_target=request.raw_path,
            headers=request.headers,
            body=body,
            secrets={self.access_key: self.secret_key},
            now=self._clock(),
            max_skew_s=self.max_skew_s,
            seen_nonces=self.nonces,
        )
        if not verdict.ok:
            received.auth_reason = verdict.reason
            status, name, message = GATEWAY_REFUSALS[verdict.reason]
            return self._respond_gateway(received, status, name, message)
        received.auth_ok = True

        path = request.path
        if self.faults is not None:
            return await self._with_fault(request, received, decoded, self.faults)
        queue = self._scripts[path]
        script = queue.popleft() if queue else Script()
        if script.hang:
            await self._hang(script.hang)
        if script.malformed and script.http_status not in (None, 200):
            return self._respond_html(received, script.http_status)
        if script.http_status is not None and script.http_status != 200:
            name = _HTTP_STATUS_NAMES.get(script.http_status, "UNKNOWN")
            return self._respond_gateway(received, script.http_status, name, name.lower())
        if script.malformed:
            return self._respond_malformed(received)
        if script.system_code is not None:
            return self._respond(received, self._system(script.system_code))
        if self.remain <= 0:
            return self._respond(received, self._system("10040"))
        if not isinstance(decoded, dict):
            return self._respond(received, self._business(31))
        if script.code is not None and script.code != 0:
            return self._respond(received, self._business(script.code))
        try:
            if path == COMPARE_PATH:
                payload = self._compare(received, decoded, script)
            else:
                payload = self._prop(received, decoded, script)
        except _Refusal as refusal:
            payload = self._business(refusal.code)
        return self._respond(received, payload)

    async def _with_fault(
        self, request: web.Request, received: Received, decoded: Any, faults: Faults
    ) -> web.StreamResponse:
        """An authenticated call answered under ``faults``: the fault its photos draw, and
        every billed answer entered in the ledger."""
        path = request.path
        images = decoded if isinstance(decoded, dict) else {}
        names = ("imgBase64", "imgBase64A", "imgBase64B")
        photo = photo_key("|".join(str(images.get(name, "")) for name in names))
        fault = faults.choose(path, photo)
        if fault is Fault.UNAVAILABLE:
            return self._respond_gateway(received, 503, "UNAVAILABLE", "unavailable")
        if fault is Fault.RATE_LIMITED:
            return self._respond(received, self._system("10043"))
        if self.remain <= 0:
            payload = self._system("10040")
        elif not isinstance(decoded, dict):
            payload = self._business(31)
        else:
            try:
                if path == COMPARE_PATH:
                    payload = self._compare(received, decoded, Script())
                else:
                    payload = self._prop(received, decoded, Script())
            except _Refusal as refusal:
                payload = self._business(refusal.code)
        if payload.get("charge") is True:
            if fault is Fault.BILL_THEN_HANG:
                await faults.hang(request, self._stopping)
            faults.bill(path, photo, request)
        return self._respond(received, payload)

    def _image(self, received: Received, body: Mapping[str, Any], name: str) -> Image.Image:
        """Validate and open ``body[name]``; raises ``_Refusal`` with the business code."""
        value = body.get(name)
        if value is None or value == "":
            raise _Refusal(1)
        if not isinstance(value, str):
            raise _Refusal(9)
        if len(value) >= BASE64_LIMIT:
            raise _Refusal(5)
        if value.lstrip().lower().startswith("data:"):
            raise _Refusal(4)
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _Refusal(4) from None
        try:
            image = Image.open(io.BytesIO(data))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise _Refusal(4) from None
        if image.format not in _FORMATS:
            raise _Refusal(4)
        width, height = image.size
        if min(width, height) < MIN_SIDE:
            raise _Refusal(2)
        if max(width, height) > MAX_SIDE:
            raise _Refusal(3)
        try:
            image.load()
            with Image.open(io.BytesIO(data)) as again:
                again.verify()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise _Refusal(4) from None
        received.images[name] = data
        return image

    @staticmethod
    def _face_item(scripted: Mapping[str, Any], size: tuple[int, int], index: int) -> dict:
        """Seed-shaped ``faceItems`` entry with its box placed inside the image."""
        width, height = size
        side = max(1, min(width, height) // 2)
        left = min(max(0, (width - side) // 2 + index * side // 4), max(0, width - side))
        top = min(height // 5, max(0, height - side))
        box_height = min(round(side * 1.25), height - top)
        item = copy.deepcopy(SEED_FACE_ITEM)
        item["boundingBox"] = {
            "height": _format(box_height),
            "left": _format(left),
            "top": _format(top),
            "width": _format(side),
        }
        item.update(
            {key: copy.deepcopy(value) for key, value in scripted.items() if key in SEED_FACE_ITEM}
        )
        return item

    def _compare(
        self, received: Received, body: Mapping[str, Any], script: Script
    ) -> dict[str, Any]:
        image_a = self._image(received, body, "imgBase64A")
        image_b = self._image(received, body, "imgBase64B")
        scripted_a = list(script.faces_a) if script.faces_a is not None else [{}]
        scripted_b = list(script.faces_b) if script.faces_b is not None else [{}]
        items_a = [self._face_item(f, image_a.size, i) for i, f in enumerate(scripted_a)]
        items_b = [self._face_item(f, image_b.size, i) for i, f in enumerate(scripted_b)]
        if not items_a or not items_b:
            return self._business(10, {"faceItemsA": items_a, "faceItemsB": items_b})
        result = self._result_head(0)
        result.update(
            faceItemsA=items_a,
            faceItemsB=items_b,
            score=script.score if script.score is not None else _DEFAULT_SCORE,
        )
        return self._envelope(charge=True, result=self._result_tail(result, "Accept"))

    def _prop(self, received: Received, body: Mapping[str, Any], script: Script) -> dict[str, Any]:
        raw_max = received.query.get("maxFaceCount")
        if raw_max is None:
            max_faces = DEFAULT_MAX_FACE_COUNT
        else:
            text = raw_max.strip()
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_FACE_COUNT:
                raise _Refusal(9)
            max_faces = int(text)
        image = self._image(received, body, "imgBase64")
        scripted = list(script.faces) if script.faces is not None else [{}]
        scripted = scripted[:max_faces]
        if not scripted:
            return self._business(10)
        items = [self._face_item(face, image.size, i) for i, face in enumerate(scripted)]
        props = []
        for face in scripted:
            entry = copy.deepcopy(SEED_PROPS)
            entry.update({k: copy.deepcopy(v) for k, v in face.items() if k not in SEED_FACE_ITEM})
            props.append(entry)
        result = self._result_head(0)
        result.update(faceCount=len(items), faceItems=items, maxFaceCount=max_faces, props=props)
        return self._envelope(charge=True, result=self._result_tail(result, "Accept"))
