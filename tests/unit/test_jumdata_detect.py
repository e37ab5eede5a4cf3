"""jumdata face detection: the seed 003 answer, codes, image limits, and the client
against the fake jumdata server over real HTTP."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from services.errors import (
    ProviderAuthError,
    ProviderBudgetError,
    ProviderError,
    ProviderInputError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.images import prepare_image
from services.models import Emotion, Expression, Gender, Glasses, Point, Usage
from services.providers.http import HttpReply
from services.providers.jumdata_detect import (
    DETECT_LIMITS_JUMDATA,
    JumdataDetector,
    detect_limits_for,
    face_fields,
    parse_detect,
)
from tests.conftest import portrait_jpeg
from tests.fakes.jumdata import DETECT_PATH, SEED_FACE, FakeJumdata
from tests.unit.test_documented_numbers import fit_detect_box

SEED_003: dict[str, Any] = {
    "code": 200,
    "msg": "成功",
    "taskNo": "788988200161527391185660",
    "charge": True,
    "data": {"faceNum": 1, "faceList": [SEED_FACE]},
}
"""The seed 003 success example (comments dropped); ``SEED_FACE`` is its face verbatim."""


def reply(payload: Any, status: int = 200) -> HttpReply:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return HttpReply(status=status, body=body)


def catch(payload: Any, status: int = 200) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        parse_detect(reply(payload, status))
    return caught.value


# ---------------------------------------------------------------------- parsing


def test_seed_003_answer_parsed() -> None:
    result = parse_detect(reply(SEED_003))
    assert result.provider == "jumdata"
    assert result.usage == Usage(charged=True, task_no="788988200161527391185660")
    (face,) = result.faces
    assert (face.box.left, face.box.top, face.box.width, face.box.height) == (117, 131, 172, 170)
    assert face.probability == 1.0
    assert face.pose is not None
    assert face.pose.yaw == pytest.approx(-0.34859421849251)
    assert face.pose.pitch == pytest.approx(1.9135693311691)
    assert face.pose.roll == pytest.approx(2.3033397197723)
    assert face.landmarks == (Point(115.86531066895, 170.0546875),)  # landmark72 wins
    assert face.age == pytest.approx(29.298097610474)
    assert face.expression is Expression.SMILE
    assert face.gender is Gender.MALE
    assert face.glasses is Glasses.SUN
    quality = face.quality
    assert quality is not None
    assert quality.blur == pytest.approx(1.1886881756684e-10)
    assert quality.illumination == 141 and quality.completeness is True
    assert quality.occlusion["left_cheek"] == pytest.approx(0.0064102564938366)
    assert set(quality.occlusion) == {
        "left_eye",
        "right_eye",
        "nose",
        "mouth",
        "left_cheek",
        "right_cheek",
        "chin_contour",
    }


def test_four_point_landmark_used_without_landmark72() -> None:
    answer = copy.deepcopy(SEED_003)
    face = answer["data"]["faceList"][0]
    del face["landmark72"]
    face["landmark"] = [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 6}, {"x": 7, "y": 8}]
    (parsed,) = parse_detect(reply(answer)).faces
    assert parsed.landmarks == (Point(1, 2), Point(3, 4), Point(5, 6), Point(7, 8))


def test_minimal_face_has_only_box_probability_and_pose() -> None:
    answer = copy.deepcopy(SEED_003)
    face = answer["data"]["faceList"][0]
    answer["data"]["faceList"] = [{k: face[k] for k in ("face_token", "location", "angle")}]
    (parsed,) = parse_detect(reply(answer)).faces
    assert parsed.landmarks == () and parsed.quality is None and parsed.age is None
    assert parsed.gender is None and parsed.probability is None and parsed.pose is not None


@pytest.mark.parametrize(
    ("mask", "expected"), [({"type": 1}, True), ({"type": 0}, False), ({"type": "x"}, None)]
)
def test_mask(mask: dict[str, Any], expected: bool | None) -> None:
    answer = copy.deepcopy(SEED_003)
    answer["data"]["faceList"][0]["mask"] = {**mask, "probability": 0.9}
    assert parse_detect(reply(answer)).faces[0].mask is expected


def test_emotion_and_unknown_values() -> None:
    answer = copy.deepcopy(SEED_003)
    face = answer["data"]["faceList"][0]
    face["emotion"] = {"type": "happy", "probability": 0.7}
    face["glasses"] = {"type": "monocle", "probability": 0.7}
    (parsed,) = parse_detect(reply(answer)).faces
    assert parsed.emotion is Emotion.HAPPY and parsed.glasses is None


def test_no_faces_in_a_200_answer() -> None:
    answer = {**SEED_003, "data": {"faceNum": 0, "faceList": []}}
    assert parse_detect(reply(answer)).faces == ()


# ------------------------------------------------------------------------ codes


@pytest.mark.parametrize(
    ("code", "msg", "family", "message_id"),
    [
        (201, "图片中没有人脸", ProviderInputError, "jumdata.detect_no_face"),
        (400, "图片不能为空", ProviderInputError, "jumdata.detect_bad_request"),
        (400, "签名错误", ProviderAuthError, "jumdata.bad_credentials"),
        (404, "接口地址不正确", ProviderAuthError, "jumdata.wrong_endpoint"),
        (500, "系统维护,请稍候再试", ProviderUnavailableError, "jumdata.maintenance"),
        (601, "接口未开通", ProviderAuthError, "jumdata.not_enabled"),
        (602, "账号停用", ProviderAuthError, "jumdata.account_disabled"),
        (603, "余额不足请充值", ProviderBudgetError, "jumdata.balance"),
        (604, "接口停用", ProviderAuthError, "jumdata.api_disabled"),
        (606, "调用超限,请稍候再试", ProviderRateLimitError, "jumdata.over_limit"),
        (607, "ip不在白名单", ProviderAuthError, "jumdata.ip_not_allowed"),
        (609, "请求过于频繁,请稍候再试", ProviderRateLimitError, "jumdata.too_frequent"),
        (610, "请求超时", ProviderUnavailableError, "jumdata.request_expired"),
        (999, "其他", ProviderUnavailableError, "jumdata.other"),
        (605, "?", ProviderUnavailableError, "provider.unknown_code"),
    ],
)
def test_codes(code: int, msg: str, family: type[ProviderError], message_id: str) -> None:
    payload: dict[str, Any] = {"msg": msg, "code": code}
    if code == 201:
        payload.update(taskNo="123", charge=False)
    error = catch(payload)
    assert type(error) is family
    assert error.message_id == message_id
    assert error.code == code and error.provider_msg == msg and error.charged is False
    if code == 201:
        assert error.task_no == "123"


@pytest.mark.parametrize(
    ("payload", "status", "message_id", "retry_safe"),
    [
        (b"{not json", 200, "provider.malformed", False),
        (b"<html>bad gateway</html>", 502, "provider.unavailable", True),
        ({"code": 200, "msg": "成功", "charge": True}, 200, "provider.malformed", False),
        ({"code": 200, "data": {"faceList": [{"angle": {}}]}}, 200, "provider.malformed", False),
    ],
)
def test_unreadable_answers(payload: Any, status: int, message_id: str, retry_safe: bool) -> None:
    error = catch(payload, status)
    assert isinstance(error, ProviderUnavailableError)
    assert error.message_id == message_id and error.retry_safe is retry_safe


# ----------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("size", "max_side"),
    [
        ((1920, 1080), 1920),
        ((1080, 1920), 1920),
        ((1000, 800), 1350),
        ((3000, 2000), 1620),
        ((2000, 3000), 1620),
        ((4000, 3000), 1440),
        ((2000, 2000), 1080),
        ((4000, 1000), 1920),
    ],
)
def test_detect_limits_for(size: tuple[int, int], max_side: int) -> None:
    limits = detect_limits_for(*size)
    assert limits.max_side == max_side
    assert limits.max_bytes == DETECT_LIMITS_JUMDATA.max_bytes == 8 * 1024 * 1024
    assert limits.min_side == 48 and limits.formats == DETECT_LIMITS_JUMDATA.formats


def test_detect_limits_always_fit_the_box() -> None:
    """Scaling the long side to max_side (as prepare_image does) fits 1920x1080."""
    for width in range(50, 6000, 137):
        for height in range(50, 6000, 241):
            long_side, short_side = max(width, height), min(width, height)
            max_side = detect_limits_for(width, height).max_side
            if long_side <= max_side:
                assert fit_detect_box(width, height)
                continue
            scaled_short = max(1, round(short_side * max_side / long_side))
            assert fit_detect_box(max_side, scaled_short), (width, height)
            # and no smaller than needed: one bound is (almost) reached
            assert max_side == 1920 or scaled_short >= 1079, (width, height)


@pytest.mark.parametrize("size", [(2400, 1600), (1200, 1800), (1500, 1500)])
def test_prepared_photo_fits_the_box(size: tuple[int, int]) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 140, 160)).save(buffer, "JPEG", quality=85)
    prepared = prepare_image(buffer.getvalue(), detect_limits_for(*size))
    assert fit_detect_box(prepared.width, prepared.height)
    assert max(prepared.width, prepared.height) >= 1080


def test_detect_limits_for_refuses_empty_sizes() -> None:
    with pytest.raises(ValueError):
        detect_limits_for(0, 100)


def test_face_fields() -> None:
    assert face_fields(False) == "landmark,quality"
    assert face_fields(True) == "landmark,quality,age,gender,expression,glasses,mask,emotion"


# --------------------------------------------------------- client over real HTTP


@pytest.fixture
async def fake() -> AsyncIterator[FakeJumdata]:
    async with FakeJumdata() as server:
        yield server


@pytest.fixture
async def detector(fake: FakeJumdata) -> AsyncIterator[JumdataDetector]:
    client = JumdataDetector("test-app", "test-secret", fake.base_url, timeout=5)
    yield client
    await client.close()


@pytest.fixture
def photo():
    return prepare_image(portrait_jpeg(), detect_limits_for(600, 800))


async def test_client_detects_with_attributes(
    fake: FakeJumdata, detector: JumdataDetector, photo: Any
) -> None:
    fake.script(DETECT_PATH, faces=[{}, {}, {}, {}])
    result = await detector.detect(photo, max_faces=3, attributes=True)
    assert len(result.faces) == 3
    face = result.faces[0]
    assert len(face.landmarks) == 72
    assert face.quality is not None and face.quality.completeness is True
    assert face.age is not None and face.gender is Gender.MALE
    assert face.expression is Expression.SMILE and face.glasses is Glasses.SUN
    assert 0 <= face.box.left and face.box.right <= photo.width
    assert result.usage.charged and result.usage.task_no
    (request,) = fake.received(DETECT_PATH)
    assert request.fields["faceField"] == (
        "landmark,quality,age,gender,expression,glasses,mask,emotion"
    )
    assert request.fields["maxFaceNum"] == "3"
    assert request.image_field == "file" and request.image_bytes == photo.data


async def test_client_detects_without_attributes(
    fake: FakeJumdata, detector: JumdataDetector, photo: Any
) -> None:
    result = await detector.detect(photo)
    (face,) = result.faces
    assert face.age is None and face.gender is None
    assert len(face.landmarks) == 72 and face.quality is not None
    (request,) = fake.received(DETECT_PATH)
    assert request.fields["faceField"] == "landmark,quality"
    assert request.fields["maxFaceNum"] == "120"


async def test_client_no_face_is_201_message(
    fake: FakeJumdata, detector: JumdataDetector, photo: Any
) -> None:
    fake.script(DETECT_PATH, faces=[])
    with pytest.raises(ProviderInputError) as caught:
        await detector.detect(photo)
    assert caught.value.message_id == "jumdata.detect_no_face"
    assert caught.value.code == 201 and caught.value.charged is False
    assert caught.value.task_no
    assert fake.charged == 0


async def test_client_wrong_secret(fake: FakeJumdata, photo: Any) -> None:
    client = JumdataDetector("test-app", "nope", fake.base_url, timeout=5)
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await client.detect(photo)
    finally:
        await client.close()
    assert caught.value.message_id == "jumdata.bad_credentials"


async def test_client_retries_610_with_a_new_timestamp(
    fake: FakeJumdata, detector: JumdataDetector, photo: Any
) -> None:
    fake.script(DETECT_PATH, code=610)
    result = await detector.detect(photo)
    assert len(result.faces) == 1
    first, second = fake.received(DETECT_PATH)
    assert first.code == 610 and second.code == 200


async def test_client_oversized_photo_refused_by_service(
    fake: FakeJumdata, detector: JumdataDetector
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (1500, 1500), (10, 20, 30)).save(buffer, "JPEG")
    # Prepared with the plain limits (max_side 1920), the 1500 px short side breaks 1080.
    too_big = prepare_image(buffer.getvalue(), DETECT_LIMITS_JUMDATA)
    with pytest.raises(ProviderInputError) as caught:
        await detector.detect(too_big)
    assert caught.value.message_id == "jumdata.detect_bad_request"
    fitted = prepare_image(buffer.getvalue(), detect_limits_for(1500, 1500))
    assert (fitted.width, fitted.height) == (1080, 1080)
    assert len((await detector.detect(fitted)).faces) == 1
