"""Fake jumdata (聚美智数) API for end-to-end tests.

Serves ``POST /id-phote/check`` (seed 001) and ``POST /face/detect`` (seed 003) over
real HTTP, checking requests the way the service does (form fields only, appId,
sign = sha256(appId + appSecret + timestamp), a 5-minute timestamp window) and
answering with the documented shapes and codes. Measurable fields are measured
from the uploaded file so the bot's display of them can be tested; the rest come
from a scriptable profile. The refusals the seeds do not spell out (the wording of
an auth failure) are assumed forms, kept in one place below.

The module also holds the pieces the Huawei marketplace fake reuses: that product
is the same check resold through Huawei's API gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import http
import io
import json
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

from aiohttp import web
from PIL import Image, ImageFile

from tests.fakes._sigcheck import jumdata_expected_sign
from tests.fakes.faults import Fault, Faults, photo_key

__all__ = [
    "CHECK_MESSAGES",
    "CHECK_PATH",
    "DEFAULT_CHECK_PROFILE",
    "DETECT_MESSAGES",
    "DETECT_PATH",
    "SEED_DETECT_RESULT",
    "SEED_FACE",
    "THRESHOLDS",
    "FakeJumdata",
    "FormData",
    "ImageInfo",
    "Received",
    "Script",
    "derive_reasons",
    "inspect_image",
    "parse_form",
]

CHECK_PATH = "/id-phote/check"
DETECT_PATH = "/face/detect"

CHECK_MAX_BYTES = 6 * 1024 * 1024
"""Seed 001 "小于6m": a file of this size or more is refused with 400."""
CHECK_MAX_SIDE = 2500
"""Seed 001: width and height within 2500 px, else 204."""
DETECT_MAX_BYTES = 8 * 1024 * 1024
"""Seed 003 "不超过8MB": larger files are refused with 400."""
DETECT_MAX_LONG, DETECT_MAX_SHORT = 1920, 1080
MAX_FACE_NUM = 120
TIMESTAMP_WINDOW_MS = 5 * 60 * 1000
CLIENT_MAX_SIZE = 64 * 1024 * 1024
"""aiohttp's 1 MiB default would refuse the too-large uploads before the fake could."""

_COMMON_MESSAGES: dict[int, str] = {
    400: "参数错误",
    404: "接口地址不正确",
    500: "系统维护,请稍候再试",
    601: "接口未开通",
    602: "账号停用",
    603: "余额不足请充值",
    604: "接口停用",
    606: "调用超限,请稍候再试",
    607: "ip不在白名单",
    609: "请求过于频繁,请稍候再试",
    610: "请求超时",
    999: "其他",
}
CHECK_MESSAGES: dict[int, str] = {
    200: "成功",
    201: "照片处理失败",
    202: "人脸检测失败",
    203: "照片找不到",
    204: "图片尺寸过大,最大边长为2500像素",
    205: "图片中找不到人脸",
    206: "图片中找不到人的头部信息",
    207: "证件照规格不存在",
    208: "内容涉嫌违规",
    209: "图片编码失败",
    210: "图片不适合制作证件照",
    **_COMMON_MESSAGES,
}
"""Seed 001 code table; "X,错误见具体描述" entries use the short text X."""
DETECT_MESSAGES: dict[int, str] = {200: "成功", 201: "图片中没有人脸", **_COMMON_MESSAGES}
"""Seed 003 code table."""

SEED_DETECT_RESULT: dict[str, Any] = {
    "color_channels": 3,
    "nose_occlusion": 100,
    "face_unbalance": 83,
    "face_num": 1,
    "face_x_occupy": 0.637,
    "face_occlusion": 100,
    "shoulder_equal": 46,
    "photo_format": "jpg",
    "mouth_occlusion": 100,
    "eyes_close": 100,
    "eyes_occlusion": 100,
    "eyes_y_center": 0.502,
    "is_transparent_background": False,
    "glasses": "no_glasses",
    "mouth_close": 94,
    "head_chin_y": 0.88,
    "head_right": 0.807,
    "face_x_center": 0.513,
    "dpi": [300, 300],
    "background_clean": 100,
    "size_mm": [51, 68],
    "eyes_spacing": 150,
    "nose_tip": [0.492, 0.609],
    "size_pix": [600, 800],
    "head_pose": {"yaw_angle": -1.8058, "roll_angle": 0.5149, "pitch_angle": 7.0599},
    "face_blur": 100,
    "file_size": 210867,
    "mouthmask": 0,
    "head_left": 0.192,
    "background_color": [60, 144, 232],
    "head_top": 0.159,
    "eyes_sight": 100,
    "has_hat": 0,
    "bf_similarity": 100,
    "background_gradual": 0,
    "face_darkillum": 80,
}
"""``detect_result`` of the seed 001/000 success example, values and key order as published."""

DEFAULT_CHECK_PROFILE: dict[str, Any] = {**SEED_DETECT_RESULT, "shoulder_equal": 80}
"""The seed example with the one failing value (shoulder_equal 46) raised so it passes."""

THRESHOLDS: tuple[tuple[str, float, str, float | None, str | None], ...] = (
    ("face_unbalance", 50, "光照不均匀", None, None),
    ("face_x_occupy", 0.51, "脸部太小", 0.64, "脸部太大"),
    ("face_occlusion", 80, "脸部被遮挡", None, None),
    ("shoulder_equal", 50, "两侧肩膀姿态不佳", None, None),
    ("eyes_close", 80, "闭眼", None, None),
    ("eyes_y_center", 0.33, "脸部太靠上", 0.62, "脸部太靠下"),
    ("mouth_close", 60, "嘴巴张开过大", None, None),
    ("face_x_center", 0.47, "脸部太靠左", 0.525, "脸部太靠右"),
    ("background_clean", 60, "背景杂乱", None, None),
    ("face_darkillum", 60, "照片过暗", None, None),
)
"""(field, lower bound, reason below it, upper bound, reason above it), seeds/README.md."""

SEED_FACE: dict[str, Any] = {
    "face_token": "35235asfas21421fakghktyfdgh68bio",
    "location": {"left": 117, "top": 131, "width": 172, "height": 170, "rotation": 4},
    "spoofing": "",
    "face_probability": 1,
    "angle": {"yaw": -0.34859421849251, "pitch": 1.9135693311691, "roll": 2.3033397197723},
    "landmark": [{"x": 161.74819946289, "y": 163.30244445801}],
    "landmark72": [{"x": 115.86531066895, "y": 170.0546875}],
    "age": 29.298097610474,
    "expression": {"type": "smile", "probability": 0.5543018579483},
    "gender": {"type": "male", "probability": 0.99979132413864},
    "glasses": {"type": "sun", "probability": 0.99999964237213},
    "face_shape": {"type": "triangle", "probability": 0.5543018579483},
    "quality": {
        "occlusion": {
            "left_eye": 0,
            "right_eye": 0,
            "nose": 0,
            "mouth": 0,
            "left_cheek": 0.0064102564938366,
            "right_cheek": 0.0057411273010075,
            "chin_contour": 0,
        },
        "blur": 1.1886881756684e-10,
        "illumination": 141,
        "completeness": 1,
        "livemapscore": 1,
    },
}
"""One ``faceList`` entry of the seed 003 example, key order as published."""

_FACE_BASE_KEYS = frozenset({"face_token", "location", "face_probability", "angle"})
"""Returned without ``faceField`` ("默认只返回face_token、人脸框、概率和旋转角度")."""
_FACE_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "spoofing": ("spoofing",),
    "landmark": ("landmark", "landmark72"),
    "age": ("age",),
    "expression": ("expression",),
    "gender": ("gender",),
    "glasses": ("glasses",),
    "face_shape": ("face_shape",),
    "quality": ("quality",),
}
"""faceField values whose answer fields the seed shows; the others add nothing."""

_PHOTO_FORMATS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp"}


def derive_reasons(detect_result: Mapping[str, Any]) -> list[str]:
    """Reasons for the values outside their documented bounds, in the README's order."""
    reasons: list[str] = []
    for name, low, low_reason, high, high_reason in THRESHOLDS:
        value = detect_result.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if value < low:
            reasons.append(low_reason)
        elif high is not None and high_reason is not None and value > high:
            reasons.append(high_reason)
    return reasons


# ----------------------------------------------------------------------- bodies


@dataclass
class FormData:
    """Text fields and uploaded files of a form body (first value of a name wins)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def _header_params(header: str, value: str) -> Message:
    message = Message()
    message[header] = value
    return message


def _parse_multipart(body: bytes, boundary: str) -> FormData:
    form = FormData()
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    for chunk in (b"\r\n" + body).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, found, data = chunk.partition(b"\r\n\r\n")
        if not found:
            continue
        part_headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip():
                part_headers[name.strip().lower()] = value.strip()
        disposition = _header_params(
            "content-disposition", part_headers.get("content-disposition", "")
        )
        name = disposition.get_param("name", header="content-disposition")
        filename = disposition.get_param("filename", header="content-disposition")
        if not isinstance(name, str):
            continue
        if filename is not None:
            form.files.setdefault(name, data)
        else:
            form.fields.setdefault(name, data.decode("utf-8", "replace"))
    return form


def parse_form(content_type: str, body: bytes) -> FormData:
    """Fields of a multipart or urlencoded body; any other body (JSON…) has none,
    as a form-reading server sees it."""
    header = _header_params("content-type", content_type or "application/octet-stream")
    mime = header.get_content_type()
    if mime == "application/x-www-form-urlencoded":
        form = FormData()
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            form.fields.setdefault(name, value)
        return form
    if mime == "multipart/form-data":
        boundary = header.get_param("boundary", header="content-type")
        if isinstance(boundary, str) and boundary:
            return _parse_multipart(body, boundary)
    return FormData()


# ----------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageInfo:
    """What the fake measures in an upload; ``complete`` = fully decoded and verified."""

    photo_format: str
    width: int
    height: int
    color_channels: int
    dpi: tuple[int, int] | None
    file_size: int
    complete: bool


def _color_channels(image: Image.Image) -> int:
    """3 for RGB-like, 4 with alpha (seed: "RGBA(比如某些png)图，该值为4"), 1 for grey."""
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        return 4
    if image.mode in {"1", "L", "I", "I;16", "F"}:
        return 1
    return 3


def _dpi(info: Mapping[str, Any]) -> tuple[int, int] | None:
    raw = info.get("dpi")
    if not isinstance(raw, tuple) or len(raw) != 2:
        return None
    x, y = (math.floor(float(v) + 0.5) for v in raw)
    return (x, y) if x > 0 and y > 0 else None


def inspect_image(data: bytes, *, decode_up_to: int) -> ImageInfo | None:
    """Identify and measure ``data`` with Pillow; None when it is no image at all.

    The pixels are decoded (and the file verified) only when the longest side is at
    most ``decode_up_to``, so an oversized upload is refused by size, not decoded.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    with image:
        width, height = image.size
        photo_format = _PHOTO_FORMATS.get(image.format or "", (image.format or "").lower())
        channels = _color_channels(image)
        dpi = _dpi(image.info)
        complete = False
        if max(width, height) <= decode_up_to:
            try:
                image.load()
                with Image.open(io.BytesIO(data)) as again:
                    again.verify()
                complete = True
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                complete = False
    if complete and photo_format == "jpg" and ImageFile.LOAD_TRUNCATED_IMAGES:
        complete = b"\xff\xd9" in data[-1024:]  # Pillow would not notice truncation then
    return ImageInfo(photo_format, width, height, channels, dpi, len(data), complete)


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


# ---------------------------------------------------------------- request log


@dataclass
class Received:
    """One request as the fake saw it, and what it answered."""

    path: str
    method: str
    content_type: str
    headers: dict[str, str]
    fields: dict[str, str]
    files: dict[str, bytes]
    image_field: str | None = None
    """Which parameter supplied the image: "base64", "file" or "url"."""
    image_bytes: bytes | None = None
    auth_ok: bool = False
    http_status: int | None = None
    code: int | None = None
    """The JSON ``code`` answered; None while hanging or for non-JSON answers."""
    answer: dict[str, Any] | None = None
    received_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None


@dataclass(frozen=True)
class Script:
    """One queued answer, see :meth:`_FakeProvider.script`."""

    code: int | None = None
    msg: str | None = None
    hang: float | None = None
    malformed: bool = False
    http_status: int | None = None
    detect_result: Mapping[str, Any] | None = None
    reasons: Sequence[str] | None = None
    faces: Sequence[Mapping[str, Any]] | None = None


def _task_no() -> str:
    return f"{secrets.randbelow(10**24):024d}"


def _bare(code: int, msg: str) -> dict[str, Any]:
    """The seed's error form: ``{"msg": …, "code": …}``."""
    return {"msg": msg, "code": code}


_HTML_ERROR = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class _FakeProvider:
    """Lifecycle, scripting queue, request log and the ID-photo check logic that the
    jumdata and Huawei fakes share."""

    _with_charge: ClassVar[bool] = True
    _url_missing_code: ClassVar[int] = 203

    def __init__(self, paths: Sequence[str], messages: Mapping[str, Mapping[int, str]]) -> None:
        self.requests: list[Received] = []
        self.charged = 0
        """Answers that billed: ``charge: true`` (jumdata) or code 200 (Huawei)."""
        self.profile: dict[str, Any] = copy.deepcopy(DEFAULT_CHECK_PROFILE)
        """Unmeasured ``detect_result`` values of every check answer; edit freely."""
        self.url_images: dict[str, bytes] = {}
        """Images the fake can "download" for the ``url`` parameter; others are not found."""
        self.faults: Faults | None = None
        """Fault injection and the billing ledger (``tests.fakes.faults``); None: no faults."""
        self._paths = tuple(paths)
        self._messages = messages
        self._scripts: dict[str, deque[Script]] = {path: deque() for path in self._paths}
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()

    # lifecycle -------------------------------------------------------------

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on ``host:port`` (0 = a free port); returns self for chaining."""
        if self._runner is not None:
            raise RuntimeError("fake already started")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=0.5)
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
        msg: str | None = None,
        hang: float | None = None,
        malformed: bool = False,
        http_status: int | None = None,
        detect_result: dict[str, Any] | None = None,
        reasons: list[str] | None = None,
        faces: list[dict[str, Any]] | None = None,
        times: int = 1,
    ) -> None:
        """Queue the next ``times`` answers for ``path`` (used by authenticated requests).

        ``code``: a documented code answered with its documented msg (or ``msg``),
        processing codes (2xx) with ``taskNo`` and ``charge: false``, others bare;
        code 200 / None means "process normally". ``hang``: wait that many seconds
        first. ``malformed``: HTTP 200 with a body that is not JSON. ``http_status``:
        that status with an HTML page, as a proxy in front would send.
        ``detect_result`` (merged over the profile) and ``reasons`` (used verbatim)
        shape a check success; ``faces`` (each merged over the default face, ``[]`` =
        no face -> 201) shape a detect success.
        """
        if path not in self._scripts:
            raise ValueError(f"unknown path {path!r}; expected one of {self._paths}")
        if code is not None and msg is None and code not in self._messages[path]:
            raise ValueError(f"code {code} is not documented for {path}; give msg=")
        if times < 1 or (hang is not None and hang < 0):
            raise ValueError("times must be >= 1 and hang >= 0")
        if faces is not None and path != DETECT_PATH:
            raise ValueError("faces= only applies to /face/detect")
        if (detect_result is not None or reasons is not None) and path == DETECT_PATH:
            raise ValueError("detect_result=/reasons= only apply to the ID-photo check")
        entry = Script(code, msg, hang, malformed, http_status, detect_result, reasons, faces)
        self._scripts[path].extend([entry] * times)

    def received(self, path: str | None = None) -> list[Received]:
        """Logged requests, optionally only those to ``path``."""
        return [r for r in self.requests if path is None or r.path == path]

    def _pop_script(self, path: str) -> Script | None:
        queue = self._scripts.get(path)
        return queue.popleft() if queue else None

    async def _hang(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # answers ---------------------------------------------------------------

    def _record(self, request: web.Request, form: FormData) -> Received:
        received = Received(
            path=request.path,
            method=request.method,
            content_type=request.headers.get("Content-Type", ""),
            headers=dict(request.headers),
            fields=dict(form.fields),
            files=dict(form.files),
        )
        self.requests.append(received)
        return received

    def _respond_json(
        self, received: Received, payload: dict[str, Any], status: int = 200
    ) -> web.Response:
        received.http_status, received.answer = status, payload
        received.code = payload.get("code") if isinstance(payload.get("code"), int) else None
        received.answered_at = time.monotonic()
        billed = payload.get("charge") is True if self._with_charge else payload.get("code") == 200
        if billed:
            self.charged += 1
        return web.json_response(
            payload, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
        )

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
        truncated = '{"code":200,"msg":"成功","taskNo":"0900096262220'
        return web.Response(status=200, text=truncated, content_type="application/json")

    def _coded(self, path: str, code: int, msg: str | None = None) -> dict[str, Any]:
        """A documented code in its documented form."""
        text = msg if msg is not None else self._messages[path].get(code, "其他")
        if 200 < code < 300:
            answer: dict[str, Any] = {"code": code, "msg": text, "taskNo": _task_no()}
            if self._with_charge:
                answer["charge"] = False
            return answer
        return _bare(code, text)

    def _take_image(
        self, form: FormData, order: Sequence[str]
    ) -> tuple[str | None, bytes | None, dict[str, Any] | None]:
        """(field used, image bytes, refusal) following the documented precedence."""
        for name in order:
            if name == "file":
                data = form.files.get("file")
                if data:
                    return "file", data, None
                continue
            value = form.fields.get(name, "").strip()
            if not value:
                continue
            if name == "base64":
                try:
                    return "base64", base64.b64decode(value, validate=True), None
                except (binascii.Error, ValueError):
                    return "base64", None, _bare(400, "图片base64格式错误")
            if name == "url":
                data = self.url_images.get(value)
                if data is None:
                    return "url", None, _bare(self._url_missing_code, "照片找不到")
                return "url", data, None
        return None, None, _bare(400, "图片不能为空")

    def _check_answer(self, path: str, data: bytes, script: Script | None) -> dict[str, Any]:
        """The ID-photo check on ``data``: limits of seed 001, then a success answer
        with measured fields over the profile."""
        if len(data) >= CHECK_MAX_BYTES:
            return _bare(400, "图片大小不能超过6M")
        info = inspect_image(data, decode_up_to=CHECK_MAX_SIDE)
        if info is None or info.photo_format not in _PHOTO_FORMATS.values():
            return self._coded(path, 201)
        if max(info.width, info.height) > CHECK_MAX_SIDE:
            return self._coded(path, 204)
        if not info.complete:
            return self._coded(path, 201)

        detect_result = copy.deepcopy(self.profile)
        if script is not None and script.detect_result is not None:
            detect_result.update(copy.deepcopy(dict(script.detect_result)))
        detect_result.update(
            color_channels=info.color_channels,
            photo_format=info.photo_format,
            size_pix=[info.width, info.height],
            file_size=info.file_size,
        )
        if info.dpi is None:
            detect_result.pop("dpi", None)
            detect_result.pop("size_mm", None)
        else:
            dpi_x, dpi_y = info.dpi
            detect_result["dpi"] = [dpi_x, dpi_y]
            detect_result["size_mm"] = [
                _half_up(info.width / dpi_x * 25.4),
                _half_up(info.height / dpi_y * 25.4),
            ]
        if script is not None and script.reasons is not None:
            reasons = list(script.reasons)
        else:
            reasons = derive_reasons(detect_result)
        answer: dict[str, Any] = {
            "code": 200,
            "msg": script.msg if script is not None and script.msg else self._messages[path][200],
            "taskNo": _task_no(),
        }
        if self._with_charge:
            answer["charge"] = True
        answer["data"] = {"pass": not reasons, "reasons": reasons, "detect_result": detect_result}
        return answer


# ------------------------------------------------------------------------ jumdata


class FakeJumdata(_FakeProvider):
    """Fake ``api.jumdata.com`` for ``/id-phote/check`` and ``/face/detect``.

    Usage: ``async with FakeJumdata() as fake: url = fake.base_url + CHECK_PATH``.
    Auth refusals (assumed forms): missing field -> 400
    "<name>不能为空", unknown appId -> 400 "appId不存在", bad sign -> 400 "签名错误",
    timestamp more than 5 minutes off -> 610 "请求超时". Every JSON answer is HTTP 200.
    """

    def __init__(
        self,
        app_id: str = "test-app",
        app_secret: str = "test-secret",
        *,
        timestamp_window_ms: int = TIMESTAMP_WINDOW_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            (CHECK_PATH, DETECT_PATH), {CHECK_PATH: CHECK_MESSAGES, DETECT_PATH: DETECT_MESSAGES}
        )
        self.app_id = app_id
        self.app_secret = app_secret
        self.timestamp_window_ms = timestamp_window_ms
        self._clock = clock

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        app.router.add_post(CHECK_PATH, self._handle)
        app.router.add_post(DETECT_PATH, self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def _not_found(self, request: web.Request) -> web.Response:
        received = self._record(request, FormData())
        return self._respond_json(received, _bare(404, CHECK_MESSAGES[404]))

    def _authenticate(self, fields: Mapping[str, str]) -> dict[str, Any] | None:
        for name in ("appId", "timestamp", "sign"):
            if not fields.get(name, "").strip():
                return _bare(400, f"{name}不能为空")
        if fields["appId"] != self.app_id:
            return _bare(400, "appId不存在")
        timestamp = fields["timestamp"]
        if not (timestamp.isascii() and timestamp.isdigit()):
            return _bare(400, "timestamp格式错误")
        if fields["sign"] != jumdata_expected_sign(self.app_id, self.app_secret, timestamp):
            return _bare(400, "签名错误")
        if abs(self._clock() * 1000 - int(timestamp)) > self.timestamp_window_ms:
            return _bare(610, "请求超时")
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = parse_form(request.headers.get("Content-Type", ""), body)
        received = self._record(request, form)
        refusal = self._authenticate(form.fields)
        if refusal is not None:
            return self._respond_json(received, refusal)
        received.auth_ok = True

        path = request.path
        if self.faults is not None:
            return await self._with_fault(request, received, form, self.faults)
        script = self._pop_script(path)
        if script is not None and script.hang:
            await self._hang(script.hang)
        if script is not None and script.http_status is not None and script.http_status != 200:
            return self._respond_html(received, script.http_status)
        if script is not None and script.malformed:
            return self._respond_malformed(received)

        image_field, data, problem = self._take_image(form, ("base64", "file", "url"))
        received.image_field, received.image_bytes = image_field, data
        if script is not None and script.code is not None and script.code != 200:
            return self._respond_json(received, self._coded(path, script.code, script.msg))
        if problem is not None:
            if path == DETECT_PATH and problem["code"] == self._url_missing_code:
                problem = _bare(400, "照片找不到")  # detect has no 203 (assumed 400)
            return self._respond_json(received, problem)
        assert data is not None
        if path == CHECK_PATH:
            return self._respond_json(received, self._check_answer(path, data, script))
        return self._respond_json(received, self._detect_answer(form, data, script))

    async def _with_fault(
        self, request: web.Request, received: Received, form: FormData, faults: Faults
    ) -> web.StreamResponse:
        """An authenticated call answered under ``faults``: the fault its photo draws, and
        every billed answer entered in the ledger."""
        path = request.path
        image_field, data, problem = self._take_image(form, ("base64", "file", "url"))
        received.image_field, received.image_bytes = image_field, data
        photo = photo_key(data or b"")
        fault = faults.choose(path, photo)
        if fault is Fault.UNAVAILABLE:
            return self._respond_html(received, 503)
        if fault is Fault.RATE_LIMITED:
            return self._respond_json(received, self._coded(path, 609))
        if problem is not None or data is None:
            answer = problem if problem is not None else _bare(400, "图片不能为空")
        elif path == CHECK_PATH:
            answer = self._check_answer(path, data, None)
        else:
            answer = self._detect_answer(form, data, None)
        if answer.get("charge") is True:
            if fault is Fault.BILL_THEN_HANG:
                await faults.hang(request, self._stopping)
            faults.bill(path, photo, request)
        return self._respond_json(received, answer)

    # face detect -------------------------------------------------------------

    def _detect_answer(self, form: FormData, data: bytes, script: Script | None) -> dict[str, Any]:
        raw_max = form.fields.get("maxFaceNum", "").strip() or "1"
        if not (raw_max.isascii() and raw_max.isdigit()) or not 1 <= int(raw_max) <= MAX_FACE_NUM:
            return _bare(400, "maxFaceNum参数错误")
        if len(data) > DETECT_MAX_BYTES:
            return _bare(400, "图片大小不能超过8M")
        info = inspect_image(data, decode_up_to=DETECT_MAX_LONG)
        if info is None or info.photo_format not in _PHOTO_FORMATS.values():
            return _bare(400, "图片格式错误,仅支持PNG、JPG、JPEG、BMP")
        long_side, short_side = max(info.width, info.height), min(info.width, info.height)
        if long_side > DETECT_MAX_LONG or short_side > DETECT_MAX_SHORT:
            return _bare(400, "图片分辨率不能超过1920*1080")
        if not info.complete:
            return _bare(400, "图片解析失败")

        scripted = script.faces if script is not None and script.faces is not None else [{}]
        if not scripted:
            return self._coded(DETECT_PATH, 201, script.msg if script is not None else None)
        requested = {name.strip() for name in form.fields.get("faceField", "").split(",")}
        faces = [
            self._render_face(face, info, requested, index)
            for index, face in enumerate(scripted[: int(raw_max)])
        ]
        return {
            "code": 200,
            "msg": script.msg if script is not None and script.msg else DETECT_MESSAGES[200],
            "taskNo": _task_no(),
            "charge": True,
            "data": {"faceNum": len(faces), "faceList": faces},
        }

    @staticmethod
    def _render_face(
        scripted: Mapping[str, Any], info: ImageInfo, requested: set[str], index: int
    ) -> dict[str, Any]:
        """Seed-shaped face: box and landmarks fitted into the image, optional fields only
        when asked for in ``faceField`` (or scripted)."""
        face = copy.deepcopy(SEED_FACE)
        side = max(1, min(info.width, info.height) // 2)
        left = min(max(0, (info.width - side) // 2 + index * side // 4), max(0, info.width - side))
        top = min(info.height // 5, max(0, info.height - side))
        face["face_token"] = secrets.token_hex(16)
        face["location"] = {"left": left, "top": top, "width": side, "height": side, "rotation": 4}

        def point(fx: float, fy: float) -> dict[str, float]:
            return {"x": round(left + fx * side, 5), "y": round(top + fy * side, 5)}

        face["landmark"] = [point(0.3, 0.35), point(0.7, 0.35), point(0.5, 0.55), point(0.5, 0.78)]
        face["landmark72"] = [
            point(
                0.5 + 0.45 * math.cos(2 * math.pi * k / 72),
                0.5 + 0.45 * math.sin(2 * math.pi * k / 72),
            )
            for k in range(72)
        ]
        face.update(copy.deepcopy(dict(scripted)))
        wanted = set(_FACE_BASE_KEYS) | set(scripted)
        for name in requested:
            wanted.update(_FACE_FIELD_KEYS.get(name, ()))
        return {key: value for key, value in face.items() if key in wanted}
