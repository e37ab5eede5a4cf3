"""Parsing the ID-photo check answers (seed 001 / 000) into typed results and errors."""

from __future__ import annotations

import json

import pytest

from services.errors import (
    ProviderAuthError,
    ProviderBudgetError,
    ProviderError,
    ProviderInputError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.models import HeadPose
from services.providers.http import HttpReply
from services.providers.huawei import gateway_error
from services.providers.jumdata import CODES, parse_check_answer
from services.rules import Side, classify_reason, evaluate
from tests.fakes.jumdata import SEED_DETECT_RESULT

# The seed's success example, verbatim apart from its comments (the fake serves the same).
SEED_ANSWER = {
    "code": 200,
    "msg": "成功",
    "taskNo": "090009626222013261395536",
    "charge": True,
    "data": {
        "pass": False,
        "reasons": ["两侧肩膀姿态不佳"],
        "detect_result": SEED_DETECT_RESULT,
    },
}


def reply(body: object, status: int = 200) -> HttpReply:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return HttpReply(status=status, body=raw)


def test_seed_answer_parses_with_units() -> None:
    result = parse_check_answer("jumdata", reply(SEED_ANSWER))
    assert result.passed is False
    assert result.usage.charged is True
    assert result.usage.task_no == "090009626222013261395536"
    m = result.measurements
    assert m.size_pix == (600, 800) and m.dpi == (300.0, 300.0) and m.size_mm == (51.0, 68.0)
    assert m.file_size == 210867 and m.photo_format == "jpg" and m.color_channels == 3
    assert m.head_pose == HeadPose(yaw=-1.8058, pitch=7.0599, roll=0.5149)
    assert m.background_color == (60, 144, 232)
    assert m.has_hat is False and m.is_transparent_background is False
    [reason] = result.reasons
    assert reason.message_id == "reason.shoulders_not_level"
    assert reason.rule_field == "shoulder_equal"


def test_seed_values_break_only_the_shoulder_rule() -> None:
    """The reading of the threshold comments that the seed's own example proves."""
    result = parse_check_answer("jumdata", reply(SEED_ANSWER))
    broken = {f: o.broken for f, o in evaluate(result.measurements).items() if not o.ok}
    assert broken == {"shoulder_equal": Side.LOW}


@pytest.mark.parametrize(
    ("text", "message_id"),
    [
        ("光照不均匀", "reason.uneven_lighting"),
        ("脸部太小", "reason.face_too_small"),
        ("脸部太大", "reason.face_too_large"),
        ("脸部被遮挡", "reason.face_covered"),
        ("闭眼", "reason.eyes_closed"),
        ("脸部太靠上", "reason.face_too_high"),
        ("脸部太靠下", "reason.face_too_low"),
        ("嘴巴张开过大", "reason.mouth_open"),
        ("脸部太靠左", "reason.face_too_far_left"),
        ("脸部太靠右", "reason.face_too_far_right"),
        ("背景杂乱", "reason.background_cluttered"),
        ("照片过暗", "reason.too_dark"),
        (" 照片过暗。", "reason.too_dark"),
    ],
)
def test_documented_reasons_have_ids(text: str, message_id: str) -> None:
    assert classify_reason(text).message_id == message_id


def test_unknown_reason_is_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    reason = classify_reason("佩戴帽子")
    assert reason.message_id is None and reason.text == "佩戴帽子"
    assert "佩戴帽子" in caplog.text


@pytest.mark.parametrize(
    ("code", "family"),
    [
        (201, ProviderInputError),
        (205, ProviderInputError),
        (210, ProviderInputError),
        (400, ProviderInputError),
        (404, ProviderAuthError),
        (500, ProviderUnavailableError),
        (601, ProviderAuthError),
        (602, ProviderAuthError),
        (603, ProviderBudgetError),
        (604, ProviderAuthError),
        (606, ProviderRateLimitError),
        (607, ProviderAuthError),
        (609, ProviderRateLimitError),
        (610, ProviderUnavailableError),
        (999, ProviderUnavailableError),
    ],
)
def test_codes_raise_their_family(code: int, family: type) -> None:
    body = {"code": code, "msg": "中文说明"}
    with pytest.raises(family) as caught:
        parse_check_answer("jumdata", reply(body))
    assert caught.value.code == code
    assert caught.value.provider_msg == "中文说明"
    assert caught.value.message_id == CODES[code].message_id
    assert caught.value.charged is False


def test_every_documented_code_has_its_own_message() -> None:
    documented = [*range(201, 211), 400, 404, 500, 501, 601, 602, 603, 604, 606, 607, 609, 610, 999]
    assert sorted(CODES) == documented
    ids = [CODES[c].message_id for c in documented]
    assert len(set(ids)) == len(ids)


def test_signature_400_is_the_operators_problem() -> None:
    with pytest.raises(ProviderAuthError) as caught:
        parse_check_answer("jumdata", reply({"code": 400, "msg": "签名错误"}))
    assert caught.value.message_id == "jumdata.bad_credentials"


def test_processing_error_keeps_task_and_charge() -> None:
    with pytest.raises(ProviderInputError) as caught:
        parse_check_answer(
            "jumdata",
            reply({"code": 205, "msg": "图片中找不到人脸", "taskNo": "1234", "charge": False}),
        )
    assert caught.value.task_no == "1234" and caught.value.charged is False


@pytest.mark.parametrize(
    ("raw", "task_no"),
    [
        ('"T-1"', "T-1"),
        ("90009626222013", "90009626222013"),
        (f'"{"7" * 300}"', "7" * 200),
        ("true", None),
        ("1.5", None),
        ('{"n": 1}', None),
        ('"a", "taskNo": "b"', None),
    ],
    ids=["text", "number", "long", "flag", "fraction", "object", "given twice"],
)
def test_a_task_number_that_is_not_a_label_is_left_out(raw: str, task_no: str | None) -> None:
    """``taskNo`` only names the call in logs: an odd one never sinks the answer."""
    body = json.dumps(SEED_ANSWER).replace(
        '"taskNo": "090009626222013261395536"', f'"taskNo": {raw}'
    )
    assert body != json.dumps(SEED_ANSWER)
    result = parse_check_answer("jumdata", reply(body.encode()))
    assert result.usage.task_no == task_no


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"", b'{"code":', b"[1,2]"])
def test_unreadable_answers(body: bytes) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_check_answer("jumdata", reply(body))
    assert caught.value.message_id == "provider.malformed"
    # The API answered 200, so it ran and may have billed: the outcome is unknown.
    assert caught.value.unknown and not caught.value.charged and not caught.value.retry_safe


def test_gateway_5xx_is_retry_safe_only_for_502_503() -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_check_answer("jumdata", reply(b"<html>Bad Gateway</html>", 502))
    assert caught.value.retry_safe and caught.value.code == "http_502"
    assert not caught.value.unknown  # the gateway passed nothing on
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_check_answer("jumdata", reply(b"<html>timeout</html>", 504))
    assert caught.value.code == "http_504"
    assert caught.value.unknown and not caught.value.retry_safe  # it may have passed it on


@pytest.mark.parametrize("charge_field", [True, False], ids=["jumdata", "huawei"])
@pytest.mark.parametrize("code", [500, 501, 610])
def test_a_retry_safe_code_behind_a_504_is_not_retried(code: int, charge_field: bool) -> None:
    """jumdata's 500, 501 and 610 say the call was not done, but behind a gateway's 504 the
    call may well have been done and billed: one user call became three billed requests."""
    body = {"code": code, "msg": "x", "charge": False}
    provider = "jumdata" if charge_field else "huawei"
    with pytest.raises(ProviderError) as caught:
        parse_check_answer(provider, reply(body, 504), charge_field=charge_field)
    assert caught.value.code == code and caught.value.retry_safe is False
    for status in (200, 502, 503):  # a gateway that passed nothing on, or the API itself
        with pytest.raises(ProviderError) as caught:
            parse_check_answer(provider, reply(body, status), charge_field=charge_field)
        assert caught.value.retry_safe is True


def test_charged_answer_with_broken_data_keeps_the_charge() -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_check_answer("jumdata", reply({"code": 200, "charge": True, "data": "??"}))
    assert caught.value.charged is True


@pytest.mark.parametrize("reasons", [7, "too dark", {"0": "x"}, 1.5, True])
def test_reasons_that_are_not_a_list_are_malformed_and_keep_the_charge(reasons: object) -> None:
    """A number here raised TypeError: the unit was released and no usage recorded although
    the answer said ``charge: true``."""
    body = json.loads(json.dumps(SEED_ANSWER))
    body["data"]["reasons"] = reasons
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_check_answer("jumdata", reply(body))
    assert caught.value.message_id == "provider.malformed"
    assert caught.value.charged is True


def test_huawei_answer_without_charge_field_counts_code_200_as_charged() -> None:
    body = {k: v for k, v in SEED_ANSWER.items() if k != "charge"}
    assert parse_check_answer("huawei", reply(body), charge_field=False).usage.charged is True


def test_malformed_fields_do_not_sink_the_answer() -> None:
    body = json.loads(json.dumps(SEED_ANSWER))
    body["data"]["detect_result"].update(
        {
            "size_pix": "600x800",
            "head_pose": {"yaw_angle": "x"},
            "face_blur": "95.5",
            "dpi": None,
            "new_field": 1,
        }
    )
    m = parse_check_answer("jumdata", reply(body)).measurements
    assert m.size_pix is None and m.head_pose is None and m.dpi is None
    assert m.face_blur == 95.5


@pytest.mark.parametrize(
    ("status", "family"),
    [(401, ProviderAuthError), (429, ProviderRateLimitError), (503, ProviderUnavailableError)],
)
def test_apig_envelope(status: int, family: type) -> None:
    error = gateway_error(
        "huawei",
        reply(
            {
                "error_msg": "Incorrect app authentication information: app not found",
                "error_code": "APIG.0303",
                "request_id": "ab",
            },
            status,
        ),
    )
    assert isinstance(error, family) and error.code == "APIG.0303"


@pytest.mark.parametrize(("status", "unknown"), [(502, False), (503, False), (504, True)])
def test_apig_envelope_behind_a_timeout_is_of_unknown_outcome(status: int, unknown: bool) -> None:
    """APIG's 504 (APIG.0201, the backend timed out) came after the API was reached: it may
    have checked the photo and billed it; its 502/503 passed nothing on."""
    envelope = {"error_code": "APIG.0201", "error_msg": "Backend timeout", "request_id": "ab"}
    error = gateway_error("huawei", reply(envelope, status))
    assert isinstance(error, ProviderUnavailableError)
    assert (error.unknown, error.retry_safe, error.charged) == (unknown, not unknown, False)


def test_apig_envelope_absent_for_api_answers() -> None:
    assert gateway_error("huawei", reply(SEED_ANSWER)) is None


@pytest.mark.parametrize(
    ("status", "unknown", "retry_safe"),
    [(200, True, False), (502, False, True), (503, False, True), (504, True, False)],
)
def test_json_that_is_no_jumdata_answer_is_judged_by_its_status(
    status: int, unknown: bool, retry_safe: bool
) -> None:
    """A proxy's own JSON (no ``code``): past a 502/503 the API ran or may have."""
    with pytest.raises(ProviderError) as caught:
        parse_check_answer("jumdata", reply({"message": "upstream timed out"}, status))
    assert (caught.value.unknown, caught.value.retry_safe) == (unknown, retry_safe)
    assert not caught.value.charged


def test_an_answer_without_a_code_that_says_it_charged_stays_charged() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_check_answer("jumdata", reply({"charge": True, "msg": "?"}))
    assert caught.value.charged and not caught.value.unknown
