"""JD Cloud NeuHub client: parsing of the seed answers, every code's failure family and
message, and the client against the fake gateway over real HTTP."""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from PIL import Image

import services.providers.jdcloud as jd
from services.errors import (
    ProviderAuthError,
    ProviderBudgetError,
    ProviderError,
    ProviderInputError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.images import ImageInfo, PreparedImage, prepare_image
from services.models import Emotion, Gender, Glasses, Race, Usage
from services.providers.http import HttpReply
from services.providers.jdcloud import (
    JDCLOUD_LIMITS,
    JdCloudClient,
    build_analyze_body,
    build_compare_body,
    parse_analyze,
    parse_compare,
)
from services.signing import jdcloud_sign
from tests.conftest import portrait_jpeg
from tests.fakes.jdcloud import (
    BASE64_LIMIT,
    BUSINESS_MESSAGES,
    COMPARE_PATH,
    PROP_PATH,
    SEED_FACE_ITEM,
    SEED_PROPS,
    FakeJdCloud,
)

# ------------------------------------------------------------------ seed answers

SEED_002 = """{
    "code": "10000",
    "charge": true,
    "remain": 997,
    "remainTimes": 997,
    "remainSeconds": -1,
    "msg": "查询成功,扣费",
    "result": {
        "code": 0,
        "faceCount": 1,
        "faceItems": [
            {
                "blurScore": "0.21",
                "boundingBox": {
                    "height": "133.65",
                    "left": "365.02",
                    "top": "20.81",
                    "width": "102.35"
                },
                "isValidPosture": true,
                "posture": {
                    "pitch": "-4.59",
                    "roll": "-9.92",
                    "yaw": "-3.87"
                }
            }
        ],
        "maxFaceCount": 5,
        "msg": "Accept",
        "processTimeInMs": 68,
        "props": [
            {
                "age": 18,
                "beauty": 94,
                "emotion": "平静",
                "hasBeard": false,
                "hasEyeGlasses": false,
                "hasMask": false,
                "hasSunGlasses": false,
                "isFemale": false,
                "race": "黄种人",
                "smile": 20
            }
        ],
        "timestamp": 1585189597439
    }
}"""

SEED_004 = """{
    "code": "10000",
    "charge": true,
    "remain": 998,
    "remainTimes": 998,
    "remainSeconds": -1,
    "msg": "查询成功,扣费",
    "result": {
        "code": 0,
        "faceItemsA": [
            {
                "blurScore": "0.21",
                "boundingBox": {
                    "height": "133.65",
                    "left": "365.02",
                    "top": "20.81",
                    "width": "102.35"
                },
                "isValidPosture": true,
                "posture": {
                    "pitch": "-4.59",
                    "roll": "-9.92",
                    "yaw": "-3.87"
                }
            }
        ],
        "faceItemsB": [
            {
                "blurScore": "0.21",
                "boundingBox": {
                    "height": "133.64",
                    "left": "365.01",
                    "top": "20.81",
                    "width": "102.35"
                },
                "isValidPosture": true,
                "posture": {
                    "pitch": "-4.59",
                    "roll": "-9.92",
                    "yaw": "-3.87"
                }
            }
        ],
        "msg": "Accept",
        "processTimeInMs": 170,
        "score": "1.00",
        "timestamp": 1585188492431
    }
}"""


def reply(payload: Any, status: int = 200) -> HttpReply:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return HttpReply(status=status, body=body)


def system_answer(code: str, msg: str = "x", *, remain: int = 500) -> dict[str, Any]:
    return {
        "code": code,
        "charge": False,
        "remain": remain,
        "remainTimes": remain,
        "remainSeconds": -1,
        "msg": msg,
    }


def business_answer(code: int, **result: Any) -> dict[str, Any]:
    return {
        **system_answer("10000", "查询成功,不扣费", remain=996),
        "result": {"code": code, "msg": BUSINESS_MESSAGES.get(code, "?"), **result},
    }


def catch(parse: Any, payload: Any, status: int = 200) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        parse(reply(payload, status))
    return caught.value


# ---------------------------------------------------------------- seed parsing


def test_seed_002_analyze_answer_parsed_with_string_numbers() -> None:
    result = parse_analyze(HttpReply(200, SEED_002.encode()))
    assert result.provider == "jdcloud"
    assert result.usage == Usage(charged=True, remain=997, remain_times=997, remain_seconds=-1)
    (face,) = result.faces
    assert (face.box.left, face.box.top, face.box.width, face.box.height) == (
        365.02,
        20.81,
        102.35,
        133.65,
    )
    assert face.pose is not None
    assert (face.pose.yaw, face.pose.pitch, face.pose.roll) == (-3.87, -4.59, -9.92)
    assert face.valid_pose is True
    assert face.sharpness == 0.21
    assert face.age == 18 and face.beauty == 94 and face.smile == 20
    assert face.emotion is Emotion.NEUTRAL
    assert face.race is Race.ASIAN
    assert face.gender is Gender.MALE
    assert face.glasses is Glasses.NONE
    assert face.mask is False and face.beard is False


def test_seed_004_compare_answer_parsed_with_string_numbers() -> None:
    result = parse_compare(HttpReply(200, SEED_004.encode()))
    assert result.score == 1.0
    assert result.usage == Usage(charged=True, remain=998, remain_times=998, remain_seconds=-1)
    (face_a,), (face_b,) = result.faces_a, result.faces_b
    assert face_a.box.height == 133.65 and face_a.box.left == 365.02
    assert face_b.box.height == 133.64 and face_b.box.left == 365.01
    assert face_b.pose is not None and face_b.pose.roll == -9.92
    assert result.face_a() == face_a


def test_score_string_and_number_both_read() -> None:
    answer = json.loads(SEED_004)
    answer["result"]["score"] = "0.65"
    assert parse_compare(reply(answer)).score == 0.65
    answer["result"]["score"] = 0.5
    assert parse_compare(reply(answer)).score == 0.5


def test_unreadable_score_is_malformed_and_keeps_charge() -> None:
    answer = json.loads(SEED_004)
    answer["result"]["score"] = "n/a"
    error = catch(parse_compare, answer)
    assert isinstance(error, ProviderUnavailableError)
    assert error.message_id == "provider.malformed"
    assert error.charged is True
    assert error.usage.remain == 998


@pytest.mark.parametrize("score", ["1e307", 1e307, "1.2", -0.5, "-1e9"])
def test_a_score_outside_0_to_1_is_malformed_and_keeps_charge(score: object) -> None:
    """A similarity far outside [0, 1] overflowed in rendering, after the charge was recorded."""
    answer = json.loads(SEED_004)
    answer["result"]["score"] = score
    error = catch(parse_compare, answer)
    assert error.message_id == "provider.malformed" and error.charged is True


@pytest.mark.parametrize(("score", "read"), [("1.005", 1.0), ("-0.004", 0.0), ("0.999", 0.999)])
def test_a_score_a_rounding_step_outside_is_clamped(score: str, read: float) -> None:
    answer = json.loads(SEED_004)
    answer["result"]["score"] = score
    assert parse_compare(reply(answer)).score == read


def test_face_without_box_is_malformed() -> None:
    answer = json.loads(SEED_002)
    del answer["result"]["faceItems"][0]["boundingBox"]
    error = catch(parse_analyze, answer)
    assert error.message_id == "provider.malformed"


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("惊讶", Emotion.SURPRISE),
        ("高兴", Emotion.HAPPY),
        ("悲伤", Emotion.SAD),
        ("生气", Emotion.ANGRY),
        ("平静", Emotion.NEUTRAL),
    ],
)
def test_emotions_mapped(text: str, emotion: Emotion) -> None:
    answer = json.loads(SEED_002)
    answer["result"]["props"][0]["emotion"] = text
    assert parse_analyze(reply(answer)).faces[0].emotion is emotion


@pytest.mark.parametrize(
    ("text", "race"), [("白种人", Race.WHITE), ("黑种人", Race.BLACK), ("黄种人", Race.ASIAN)]
)
def test_races_mapped(text: str, race: Race) -> None:
    answer = json.loads(SEED_002)
    answer["result"]["props"][0]["race"] = text
    assert parse_analyze(reply(answer)).faces[0].race is race


def test_unknown_emotion_and_race_are_none_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    answer = json.loads(SEED_002)
    answer["result"]["props"][0].update(emotion="困惑", race="火星人")
    with caplog.at_level(logging.INFO, logger="services.providers.jdcloud"):
        face = parse_analyze(reply(answer)).faces[0]
    assert face.emotion is None and face.race is None
    assert "困惑" in caplog.text and "火星人" in caplog.text


@pytest.mark.parametrize(
    ("eye", "sun", "expected"),
    [
        (False, False, Glasses.NONE),
        (True, False, Glasses.COMMON),
        (False, True, Glasses.SUN),
        (True, True, Glasses.SUN),
    ],
)
def test_glasses_from_two_flags(eye: bool, sun: bool, expected: Glasses) -> None:
    answer = json.loads(SEED_002)
    answer["result"]["props"][0].update(hasEyeGlasses=eye, hasSunGlasses=sun)
    assert parse_analyze(reply(answer)).faces[0].glasses is expected


def test_props_pair_with_face_items_by_index() -> None:
    answer = json.loads(SEED_002)
    second_item = {**SEED_FACE_ITEM, "boundingBox": {**SEED_FACE_ITEM["boundingBox"], "left": "9"}}
    answer["result"]["faceItems"].append(second_item)
    answer["result"]["props"].append({**SEED_PROPS, "isFemale": True, "hasMask": True})
    first, second = parse_analyze(reply(answer)).faces
    assert first.gender is Gender.MALE and first.mask is False
    assert second.box.left == 9 and second.gender is Gender.FEMALE and second.mask is True


def test_face_items_without_props_have_no_attributes() -> None:
    answer = json.loads(SEED_002)
    answer["result"]["props"] = []
    face = parse_analyze(reply(answer)).faces[0]
    assert face.age is None and face.gender is None and face.glasses is None
    assert face.sharpness == 0.21


# ------------------------------------------------------------------ code tables

SYSTEM_EXPECTED: dict[str, tuple[type[ProviderError], str, bool]] = {
    "10010": (ProviderBudgetError, "jdcloud.pay_required", False),
    "10020": (ProviderUnavailableError, "jdcloud.system_busy", True),
    "10030": (ProviderUnavailableError, "jdcloud.gateway_failed", False),
    "10040": (ProviderBudgetError, "jdcloud.daily_limit", False),
    "10043": (ProviderRateLimitError, "jdcloud.qps_limit", True),
    "10044": (ProviderRateLimitError, "jdcloud.cluster_qps_limit", True),
    "10048": (ProviderAuthError, "jdcloud.no_permission", False),
    "10050": (ProviderAuthError, "jdcloud.user_disabled", False),
    "10060": (ProviderAuthError, "jdcloud.publisher_permission", False),
    "11010": (ProviderUnavailableError, "jdcloud.publisher_fault", False),
    "11030": (ProviderUnavailableError, "jdcloud.publisher_bad_answer", False),
    "19999": (ProviderUnavailableError, "provider.unknown_code", False),
}

BUSINESS_EXPECTED: dict[int, tuple[type[ProviderError], str, bool]] = {
    1: (ProviderUnavailableError, "jdcloud.request_missing_fields", False),
    2: (ProviderInputError, "jdcloud.image_too_small", False),
    3: (ProviderInputError, "jdcloud.image_too_large", False),
    4: (ProviderInputError, "jdcloud.base64_invalid", False),
    5: (ProviderInputError, "jdcloud.base64_too_large", False),
    9: (ProviderUnavailableError, "jdcloud.request_param_invalid", False),
    10: (ProviderInputError, "jdcloud.no_face", False),
    11: (ProviderInputError, "jdcloud.face_quality", False),
    12: (ProviderInputError, "jdcloud.face_posture", False),
    15: (ProviderInputError, "jdcloud.compare_failed", False),
    31: (ProviderUnavailableError, "jdcloud.request_not_json", False),
    41: (ProviderUnavailableError, "jdcloud.timeout", False),
    77: (ProviderUnavailableError, "provider.unknown_code", False),
}


@pytest.mark.parametrize("parse", [parse_compare, parse_analyze])
@pytest.mark.parametrize("code", sorted(SYSTEM_EXPECTED))
def test_system_codes(code: str, parse: Any) -> None:
    family, message_id, retry_safe = SYSTEM_EXPECTED[code]
    error = catch(parse, system_answer(code, "系统提示", remain=0 if code == "10040" else 42))
    assert type(error) is family
    assert error.message_id == message_id
    assert error.retry_safe is retry_safe
    assert error.code == code and error.provider_msg == "系统提示"
    assert error.charged is False and error.provider == "jdcloud"
    expected_remain = 0 if code == "10040" else 42
    assert error.usage == Usage(
        charged=False, remain=expected_remain, remain_times=expected_remain, remain_seconds=-1
    )


def test_system_code_as_number_is_read() -> None:
    error = catch(parse_analyze, {**system_answer("10040"), "code": 10040})
    assert isinstance(error, ProviderBudgetError) and error.code == "10040"


@pytest.mark.parametrize("parse", [parse_compare, parse_analyze])
@pytest.mark.parametrize("code", sorted(BUSINESS_EXPECTED))
def test_business_codes(code: int, parse: Any) -> None:
    family, message_id, retry_safe = BUSINESS_EXPECTED[code]
    error = catch(parse, business_answer(code))
    assert type(error) is family
    assert error.message_id == message_id
    assert error.retry_safe is retry_safe
    assert error.code == code
    assert error.provider_msg == BUSINESS_MESSAGES.get(code, "?")
    assert error.charged is False
    assert error.usage.remain == 996 and error.usage.remain_seconds == -1


def test_every_code_has_its_own_message_id() -> None:
    ids = [info.message_id for info in jd.SYSTEM_CODES.values()]
    ids += [info.message_id for info in jd.BUSINESS_CODES.values()]
    ids += [info.message_id for info in jd.GATEWAY_STATUSES.values()]
    assert len(ids) == len(set(ids))
    assert all(mid.startswith("jdcloud.") for mid in ids)


@pytest.mark.parametrize(
    ("items_a", "items_b", "message_id"),
    [
        ([], [SEED_FACE_ITEM], "jdcloud.no_face_a"),
        ([SEED_FACE_ITEM], [], "jdcloud.no_face_b"),
        ([], [], "jdcloud.no_face"),
        (None, None, "jdcloud.no_face"),
    ],
)
def test_compare_no_face_names_the_photo(
    items_a: list | None, items_b: list | None, message_id: str
) -> None:
    extra = {}
    if items_a is not None:
        extra = {"faceItemsA": items_a, "faceItemsB": items_b}
    error = catch(parse_compare, business_answer(10, **extra))
    assert isinstance(error, ProviderInputError)
    assert error.message_id == message_id
    assert error.code == 10


def test_analyze_no_face_is_generic() -> None:
    error = catch(parse_analyze, business_answer(10, faceCount=0, faceItems=[]))
    assert error.message_id == "jdcloud.no_face"


def test_charged_error_is_never_retry_safe() -> None:
    answer = {**system_answer("10043"), "charge": True}
    error = catch(parse_compare, answer)
    assert error.charged is True and error.retry_safe is False


# -------------------------------------------------------------- gateway answers


def gateway(status: int, name: str, message: str = "m") -> tuple[dict[str, Any], int]:
    return {"requestId": "c0ffee", "error": {"code": status, "status": name, "message": message}}, (
        status
    )


@pytest.mark.parametrize(
    ("status", "name", "family", "message_id", "retry_safe"),
    [
        (401, "APIGW_SIGN_RESULT_NOT_SAME", ProviderAuthError, "jdcloud.gateway_sign_mismatch", 0),
        (401, "APIGW_KEY_NOT_EXITST", ProviderAuthError, "jdcloud.gateway_key_unknown", 0),
        (401, "APIGW_LACK_PARAMS", ProviderAuthError, "jdcloud.gateway_lack_params", 0),
        (401, "UNAUTHENTICATED", ProviderAuthError, "jdcloud.gateway_unauthenticated", 0),
        (403, "APIGW_NONCE_CONFLICT", ProviderUnavailableError, "jdcloud.gateway_nonce", 1),
        (403, "PERMISSION_DENIED", ProviderAuthError, "jdcloud.gateway_auth", 0),
        (401, "SOMETHING_NEW", ProviderAuthError, "jdcloud.gateway_auth", 0),
        (404, "NOT_FOUND", ProviderAuthError, "jdcloud.gateway_not_found", 0),
        (429, "RESOURCE_EXHAUSTED", ProviderRateLimitError, "jdcloud.gateway_throttled", 1),
        (500, "INTERNAL", ProviderUnavailableError, "jdcloud.gateway_fault", 0),
        (502, "BAD_GATEWAY", ProviderUnavailableError, "jdcloud.gateway_fault", 1),
        (503, "UNAVAILABLE", ProviderUnavailableError, "jdcloud.gateway_fault", 1),
        (504, "DEADLINE_EXCEEDED", ProviderUnavailableError, "jdcloud.gateway_fault", 0),
        (400, "INVALID_ARGUMENT", ProviderUnavailableError, "jdcloud.gateway_error", 0),
    ],
)
def test_gateway_envelope(
    status: int, name: str, family: type[ProviderError], message_id: str, retry_safe: int
) -> None:
    payload, http_status = gateway(status, name, "签名不一致")
    error = catch(parse_compare, payload, http_status)
    assert type(error) is family
    assert error.message_id == message_id
    assert error.retry_safe is bool(retry_safe)
    assert error.code == name and error.provider_msg == "签名不一致"
    assert error.task_no == "c0ffee" and error.charged is False


@pytest.mark.parametrize(
    ("status", "family", "message_id", "retry_safe"),
    [
        (200, ProviderUnavailableError, "provider.malformed", False),
        (502, ProviderUnavailableError, "jdcloud.gateway_fault", True),
        (504, ProviderUnavailableError, "jdcloud.gateway_fault", False),
        (429, ProviderRateLimitError, "jdcloud.gateway_throttled", True),
        (403, ProviderUnavailableError, "provider.malformed", False),
    ],
)
def test_non_json_answers(
    status: int, family: type[ProviderError], message_id: str, retry_safe: bool
) -> None:
    error = catch(parse_analyze, b"<html>oops</html>", status)
    assert type(error) is family
    assert error.message_id == message_id and error.retry_safe is retry_safe


@pytest.mark.parametrize(
    "payload",
    [
        {"charge": True, "msg": "no code"},
        {**system_answer("10000"), "result": "nope"},
        {**system_answer("10000"), "result": {"code": "x"}},
        ["not", "an", "object"],
    ],
)
def test_unreadable_envelopes_are_malformed(payload: Any) -> None:
    error = catch(parse_compare, payload)
    assert error.message_id == "provider.malformed"


# ---------------------------------------------------------------- request bodies


def png(
    width: int = 64, height: int = 64, *, color: tuple[int, int, int] = (90, 120, 200)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def prepared(data: bytes, fmt: str = "PNG", size: tuple[int, int] = (64, 64)) -> PreparedImage:
    """A PreparedImage as is, even one outside JD's limits (to see JD refuse it)."""
    width, height = size
    info = ImageInfo(fmt, width, height, len(data), 1, None, "RGB", False)
    return PreparedImage(data, fmt, width, height, info, frozenset())


def test_bodies_are_json_with_plain_base64() -> None:
    a, b = prepared(png(), size=(64, 64)), prepared(png(50, 60), size=(50, 60))
    compare = json.loads(build_compare_body(a, b))
    assert set(compare) == {"imgBase64A", "imgBase64B"}
    assert not compare["imgBase64A"].startswith("data:")
    assert base64.b64decode(compare["imgBase64A"], validate=True) == a.data
    assert base64.b64decode(compare["imgBase64B"], validate=True) == b.data
    analyze = json.loads(build_analyze_body(a))
    assert analyze == {"imgBase64": base64.b64encode(a.data).decode()}


def test_limits_keep_base64_under_2_mb() -> None:
    assert JDCLOUD_LIMITS.max_base64_chars == 2 * 1024 * 1024 - 1
    assert JDCLOUD_LIMITS.byte_cap == JDCLOUD_LIMITS.max_bytes
    assert len(base64.b64encode(bytes(JDCLOUD_LIMITS.max_bytes))) < BASE64_LIMIT
    assert len(base64.b64encode(bytes(JDCLOUD_LIMITS.max_bytes + 1))) >= BASE64_LIMIT - 1
    assert (JDCLOUD_LIMITS.min_side, JDCLOUD_LIMITS.max_side) == (48, 2048)
    assert JDCLOUD_LIMITS.formats == frozenset({"JPEG", "PNG", "BMP"})


# --------------------------------------------------------- client over real HTTP


@pytest.fixture
async def fake() -> AsyncIterator[FakeJdCloud]:
    async with FakeJdCloud() as server:
        yield server


@pytest.fixture
async def client(fake: FakeJdCloud) -> AsyncIterator[JdCloudClient]:
    jd_client = JdCloudClient("test-ak", "test-sk", fake.base_url, timeout=5)
    yield jd_client
    await jd_client.close()


@pytest.fixture
def photo() -> PreparedImage:
    return prepare_image(portrait_jpeg(), JDCLOUD_LIMITS)


async def test_client_compare_succeeds_and_remain_counts_down(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(COMPARE_PATH, score="0.81")
    result = await client.compare(photo, photo)
    assert result.score == 0.81
    assert result.usage == Usage(charged=True, remain=999, remain_times=999, remain_seconds=-1)
    face = result.face_a()
    assert face is not None
    assert 0 <= face.box.left and face.box.right <= photo.width
    assert 0 <= face.box.top and face.box.bottom <= photo.height

    second = await client.compare(photo, photo)
    assert second.score == 0.65  # the fake's default
    assert second.usage.remain == 998 and fake.remain == 998 and fake.charged == 2

    (first_request, second_request) = fake.received(COMPARE_PATH)
    assert first_request.auth_ok and second_request.auth_ok
    assert first_request.headers["Content-Type"] == "application/json"
    assert (
        "SignedHeaders=content-type;host;x-jdcloud-date;x-jdcloud-nonce"
        in (first_request.headers["Authorization"])
    )
    assert first_request.json == json.loads(build_compare_body(photo, photo))
    assert first_request.images == {"imgBase64A": photo.data, "imgBase64B": photo.data}


async def test_client_analyze_sends_signed_max_face_count(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(
        PROP_PATH,
        faces=[{"emotion": "高兴", "isFemale": True, "hasSunGlasses": True}, {}, {}],
    )
    result = await client.analyze(photo, max_faces=2)
    assert len(result.faces) == 2
    first = result.faces[0]
    assert first.emotion is Emotion.HAPPY and first.gender is Gender.FEMALE
    assert first.glasses is Glasses.SUN and first.race is Race.ASIAN
    assert result.usage.remain == 999 and result.usage.charged
    (request,) = fake.received(PROP_PATH)
    assert request.query == {"maxFaceCount": "2"}
    assert request.answer is not None and request.answer["result"]["maxFaceCount"] == 2


async def test_client_analyze_clamps_max_faces(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    await client.analyze(photo, max_faces=500)
    await client.analyze(photo, max_faces=0)
    assert [r.query["maxFaceCount"] for r in fake.received(PROP_PATH)] == ["100", "1"]


async def test_client_wrong_secret_is_auth_error_without_retry(
    fake: FakeJdCloud, photo: PreparedImage
) -> None:
    client = JdCloudClient("test-ak", "wrong-sk", fake.base_url, timeout=5)
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await client.compare(photo, photo)
    finally:
        await client.close()
    assert caught.value.message_id == "jdcloud.gateway_sign_mismatch"
    assert caught.value.code == "APIGW_SIGN_RESULT_NOT_SAME"
    assert [r.auth_reason for r in fake.requests] == ["bad_signature"]
    assert fake.charged == 0 and fake.remain == 1000


async def test_client_unknown_access_key(fake: FakeJdCloud, photo: PreparedImage) -> None:
    client = JdCloudClient("nobody", "test-sk", fake.base_url, timeout=5)
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await client.analyze(photo)
    finally:
        await client.close()
    assert caught.value.message_id == "jdcloud.gateway_key_unknown"


async def test_client_clock_off_by_20_minutes_is_refused(
    fake: FakeJdCloud, photo: PreparedImage
) -> None:
    def late() -> datetime:
        return datetime.now(UTC) - timedelta(minutes=20)

    client = JdCloudClient("test-ak", "test-sk", fake.base_url, timeout=5, clock=late)
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await client.analyze(photo)
    finally:
        await client.close()
    assert caught.value.message_id == "jdcloud.gateway_unauthenticated"
    assert fake.requests[0].auth_reason == "expired"


async def test_client_budget_used_up_is_budget_error(photo: PreparedImage) -> None:
    async with FakeJdCloud(daily_limit=1) as server:
        client = JdCloudClient("test-ak", "test-sk", server.base_url, timeout=5)
        try:
            first = await client.compare(photo, photo)
            with pytest.raises(ProviderBudgetError) as caught:
                await client.compare(photo, photo)
        finally:
            await client.close()
    assert first.usage.remain == 0
    error = caught.value
    assert error.message_id == "jdcloud.daily_limit" and error.code == "10040"
    assert error.charged is False
    assert error.usage == Usage(charged=False, remain=0, remain_times=0, remain_seconds=-1)
    assert server.charged == 1
    assert server.requests[-1].answer == {
        "code": "10040",
        "charge": False,
        "remain": 0,
        "remainTimes": 0,
        "remainSeconds": -1,
        "msg": "超过每天限量，请明天继续",
    }


async def test_client_hang_past_timeout_is_unavailable(
    fake: FakeJdCloud, photo: PreparedImage
) -> None:
    fake.script(COMPARE_PATH, hang=5)
    client = JdCloudClient("test-ak", "test-sk", fake.base_url, timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            await client.compare(photo, photo)
    finally:
        await client.close()
    assert caught.value.code == "timeout" and caught.value.retry_safe is False
    assert time.monotonic() - started < 3
    assert len(fake.requests) == 1  # it may have been processed: not repeated


async def test_client_retries_503_with_a_fresh_signature(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(COMPARE_PATH, http_status=503)
    result = await client.compare(photo, photo)
    assert result.score == 0.65
    first, second = fake.received(COMPARE_PATH)
    assert first.http_status == 503 and second.http_status == 200
    assert first.headers["x-jdcloud-nonce"] != second.headers["x-jdcloud-nonce"]
    assert fake.charged == 1


async def test_client_retries_html_502(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(PROP_PATH, http_status=502, malformed=True)
    result = await client.analyze(photo)
    assert len(result.faces) == 1
    assert [r.http_status for r in fake.received(PROP_PATH)] == [502, 200]


async def test_client_gives_up_after_three_503(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(COMPARE_PATH, http_status=503, times=3)
    with pytest.raises(ProviderUnavailableError) as caught:
        await client.compare(photo, photo)
    assert caught.value.message_id == "jdcloud.gateway_fault"
    assert len(fake.requests) == 3


async def test_client_retries_qps_limit(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(PROP_PATH, system_code="10043")
    result = await client.analyze(photo)
    assert result.usage.charged
    assert [r.system_code for r in fake.received(PROP_PATH)] == ["10043", "10000"]


async def test_client_nonce_conflict_retried_with_a_new_nonce(
    fake: FakeJdCloud,
    client: JdCloudClient,
    photo: PreparedImage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used = uuid.UUID(int=1)
    fake.nonces.add(str(used))
    fresh = iter([used, uuid.UUID(int=2)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(fresh))
    result = await client.compare(photo, photo)
    assert result.usage.charged
    first, second = fake.requests
    assert first.http_status == 403 and first.auth_reason == "nonce_reused"
    assert second.auth_ok and second.headers["x-jdcloud-nonce"] == str(uuid.UUID(int=2))


async def test_client_malformed_answer(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(COMPARE_PATH, malformed=True)
    with pytest.raises(ProviderUnavailableError) as caught:
        await client.compare(photo, photo)
    assert caught.value.message_id == "provider.malformed"
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("faces_a", "faces_b", "message_id"),
    [([], None, "jdcloud.no_face_a"), (None, [], "jdcloud.no_face_b")],
)
async def test_client_compare_no_face_names_the_photo(
    fake: FakeJdCloud,
    client: JdCloudClient,
    photo: PreparedImage,
    faces_a: list | None,
    faces_b: list | None,
    message_id: str,
) -> None:
    fake.script(COMPARE_PATH, faces_a=faces_a, faces_b=faces_b)
    with pytest.raises(ProviderInputError) as caught:
        await client.compare(photo, photo)
    error = caught.value
    assert error.message_id == message_id and error.code == 10
    assert error.charged is False and error.usage.remain == 1000
    assert fake.remain == 1000 and fake.charged == 0


async def test_client_scripted_business_codes(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    fake.script(PROP_PATH, code=12)
    with pytest.raises(ProviderInputError) as caught:
        await client.analyze(photo)
    assert caught.value.message_id == "jdcloud.face_posture"
    fake.script(PROP_PATH, code=41)
    with pytest.raises(ProviderUnavailableError) as timeout:
        await client.analyze(photo)
    assert timeout.value.message_id == "jdcloud.timeout"
    assert len(fake.requests) == 2  # 41 is not retried


async def test_client_photo_refused_by_jd_limits(
    fake: FakeJdCloud, client: JdCloudClient, photo: PreparedImage
) -> None:
    tiny = prepared(png(40, 40), size=(40, 40))
    with pytest.raises(ProviderInputError) as small:
        await client.compare(photo, tiny)
    assert small.value.message_id == "jdcloud.image_too_small"
    gif_buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(gif_buffer, "GIF")
    with pytest.raises(ProviderInputError) as invalid:
        await client.analyze(prepared(gif_buffer.getvalue(), "GIF"))
    assert invalid.value.message_id == "jdcloud.base64_invalid"


# ------------------------------------------------------------ the fake by itself


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http_session:
        yield http_session


async def raw_post(
    session: aiohttp.ClientSession,
    fake: FakeJdCloud,
    target: str,
    body: bytes,
    *,
    signed_body: bytes | None = None,
    secret: str = "test-sk",
    drop: tuple[str, ...] = (),
    nonce: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST ``body``, signed by services.signing over ``signed_body`` (default: ``body``)."""
    url = fake.base_url + target
    headers = {"Content-Type": "application/json"}
    headers.update(
        jdcloud_sign(
            "POST",
            url,
            headers,
            body if signed_body is None else signed_body,
            "test-ak",
            secret,
            nonce=nonce,
        )
    )
    for name in drop:
        headers.pop(name, None)
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, json.loads(await response.read())


def image_body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_fake_refuses_a_tampered_body(
    session: aiohttp.ClientSession, fake: FakeJdCloud
) -> None:
    signed = image_body(imgBase64=b64(png()))
    sent = image_body(imgBase64=b64(png(color=(1, 2, 3))))
    status, answer = await raw_post(session, fake, PROP_PATH, sent, signed_body=signed)
    assert status == 401
    assert answer["error"]["status"] == "APIGW_SIGN_RESULT_NOT_SAME"
    assert answer["error"]["code"] == 401 and answer["requestId"]
    assert fake.charged == 0


async def test_fake_refuses_a_tampered_query(
    session: aiohttp.ClientSession, fake: FakeJdCloud
) -> None:
    body = image_body(imgBase64=b64(png()))
    url = fake.base_url + PROP_PATH + "?maxFaceCount=5"
    headers = {"Content-Type": "application/json"}
    headers.update(jdcloud_sign("POST", url, headers, body, "test-ak", "test-sk"))
    async with session.post(url.replace("=5", "=6"), data=body, headers=headers) as response:
        assert response.status == 401


async def test_fake_accepts_a_good_signature(
    session: aiohttp.ClientSession, fake: FakeJdCloud
) -> None:
    status, answer = await raw_post(session, fake, PROP_PATH, image_body(imgBase64=b64(png())))
    assert status == 200
    assert answer["code"] == "10000" and answer["charge"] is True
    assert answer["result"]["faceItems"][0]["boundingBox"]["left"] == "16.00"
    assert answer["result"]["props"] == [SEED_PROPS]


async def test_fake_refuses_reused_nonce(session: aiohttp.ClientSession, fake: FakeJdCloud) -> None:
    body = image_body(imgBase64=b64(png()))
    assert (await raw_post(session, fake, PROP_PATH, body, nonce="n-1"))[0] == 200
    status, answer = await raw_post(session, fake, PROP_PATH, body, nonce="n-1")
    assert status == 403 and answer["error"]["status"] == "APIGW_NONCE_CONFLICT"


@pytest.mark.parametrize("header", ["x-jdcloud-nonce", "x-jdcloud-date", "Authorization"])
async def test_fake_missing_signing_header(
    session: aiohttp.ClientSession, fake: FakeJdCloud, header: str
) -> None:
    body = image_body(imgBase64=b64(png()))
    status, answer = await raw_post(session, fake, PROP_PATH, body, drop=(header,))
    assert status == 401 and answer["error"]["status"] == "APIGW_LACK_PARAMS"


async def test_fake_unknown_path_is_404(session: aiohttp.ClientSession, fake: FakeJdCloud) -> None:
    status, answer = await raw_post(session, fake, "/jdai/nothing", b"{}")
    assert status == 404 and answer["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        (PROP_PATH, b"imgBase64=abc", 31),
        (PROP_PATH, b"[1, 2]", 31),
        (PROP_PATH, image_body(), 1),
        (PROP_PATH, image_body(imgBase64=""), 1),
        (PROP_PATH, image_body(imgBase64=12), 9),
        (PROP_PATH, image_body(imgBase64="data:image/png;base64," + b64(png())), 4),
        (PROP_PATH, image_body(imgBase64="not base64!"), 4),
        (PROP_PATH, image_body(imgBase64=b64(b"plain text, not an image")), 4),
        (PROP_PATH, image_body(imgBase64=b64(png()[:-30])), 4),
        (PROP_PATH, image_body(imgBase64=b64(png(47, 100))), 2),
        (PROP_PATH, image_body(imgBase64=b64(png(2049, 60))), 3),
        (PROP_PATH, image_body(imgBase64="A" * BASE64_LIMIT), 5),
        (PROP_PATH + "?maxFaceCount=0", image_body(imgBase64=b64(png())), 9),
        (PROP_PATH + "?maxFaceCount=101", image_body(imgBase64=b64(png())), 9),
        (PROP_PATH + "?maxFaceCount=two", image_body(imgBase64=b64(png())), 9),
        (COMPARE_PATH, image_body(imgBase64A=b64(png())), 1),
        (COMPARE_PATH, image_body(imgBase64A=b64(png()), imgBase64B=b64(png(30, 30))), 2),
    ],
)
async def test_fake_business_refusals(
    session: aiohttp.ClientSession, fake: FakeJdCloud, target: str, body: bytes, code: int
) -> None:
    status, answer = await raw_post(session, fake, target, body)
    assert status == 200
    assert answer["code"] == "10000" and answer["charge"] is False
    assert answer["msg"] == "查询成功,不扣费"
    assert answer["remain"] == answer["remainTimes"] == 1000
    assert answer["result"]["code"] == code
    assert answer["result"]["msg"] == BUSINESS_MESSAGES[code]
    assert fake.charged == 0


async def test_fake_prop_answer_has_the_seed_shape(
    session: aiohttp.ClientSession, fake: FakeJdCloud
) -> None:
    status, answer = await raw_post(session, fake, PROP_PATH, image_body(imgBase64=b64(png())))
    seed = json.loads(SEED_002)
    assert status == 200
    assert list(answer) == list(seed)
    assert list(answer["result"]) == list(seed["result"])
    item = answer["result"]["faceItems"][0]
    assert list(item) == list(seed["result"]["faceItems"][0])
    assert all(isinstance(v, str) for v in item["boundingBox"].values())
    assert answer["result"]["maxFaceCount"] == 5


async def test_fake_compare_answer_has_the_seed_shape(
    session: aiohttp.ClientSession, fake: FakeJdCloud
) -> None:
    body = image_body(imgBase64A=b64(png()), imgBase64B=b64(png(80, 90)))
    status, answer = await raw_post(session, fake, COMPARE_PATH, body)
    seed = json.loads(SEED_004)
    assert status == 200
    assert list(answer) == list(seed)
    assert list(answer["result"]) == list(seed["result"])
    assert answer["result"]["score"] == "0.65"
    box_b = {k: float(v) for k, v in answer["result"]["faceItemsB"][0]["boundingBox"].items()}
    assert box_b["left"] + box_b["width"] <= 80 and box_b["top"] + box_b["height"] <= 90


async def test_fake_script_validation(fake: FakeJdCloud) -> None:
    with pytest.raises(ValueError):
        fake.script("/jdai/other")
    with pytest.raises(ValueError):
        fake.script(COMPARE_PATH, faces=[{}])
    with pytest.raises(ValueError):
        fake.script(PROP_PATH, score=0.5)
    with pytest.raises(ValueError):
        fake.script(PROP_PATH, system_code="12345")
    with pytest.raises(ValueError):
        fake.script(PROP_PATH, times=0)


async def test_fake_times_repeats_the_script(
    session: aiohttp.ClientSession, fake: FakeJdCloud
) -> None:
    fake.script(PROP_PATH, code=11, times=2)
    body = image_body(imgBase64=b64(png()))
    codes = []
    for _ in itertools.repeat(None, 3):
        _, answer = await raw_post(session, fake, PROP_PATH, body)
        codes.append(answer["result"]["code"])
    assert codes == [11, 11, 0]
    assert [r.business_code for r in fake.received(PROP_PATH)] == [11, 11, 0]


@pytest.mark.parametrize(
    ("status", "unknown", "retry_safe"),
    [(200, True, False), (502, False, True), (503, False, True), (504, True, False)],
)
def test_json_that_is_no_jd_answer_is_judged_by_its_status(
    status: int, unknown: bool, retry_safe: bool
) -> None:
    """A proxy's own JSON (no ``code``): past a 502/503 the API ran or may have."""
    with pytest.raises(ProviderError) as caught:
        parse_compare(reply({"message": "upstream timed out"}, status))
    assert (caught.value.unknown, caught.value.retry_safe) == (unknown, retry_safe)
    assert not caught.value.charged
