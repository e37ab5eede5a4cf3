"""The fake provider servers behave like the documented services.

Requests go over real HTTP with a plain aiohttp client; signatures are made with
``services/signing.py`` or by hand from the documented formulas, and the fakes check
them with their own code (``tests/fakes/_sigcheck.py``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from PIL import Image

from services.signing import (
    huawei_canonical_request,
    huawei_sign,
    huawei_signature,
    huawei_string_to_sign,
)
from tests.fakes.huawei import HUAWEI_CHECK_MESSAGES, FakeHuaweiCheck
from tests.fakes.jumdata import (
    CHECK_MESSAGES,
    CHECK_PATH,
    DETECT_MESSAGES,
    DETECT_PATH,
    SEED_DETECT_RESULT,
    SEED_FACE,
    FakeJumdata,
    derive_reasons,
)

BOUNDARY = "facecheckboundary7MA4YWxk"

# ----------------------------------------------------------------------- helpers


def make_image(
    width: int = 64,
    height: int = 48,
    fmt: str = "PNG",
    *,
    mode: str = "RGB",
    dpi: tuple[int, int] | None = None,
) -> bytes:
    buffer = io.BytesIO()
    color: Any = (200, 180, 160, 255)[: len(mode)] if mode in {"RGB", "RGBA"} else 128
    image = Image.new(mode, (width, height), color)
    options: dict[str, Any] = {"dpi": dpi} if dpi else {}
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def multipart(fields: Mapping[str, str], files: Mapping[str, bytes] | None = None) -> bytes:
    """A multipart/form-data body built by hand (boundary ``BOUNDARY``)."""
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, data in (files or {}).items():
        chunks.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="photo.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
FORM_TYPE = "application/x-www-form-urlencoded"


def auth_fields(
    app_id: str = "test-app", secret: str = "test-secret", timestamp: int | None = None
) -> dict[str, str]:
    """jumdata auth fields by the documented formula, computed here by hand."""
    ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
    return {
        "appId": app_id,
        "timestamp": ts,
        "sign": hashlib.sha256(f"{app_id}{secret}{ts}".encode()).hexdigest(),
    }


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
    limit_s: float = 10,
) -> tuple[int, str, str]:
    """(HTTP status, Content-Type, text) of a POST."""
    async with session.post(
        url,
        data=body,
        headers={"Content-Type": content_type, **(headers or {})},
        timeout=aiohttp.ClientTimeout(total=limit_s),
    ) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def jumdata_post(
    session: aiohttp.ClientSession,
    fake: FakeJumdata,
    path: str,
    fields: Mapping[str, str],
    files: Mapping[str, bytes] | None = None,
    *,
    urlencoded: bool = False,
) -> dict[str, Any]:
    if urlencoded:
        body, content_type = urlencode(dict(fields)).encode(), FORM_TYPE
    else:
        body, content_type = multipart(fields, files), MULTIPART_TYPE
    status, _, text = await post(session, fake.base_url + path, body, content_type)
    assert status == 200
    return json.loads(text)


async def huawei_post(
    session: aiohttp.ClientSession,
    fake: FakeHuaweiCheck,
    fields: Mapping[str, str],
    *,
    secret: str | None = None,
    key: str | None = None,
    now: datetime | None = None,
    tamper: bytes = b"",
) -> tuple[int, dict[str, Any]]:
    body = urlencode(dict(fields)).encode()
    headers = {"Content-Type": FORM_TYPE}
    signed = huawei_sign(
        "POST",
        fake.url,
        headers,
        body,
        key or fake.app_key,
        secret or fake.app_secret,
        now=now,
    )
    status, _, text = await post(session, fake.url, body + tamper, FORM_TYPE, signed)
    return status, json.loads(text)


def seed_shape_keys(with_dpi: bool) -> list[str]:
    keys = list(SEED_DETECT_RESULT)
    if not with_dpi:
        keys = [k for k in keys if k not in {"dpi", "size_mm"}]
    return keys


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def jumdata() -> AsyncIterator[FakeJumdata]:
    async with FakeJumdata() as fake:
        yield fake


@pytest.fixture
async def huawei() -> AsyncIterator[FakeHuaweiCheck]:
    async with FakeHuaweiCheck() as fake:
        yield fake


# ------------------------------------------------------------- jumdata: auth


async def test_jumdata_good_signature_accepted_and_measured(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    photo = make_image(640, 480)
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": photo})

    assert list(answer) == ["code", "msg", "taskNo", "charge", "data"]
    assert answer["code"] == 200 and answer["msg"] == "成功" and answer["charge"] is True
    assert re.fullmatch(r"\d{24}", answer["taskNo"])
    assert list(answer["data"]) == ["pass", "reasons", "detect_result"]
    assert answer["data"]["pass"] is True and answer["data"]["reasons"] == []
    result = answer["data"]["detect_result"]
    assert list(result) == seed_shape_keys(with_dpi=False)
    assert result["size_pix"] == [640, 480]
    assert result["file_size"] == len(photo)
    assert result["photo_format"] == "png"
    assert result["color_channels"] == 3
    assert result["shoulder_equal"] == 80  # default profile passes

    assert jumdata.charged == 1
    (received,) = jumdata.requests
    assert received.auth_ok and received.image_field == "file" and received.image_bytes == photo
    assert received.code == 200 and received.path == CHECK_PATH


async def test_jumdata_urlencoded_base64_accepted(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    photo = make_image(300, 400, "JPEG")
    fields = {**auth_fields(), "base64": base64.b64encode(photo).decode()}
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields, urlencoded=True)
    assert answer["code"] == 200
    assert answer["data"]["detect_result"]["photo_format"] == "jpg"
    assert answer["data"]["detect_result"]["size_pix"] == [300, 400]
    assert jumdata.requests[0].image_field == "base64"


async def test_jumdata_accepts_aiohttp_formdata_upload(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    photo = make_image(33, 44, "BMP")
    form = aiohttp.FormData()
    for name, value in auth_fields().items():
        form.add_field(name, value)
    form.add_field("file", photo, filename="photo.bmp", content_type="image/bmp")
    async with session.post(jumdata.base_url + CHECK_PATH, data=form) as response:
        answer = await response.json()
    assert answer["code"] == 200
    assert answer["data"]["detect_result"]["photo_format"] == "bmp"
    assert jumdata.requests[0].image_bytes == photo


async def test_jumdata_json_body_is_not_read(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    body = json.dumps({**auth_fields(), "base64": "aGVsbG8="}).encode()
    status, _, text = await post(session, jumdata.base_url + CHECK_PATH, body, "application/json")
    assert status == 200
    assert json.loads(text) == {"msg": "appId不能为空", "code": 400}


@pytest.mark.parametrize("missing", ["appId", "timestamp", "sign"])
async def test_jumdata_missing_auth_field(
    session: aiohttp.ClientSession, jumdata: FakeJumdata, missing: str
) -> None:
    fields = auth_fields()
    del fields[missing]
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields, {"file": make_image()})
    assert answer == {"msg": f"{missing}不能为空", "code": 400}


async def test_jumdata_unknown_app_id(session: aiohttp.ClientSession, jumdata: FakeJumdata) -> None:
    fields = auth_fields(app_id="someone-else")
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields, {"file": make_image()})
    assert answer == {"msg": "appId不存在", "code": 400}


async def test_jumdata_wrong_secret(session: aiohttp.ClientSession, jumdata: FakeJumdata) -> None:
    fields = auth_fields(secret="wrong-secret")
    answer = await jumdata_post(session, jumdata, DETECT_PATH, fields, {"file": make_image()})
    assert answer == {"msg": "签名错误", "code": 400}
    assert jumdata.requests[0].auth_ok is False and jumdata.charged == 0


@pytest.mark.parametrize("offset_ms", [-6 * 60 * 1000, 6 * 60 * 1000])
async def test_jumdata_stale_or_future_timestamp(
    session: aiohttp.ClientSession, jumdata: FakeJumdata, offset_ms: int
) -> None:
    fields = auth_fields(timestamp=int(time.time() * 1000) + offset_ms)
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields, {"file": make_image()})
    assert answer == {"msg": "请求超时", "code": 610}


async def test_jumdata_timestamp_within_window_accepted(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    fields = auth_fields(timestamp=int(time.time() * 1000) - 4 * 60 * 1000)
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields, {"file": make_image()})
    assert answer["code"] == 200


# ----------------------------------------------------------- jumdata: images


async def test_jumdata_no_image(session: aiohttp.ClientSession, jumdata: FakeJumdata) -> None:
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields())
    assert answer == {"msg": "图片不能为空", "code": 400}


async def test_jumdata_base64_wins_over_file_and_url(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    from_b64, from_file = make_image(100, 120), make_image(50, 60)
    jumdata.url_images["https://img.example/p.png"] = make_image(10, 10)
    fields = {
        **auth_fields(),
        "base64": base64.b64encode(from_b64).decode(),
        "url": "https://img.example/p.png",
    }
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields, {"file": from_file})
    assert answer["data"]["detect_result"]["size_pix"] == [100, 120]

    fields.pop("base64")
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields, {"file": from_file})
    assert answer["data"]["detect_result"]["size_pix"] == [50, 60]

    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields)
    assert answer["data"]["detect_result"]["size_pix"] == [10, 10]
    assert [r.image_field for r in jumdata.requests] == ["base64", "file", "url"]


async def test_jumdata_unknown_url_not_found(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    fields = {**auth_fields(), "url": "https://img.example/missing.png"}
    answer = await jumdata_post(session, jumdata, CHECK_PATH, fields)
    assert answer == {"msg": "照片找不到", "code": 203}


@pytest.mark.parametrize(
    "payload",
    [
        b"definitely not an image",
        make_image(200, 200)[:-300],  # truncated PNG
        make_image(200, 200, "JPEG")[:-200],  # truncated JPEG
        make_image(40, 40, "GIF"),
    ],
    ids=["garbage", "truncated-png", "truncated-jpeg", "gif"],
)
async def test_jumdata_check_unprocessable_photo_is_201(
    session: aiohttp.ClientSession, jumdata: FakeJumdata, payload: bytes
) -> None:
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": payload})
    assert list(answer) == ["code", "msg", "taskNo", "charge"]
    assert answer["code"] == 201 and answer["msg"] == "照片处理失败"
    assert answer["charge"] is False and re.fullmatch(r"\d{24}", answer["taskNo"])
    assert jumdata.charged == 0


async def test_jumdata_check_longest_side_over_2500_is_204(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    ok = await jumdata_post(
        session, jumdata, CHECK_PATH, auth_fields(), {"file": make_image(2500, 8)}
    )
    assert ok["code"] == 200
    answer = await jumdata_post(
        session, jumdata, CHECK_PATH, auth_fields(), {"file": make_image(8, 2501)}
    )
    assert answer["code"] == 204 and answer["msg"] == CHECK_MESSAGES[204]
    assert answer["charge"] is False


async def test_jumdata_check_file_of_6_mib_is_400(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    big = make_image(16, 16) + b"\0" * (6 * 1024 * 1024)
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": big})
    assert answer["code"] == 400 and set(answer) == {"msg", "code"}


async def test_jumdata_check_dpi_and_size_mm_measured(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    photo = make_image(600, 800, "JPEG", dpi=(300, 300))
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": photo})
    result = answer["data"]["detect_result"]
    assert list(result) == seed_shape_keys(with_dpi=True)
    assert result["dpi"] == [300, 300]
    assert result["size_mm"] == [51, 68]  # the seed example's own numbers
    assert result["file_size"] == len(photo)


async def test_jumdata_check_rgba_png_has_4_channels(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    photo = make_image(30, 40, mode="RGBA")
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": photo})
    assert answer["data"]["detect_result"]["color_channels"] == 4


def test_derive_reasons_reproduces_seed_example() -> None:
    assert derive_reasons(SEED_DETECT_RESULT) == ["两侧肩膀姿态不佳"]
    assert derive_reasons({"face_x_occupy": 0.7, "eyes_y_center": 0.2}) == [
        "脸部太大",
        "脸部太靠上",
    ]


async def test_jumdata_scripted_detect_result_and_reasons(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    jumdata.script(CHECK_PATH, detect_result={"shoulder_equal": 46, "size_pix": [1, 1]})
    jumdata.script(CHECK_PATH, reasons=["背景杂乱"])
    photo = make_image(90, 120)

    first = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": photo})
    assert first["data"]["pass"] is False
    assert first["data"]["reasons"] == ["两侧肩膀姿态不佳"]
    assert first["data"]["detect_result"]["shoulder_equal"] == 46
    assert first["data"]["detect_result"]["size_pix"] == [90, 120]  # measured wins

    second = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": photo})
    assert second["data"]["pass"] is False and second["data"]["reasons"] == ["背景杂乱"]

    third = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": photo})
    assert third["data"]["pass"] is True
    assert jumdata.charged == 3  # a failed check is still a billed success (code 200)


# ---------------------------------------------------------- jumdata: scripting


def _assert_coded_shape(answer: dict[str, Any], code: int, msg: str, *, charge: bool) -> None:
    if 200 < code < 300:
        keys = ["code", "msg", "taskNo", "charge"] if charge else ["code", "msg", "taskNo"]
        assert list(answer) == keys
        assert re.fullmatch(r"\d{24}", answer["taskNo"])
        assert answer["code"] == code and answer["msg"] == msg
        if charge:
            assert answer["charge"] is False
    else:
        assert answer == {"msg": msg, "code": code}


@pytest.mark.parametrize("code", sorted(set(CHECK_MESSAGES) - {200}))
async def test_jumdata_check_scripted_codes(
    session: aiohttp.ClientSession, jumdata: FakeJumdata, code: int
) -> None:
    jumdata.script(CHECK_PATH, code=code)
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": make_image()})
    _assert_coded_shape(answer, code, CHECK_MESSAGES[code], charge=True)
    assert jumdata.charged == 0 and jumdata.requests[0].code == code


@pytest.mark.parametrize("code", sorted(set(DETECT_MESSAGES) - {200}))
async def test_jumdata_detect_scripted_codes(
    session: aiohttp.ClientSession, jumdata: FakeJumdata, code: int
) -> None:
    jumdata.script(DETECT_PATH, code=code)
    answer = await jumdata_post(
        session, jumdata, DETECT_PATH, auth_fields(), {"file": make_image()}
    )
    _assert_coded_shape(answer, code, DETECT_MESSAGES[code], charge=True)


async def test_jumdata_script_times_custom_msg_and_validation(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    jumdata.script(CHECK_PATH, code=606, times=2)
    jumdata.script(CHECK_PATH, code=999, msg="上游超时")
    codes = []
    for _ in range(4):
        answer = await jumdata_post(
            session, jumdata, CHECK_PATH, auth_fields(), {"file": make_image()}
        )
        codes.append((answer["code"], answer["msg"]))
    assert codes == [(606, "调用超限,请稍候再试")] * 2 + [(999, "上游超时"), (200, "成功")]
    with pytest.raises(ValueError):
        jumdata.script(CHECK_PATH, code=605)  # not in the seed table
    with pytest.raises(ValueError):
        jumdata.script("/nope", code=500)
    with pytest.raises(ValueError):
        jumdata.script(CHECK_PATH, faces=[])


async def test_jumdata_script_does_not_hide_auth_failures(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    jumdata.script(CHECK_PATH, code=500)
    refused = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(secret="bad"))
    assert refused == {"msg": "签名错误", "code": 400}
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": make_image()})
    assert answer == {"msg": "系统维护,请稍候再试", "code": 500}


async def test_jumdata_hang_delays_answer(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    jumdata.script(CHECK_PATH, hang=0.4)
    started = time.monotonic()
    answer = await jumdata_post(session, jumdata, CHECK_PATH, auth_fields(), {"file": make_image()})
    assert time.monotonic() - started >= 0.4
    assert answer["code"] == 200


async def test_jumdata_hang_outlasts_client_timeout_and_stop_is_prompt(
    session: aiohttp.ClientSession,
) -> None:
    fake = await FakeJumdata().start()
    fake.script(DETECT_PATH, hang=30)
    body = multipart(auth_fields(), {"file": make_image()})
    with pytest.raises(TimeoutError):
        await post(session, fake.base_url + DETECT_PATH, body, MULTIPART_TYPE, limit_s=0.3)
    assert len(fake.requests) == 1 and fake.requests[0].code is None
    started = time.monotonic()
    await fake.stop()
    assert time.monotonic() - started < 5


async def test_jumdata_malformed_body_is_not_json(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    jumdata.script(CHECK_PATH, malformed=True)
    body = multipart(auth_fields(), {"file": make_image()})
    status, _, text = await post(session, jumdata.base_url + CHECK_PATH, body, MULTIPART_TYPE)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_jumdata_http_status_answers_html(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    jumdata.script(DETECT_PATH, http_status=502)
    body = multipart(auth_fields(), {"file": make_image()})
    status, content_type, text = await post(
        session, jumdata.base_url + DETECT_PATH, body, MULTIPART_TYPE
    )
    assert status == 502 and content_type.startswith("text/html")
    assert "502 Bad Gateway" in text


async def test_jumdata_unknown_path_is_404(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    status, _, text = await post(session, jumdata.base_url + "/id-photo/check", b"", FORM_TYPE)
    assert status == 200 and json.loads(text) == {"msg": "接口地址不正确", "code": 404}


# ---------------------------------------------------------- jumdata: detect


async def test_jumdata_detect_default_face(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    answer = await jumdata_post(
        session, jumdata, DETECT_PATH, auth_fields(), {"file": make_image(400, 300)}
    )
    assert list(answer) == ["code", "msg", "taskNo", "charge", "data"]
    assert answer["code"] == 200 and answer["charge"] is True
    assert answer["data"]["faceNum"] == 1
    (face,) = answer["data"]["faceList"]
    assert list(face) == ["face_token", "location", "face_probability", "angle"]
    location = face["location"]
    assert list(location) == list(SEED_FACE["location"])
    assert (
        location["left"] + location["width"] <= 400 and location["top"] + location["height"] <= 300
    )
    assert jumdata.charged == 1


async def test_jumdata_detect_face_fields(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    fields = {**auth_fields(), "faceField": "age,landmark,quality,gender", "maxFaceNum": "1"}
    answer = await jumdata_post(session, jumdata, DETECT_PATH, fields, {"file": make_image()})
    (face,) = answer["data"]["faceList"]
    expected = ["face_token", "location", "face_probability", "angle", "landmark", "landmark72"]
    expected += ["age", "gender", "quality"]
    assert list(face) == expected
    assert len(face["landmark"]) == 4 and len(face["landmark72"]) == 72
    assert face["quality"] == SEED_FACE["quality"]


async def test_jumdata_detect_scripted_faces(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    jumdata.script(DETECT_PATH, faces=[{"face_probability": 0.9}, {}, {}])
    jumdata.script(DETECT_PATH, faces=[])
    fields = {**auth_fields(), "maxFaceNum": "2"}
    answer = await jumdata_post(session, jumdata, DETECT_PATH, fields, {"file": make_image()})
    assert answer["data"]["faceNum"] == 2
    assert answer["data"]["faceList"][0]["face_probability"] == 0.9

    none = await jumdata_post(session, jumdata, DETECT_PATH, auth_fields(), {"file": make_image()})
    _assert_coded_shape(none, 201, "图片中没有人脸", charge=True)


@pytest.mark.parametrize("value", ["0", "121", "two"])
async def test_jumdata_detect_bad_max_face_num(
    session: aiohttp.ClientSession, jumdata: FakeJumdata, value: str
) -> None:
    fields = {**auth_fields(), "maxFaceNum": value}
    answer = await jumdata_post(session, jumdata, DETECT_PATH, fields, {"file": make_image()})
    assert answer["code"] == 400 and set(answer) == {"msg", "code"}


@pytest.mark.parametrize(
    ("size", "fmt", "code"),
    [
        ((1920, 1080), "PNG", 200),
        ((1080, 1920), "JPEG", 200),
        ((1921, 100), "PNG", 400),
        ((1200, 1200), "PNG", 400),
        ((64, 64), "GIF", 400),
        ((64, 64), "BMP", 200),
    ],
)
async def test_jumdata_detect_image_limits(
    session: aiohttp.ClientSession,
    jumdata: FakeJumdata,
    size: tuple[int, int],
    fmt: str,
    code: int,
) -> None:
    photo = make_image(*size, fmt)
    answer = await jumdata_post(session, jumdata, DETECT_PATH, auth_fields(), {"file": photo})
    assert answer["code"] == code


async def test_jumdata_detect_over_8_mib_is_400(
    session: aiohttp.ClientSession, jumdata: FakeJumdata
) -> None:
    big = make_image(16, 16) + b"\0" * (8 * 1024 * 1024)
    answer = await jumdata_post(session, jumdata, DETECT_PATH, auth_fields(), {"file": big})
    assert answer["code"] == 400


# ------------------------------------------------------------------ Huawei APIG


def _apig_refusal(status: int, answer: dict[str, Any], message: str) -> None:
    assert status == 401
    assert list(answer) == ["error_msg", "error_code", "request_id"]
    assert answer["error_code"] == "APIG.0303"
    assert answer["error_msg"].startswith("Incorrect app authentication information: " + message)
    assert re.fullmatch(r"[0-9a-f]{32}", answer["request_id"])


async def test_huawei_good_signature_accepted(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    photo = make_image(600, 800, "JPEG", dpi=(300, 300))
    status, answer = await huawei_post(
        session, huawei, {"base64": base64.b64encode(photo).decode()}
    )
    assert status == 200
    assert list(answer) == ["code", "msg", "taskNo", "data"]  # no "charge" (seed 000)
    assert answer["code"] == 200 and answer["data"]["pass"] is True
    result = answer["data"]["detect_result"]
    assert list(result) == seed_shape_keys(with_dpi=True)
    assert result["size_pix"] == [600, 800] and result["file_size"] == len(photo)
    assert result["size_mm"] == [51, 68]
    assert huawei.charged == 1
    (received,) = huawei.requests
    assert received.auth_ok and received.image_field == "base64" and received.image_bytes == photo


async def test_huawei_multipart_body_signed_with_boundary(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    photo = make_image(120, 160)
    body = multipart({"base64": base64.b64encode(photo).decode()})
    headers = {"Content-Type": MULTIPART_TYPE}
    signed = huawei_sign("POST", huawei.url, headers, body, huawei.app_key, huawei.app_secret)
    status, _, text = await post(session, huawei.url, body, MULTIPART_TYPE, signed)
    assert status == 200 and json.loads(text)["data"]["detect_result"]["size_pix"] == [120, 160]


async def test_huawei_wrong_secret_refused(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    status, answer = await huawei_post(session, huawei, {"url": "x"}, secret="wrong")
    _apig_refusal(status, answer, "verify aksk signature fail")
    assert huawei.requests[0].auth_ok is False and huawei.charged == 0


async def test_huawei_unknown_app_key_refused(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    status, answer = await huawei_post(session, huawei, {"url": "x"}, key="other-key")
    _apig_refusal(status, answer, "app not found, appkey other-key")


async def test_huawei_stale_date_refused(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=16)
    status, answer = await huawei_post(session, huawei, {"url": "x"}, now=stale)
    _apig_refusal(status, answer, "signature expired, signature time:")
    assert re.search(r"signature time:\d{8}T\d{6}Z,server time:\d{8}T\d{6}Z$", answer["error_msg"])


async def test_huawei_date_within_15_minutes_accepted(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    huawei.url_images["https://img.example/a.png"] = make_image()
    recent = datetime.now(UTC) - timedelta(minutes=14)
    status, answer = await huawei_post(
        session, huawei, {"url": "https://img.example/a.png"}, now=recent
    )
    assert status == 200 and answer["code"] == 200


async def test_huawei_changed_body_refused(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    status, answer = await huawei_post(session, huawei, {"url": "x"}, tamper=b"&base64=AAAA")
    _apig_refusal(status, answer, "verify aksk signature fail")


async def test_huawei_missing_authorization_refused(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    status, _, text = await post(session, huawei.url, b"url=x", FORM_TYPE)
    _apig_refusal(status, json.loads(text), "Access or Credential is empty in Authorization")


async def test_huawei_host_must_be_signed(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    # Signed by hand from the documented formula, leaving host out of SignedHeaders.
    body = b"url=x"
    sdk_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"content-type": FORM_TYPE, "x-sdk-date": sdk_date}
    signed = ["content-type", "x-sdk-date"]
    canonical = huawei_canonical_request("POST", huawei.path, "", headers, signed, body)
    signature = huawei_signature(huawei_string_to_sign(canonical, sdk_date), huawei.app_secret)
    authorization = (
        f"SDK-HMAC-SHA256 Access={huawei.app_key}, SignedHeaders={';'.join(signed)}, "
        f"Signature={signature}"
    )
    status, _, text = await post(
        session,
        huawei.url,
        body,
        FORM_TYPE,
        {"X-Sdk-Date": sdk_date, "Authorization": authorization},
    )
    _apig_refusal(status, json.loads(text), "verify aksk signature fail")


async def test_huawei_base64_over_url_and_file_ignored(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    huawei.url_images["https://img.example/u.png"] = make_image(11, 12)
    fields = {
        "base64": base64.b64encode(make_image(21, 22)).decode(),
        "url": "https://img.example/u.png",
    }
    _, answer = await huawei_post(session, huawei, fields)
    assert answer["data"]["detect_result"]["size_pix"] == [21, 22]
    _, answer = await huawei_post(session, huawei, {"url": "https://img.example/u.png"})
    assert answer["data"]["detect_result"]["size_pix"] == [11, 12]

    body = multipart({}, {"file": make_image()})  # "file" is not a parameter of seed 000
    headers = {"Content-Type": MULTIPART_TYPE}
    signed = huawei_sign("POST", huawei.url, headers, body, huawei.app_key, huawei.app_secret)
    status, _, text = await post(session, huawei.url, body, MULTIPART_TYPE, signed)
    assert status == 200 and json.loads(text) == {"msg": "图片不能为空", "code": 400}


@pytest.mark.parametrize("code", sorted(set(HUAWEI_CHECK_MESSAGES) - {200}))
async def test_huawei_scripted_codes(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck, code: int
) -> None:
    huawei.script(code=code)
    status, answer = await huawei_post(session, huawei, {"base64": "aGVsbG8="})
    assert status == 200
    _assert_coded_shape(answer, code, HUAWEI_CHECK_MESSAGES[code], charge=False)
    assert huawei.charged == 0


async def test_huawei_scripted_transport_failures(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    photo_field = {"base64": base64.b64encode(make_image()).decode()}
    huawei.script(hang=0.3)
    huawei.script(huawei.path, malformed=True)
    huawei.script(http_status=504)
    huawei.script(reasons=["闭眼"])

    started = time.monotonic()
    status, answer = await huawei_post(session, huawei, photo_field)
    assert time.monotonic() - started >= 0.3 and answer["code"] == 200

    body = urlencode(photo_field).encode()
    headers = {"Content-Type": FORM_TYPE}
    for expected_status in (200, 504):
        signed = huawei_sign("POST", huawei.url, headers, body, huawei.app_key, huawei.app_secret)
        status, content_type, text = await post(session, huawei.url, body, FORM_TYPE, signed)
        assert status == expected_status
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    assert content_type.startswith("text/html")

    _, answer = await huawei_post(session, huawei, photo_field)
    assert answer["data"] == {
        "pass": False,
        "reasons": ["闭眼"],
        "detect_result": answer["data"]["detect_result"],
    }


async def test_huawei_unknown_path_is_apig_404(
    session: aiohttp.ClientSession, huawei: FakeHuaweiCheck
) -> None:
    status, _, text = await post(session, huawei.base_url + "/other", b"", FORM_TYPE)
    assert status == 404 and json.loads(text)["error_code"] == "APIG.0101"
