"""Malformed provider answers: every one is a typed ``ProviderError`` that keeps what the
answer said about the charge, never a bare ``TypeError``/``OverflowError``/``RecursionError``.

One table per vendor, each case naming what is wrong with an otherwise valid seed answer,
and seeded random mutations of the same answers (``hypothesis`` is not a dependency).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from services.errors import ProviderError, ProviderUnavailableError
from services.providers.http import HttpReply
from services.providers.huawei import parse_check
from services.providers.jdcloud import parse_analyze, parse_compare
from services.providers.jumdata import parse_check_answer
from services.providers.jumdata_detect import parse_detect
from tests.unit.test_check_answers import SEED_ANSWER
from tests.unit.test_jdcloud import SEED_002, SEED_004
from tests.unit.test_jumdata_detect import SEED_003

_MARK = "@@raw@@"
DELETE = object()
"""As a case's value: the key is taken out."""


class Raw(str):
    """JSON text put in place as it is: what ``json.dumps`` cannot write (NaN, 1e400,
    a 400-digit integer, a duplicate key, deep nesting)."""


def dup(value: Any, other: Any) -> Raw:
    """The key given twice: first ``value``, then ``other``; the key is filled in by ``body``."""
    return Raw(f"{json.dumps(value)}, @@key@@: {json.dumps(other)}")


DEEP = Raw("[" * 5000 + "]" * 5000)
HUGE_INT = Raw("1" * 400)  # above float range: float(int) overflows
VERY_HUGE_INT = Raw("9" * 5000)  # above int-to-str's 4300 digits
OVERFLOW = Raw("1e400")  # json reads it as inf


def body(seed: Any, path: tuple[str | int, ...], value: Any) -> bytes:
    """``seed`` as JSON text with the value at ``path`` replaced by ``value``."""
    tree = copy.deepcopy(seed)
    if not path:
        return value.encode() if isinstance(value, Raw) else json.dumps(value).encode()
    node = tree
    for step in path[:-1]:
        node = node[step]
    last = path[-1]
    if value is DELETE:
        del node[last]
        return json.dumps(tree, ensure_ascii=False).encode()
    node[last] = _MARK if isinstance(value, Raw) else value
    text = json.dumps(tree, ensure_ascii=False)
    if isinstance(value, Raw):
        text = text.replace(f'"{_MARK}"', value.replace("@@key@@", json.dumps(last)))
    return text.encode()


@dataclass(frozen=True)
class Case:
    name: str
    path: tuple[str | int, ...]
    value: Any
    charged: bool = True


def assert_malformed(parse: Callable[[HttpReply], object], raw: bytes, charged: bool) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse(HttpReply(status=200, body=raw))
    assert caught.value.message_id == "provider.malformed"
    assert caught.value.charged is charged
    assert caught.value.retry_safe is False


def cases(table: list[Case]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", table, ids=[case.name for case in table])


# ---------------------------------------------------------------- the whole body

ENVELOPE_CASES = [
    Case("not an object: a list", (), [1, 2], charged=False),
    Case("not an object: null", (), None, charged=False),
    Case("not an object: a number", (), 5, charged=False),
    Case("nested 5000 deep", (), DEEP, charged=False),
    Case("a 5000-digit number alone", (), VERY_HUGE_INT, charged=False),
]


@pytest.mark.parametrize(
    "parse",
    [
        lambda r: parse_check_answer("jumdata", r),
        lambda r: parse_check("huawei", r),
        parse_detect,
        parse_compare,
        parse_analyze,
    ],
    ids=["check", "huawei", "detect", "compare", "analyze"],
)
@cases(ENVELOPE_CASES)
def test_unreadable_bodies_are_malformed_and_not_charged(
    parse: Callable[[HttpReply], object], case: Case
) -> None:
    """Nothing can be read, so nothing says the call was charged; but the API answered
    200, so it ran and may have billed: the outcome is unknown (``read_object``)."""
    assert_malformed(parse, body(None, case.path, case.value), case.charged)
    with pytest.raises(ProviderUnavailableError) as caught:
        parse(HttpReply(status=200, body=body(None, case.path, case.value)))
    assert caught.value.unknown


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{\x00}\x00", b'{"code": 200, "msg": "\xe6\x88", "charge": true}'],
    ids=["utf-16", "cut utf-8"],
)
def test_bytes_that_are_not_utf8_are_malformed(raw: bytes) -> None:
    assert_malformed(lambda r: parse_check_answer("jumdata", r), raw, charged=False)


def test_a_utf8_bom_is_read() -> None:
    raw = b"\xef\xbb\xbf" + json.dumps(SEED_ANSWER).encode()
    result = parse_check_answer("jumdata", HttpReply(200, raw))
    assert result.usage.charged is True and result.passed is False


# ---------------------------------------------------------------- jumdata check

CHECK_CASES = [
    Case("code NaN", ("code",), Raw("NaN")),
    Case("code Infinity", ("code",), Raw("-Infinity")),
    Case("code 1e400", ("code",), OVERFLOW),
    Case("code 400 digits", ("code",), HUGE_INT),
    Case("code 5000 digits", ("code",), VERY_HUGE_INT),
    Case("code a bool", ("code",), True),
    Case("code a list", ("code",), [200]),
    Case("code given twice", ("code",), dup(200, 603)),
    Case("charge given twice", ("charge",), dup(False, True)),
    Case("data a number", ("data",), 5),
    Case("data a list", ("data",), [1]),
    Case("data null", ("data",), None),
    Case("pass a string", ("data", "pass"), "false"),
    Case("pass a number", ("data", "pass"), 0),
    Case("pass NaN", ("data", "pass"), Raw("NaN")),
    Case("pass missing", ("data", "pass"), DELETE),
    Case("pass given twice", ("data", "pass"), dup(True, False)),
    Case("reasons a number", ("data", "reasons"), 7),
    Case("reasons an object", ("data", "reasons"), {"a": "b"}),
    Case("detect_result a number", ("data", "detect_result"), 5),
    Case("detect_result a list", ("data", "detect_result"), [1, 2]),
]


@cases(CHECK_CASES)
def test_check_answers(case: Case) -> None:
    assert_malformed(
        lambda r: parse_check_answer("jumdata", r), body(SEED_ANSWER, case.path, case.value), True
    )


HUAWEI_SEED = {k: v for k, v in SEED_ANSWER.items() if k != "charge"}
# The Huawei resale has no ``charge``: code 200 is the billed answer, so an unreadable
# code says nothing was billed, and a readable 200 says it was.
HUAWEI_CASES = [
    Case("code NaN", ("code",), Raw("NaN"), charged=False),
    Case("code 400 digits", ("code",), HUGE_INT, charged=False),
    Case("code given twice", ("code",), dup(200, 603), charged=False),
    Case("data deep inside", ("data", "reasons"), DEEP, charged=False),
    Case("data a number", ("data",), 5),
    Case("pass a string", ("data", "pass"), "true"),
    Case("reasons a number", ("data", "reasons"), 1.5),
]


@cases(HUAWEI_CASES)
def test_huawei_answers(case: Case) -> None:
    raw = body(HUAWEI_SEED, case.path, case.value)
    assert_malformed(lambda r: parse_check("huawei", r), raw, case.charged)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("face_blur", 1e308),
        ("face_blur", -5),
        ("face_blur", HUGE_INT),
        ("face_x_occupy", OVERFLOW),
        ("face_x_center", -1e300),
        ("size_pix", [1e300, 800]),
        ("size_pix", [HUGE_INT, 800]),
        ("head_pose", {"yaw_angle": 1e300, "pitch_angle": 0, "roll_angle": 0}),
        ("file_size", 1e300),
    ],
)
def test_check_measurements_out_of_range_are_left_out(field: str, value: Any) -> None:
    """A measurement far outside what it can be is not measured (like a string where a
    number belongs): one odd field does not sink a charged answer, nor reach the picture."""
    raw = body(SEED_ANSWER, ("data", "detect_result", field), value)
    result = parse_check_answer("jumdata", HttpReply(200, raw))
    assert result.measurements.value(field) is None
    assert result.measurements.face_unbalance == 83  # the others are kept
    assert result.measurements.eyes_spacing == 150  # the seed's own odd value stays


# ---------------------------------------------------------------- jumdata detect

FACE = ("data", "faceList", 0)
DETECT_CASES = [
    Case("code NaN", ("code",), Raw("NaN")),
    Case("charge given twice", ("charge",), dup(False, True)),
    Case("faceList a number", ("data", "faceList"), 5),
    Case("faceList an object", ("data", "faceList"), {"0": {}}),
    Case("face a number", FACE, 5),
    Case("face null", FACE, None),
    Case("121 faces where 120 is the most", ("data", "faceList"), [{}] * 121),
    Case("location missing", (*FACE, "location"), DELETE),
    Case("location a list", (*FACE, "location"), [117, 131, 172, 170]),
    Case("left a word", (*FACE, "location", "left"), "left"),
    Case("left NaN", (*FACE, "location", "left"), Raw("NaN")),
    Case("left 1e400", (*FACE, "location", "left"), OVERFLOW),
    Case("left 400 digits", (*FACE, "location", "left"), HUGE_INT),
    Case("left 1e300: far outside the photo", (*FACE, "location", "left"), 1e300),
    Case("left -1e300", (*FACE, "location", "left"), -1e300),
    Case("left a bool", (*FACE, "location", "left"), True),
    Case("width negative", (*FACE, "location", "width"), -172),
    Case("width 1e9", (*FACE, "location", "width"), 1e9),
    Case("left given twice", (*FACE, "location", "left"), dup(117, 5000)),
    Case("probability 1.5", (*FACE, "face_probability"), 1.5),
    Case("probability a word", (*FACE, "face_probability"), "high"),
    Case("probability a bool", (*FACE, "face_probability"), True),
    Case("angle a number", (*FACE, "angle"), 5),
    Case("yaw 500", (*FACE, "angle", "yaw"), 500),
    Case("roll 1e300", (*FACE, "angle", "roll"), 1e300),
    Case("pitch a word", (*FACE, "angle", "pitch"), "up"),
    Case("landmark72 a number", (*FACE, "landmark72"), 72),
    Case("landmark72 of numbers", (*FACE, "landmark72"), [1, 2]),
    Case("landmark x 1e300", (*FACE, "landmark72", 0, "x"), 1e300),
    Case("landmark y a word", (*FACE, "landmark72", 0, "y"), "y"),
    Case("age 1e300", (*FACE, "age"), 1e300),
    Case("age negative", (*FACE, "age"), -3),
    Case("age a word", (*FACE, "age"), "old"),
    Case("age 400 digits", (*FACE, "age"), HUGE_INT),
    Case("gender a number", (*FACE, "gender"), 5),
    Case("gender type a list", (*FACE, "gender"), {"type": ["male"]}),
    Case("quality a number", (*FACE, "quality"), 1),
    Case("blur 2", (*FACE, "quality", "blur"), 2),
    Case("illumination 1e300", (*FACE, "quality", "illumination"), 1e300),
    Case("completeness a word", (*FACE, "quality", "completeness"), "all"),
    Case("occlusion a number", (*FACE, "quality", "occlusion"), 0),
    Case("occlusion of a part 5", (*FACE, "quality", "occlusion", "nose"), 5),
]


@cases(DETECT_CASES)
def test_detect_answers(case: Case) -> None:
    assert_malformed(parse_detect, body(SEED_003, case.path, case.value), True)


def test_detect_minus_zero_and_a_box_a_little_off_the_photo_are_read() -> None:
    raw = body(SEED_003, (*FACE, "location", "left"), Raw("-0.0"))
    assert str(parse_detect(HttpReply(200, raw)).faces[0].box.left) == "0.0"
    raw = body(SEED_003, (*FACE, "location", "top"), -20.5)
    assert parse_detect(HttpReply(200, raw)).faces[0].box.top == -20.5


# ---------------------------------------------------------------- JD Cloud

JD_002 = json.loads(SEED_002)
JD_004 = json.loads(SEED_004)
ITEM_A = ("result", "faceItemsA", 0)
COMPARE_CASES = [
    Case("system code NaN", ("code",), Raw("NaN")),
    Case("system code given twice", ("code",), dup("10000", "10010")),
    Case("charge given twice", ("charge",), dup(False, True)),
    Case("result a number", ("result",), 5),
    Case("result code a bool", ("result", "code"), False),
    Case("result code 1e400", ("result", "code"), OVERFLOW),
    Case("score NaN", ("result", "score"), Raw("NaN")),
    Case("score 'NaN'", ("result", "score"), "NaN"),
    Case("score 'Infinity'", ("result", "score"), "Infinity"),
    Case("score 1e400", ("result", "score"), OVERFLOW),
    Case("score '1e400'", ("result", "score"), "1e400"),
    Case("score 400 digits", ("result", "score"), HUGE_INT),
    Case("score a bool", ("result", "score"), True),
    Case("score a list", ("result", "score"), [0.5]),
    Case("score null", ("result", "score"), None),
    Case("score given twice", ("result", "score"), dup("0.1", "0.9")),
    Case("faceItemsA empty: one face promised", ("result", "faceItemsA"), []),
    Case("faceItemsB empty: one face promised", ("result", "faceItemsB"), []),
    Case("faceItemsA a number", ("result", "faceItemsA"), 1),
    Case("face item a string", ITEM_A, "face"),
    Case("box far outside", (*ITEM_A, "boundingBox", "left"), "1e300"),
    Case("box left '1e400'", (*ITEM_A, "boundingBox", "left"), "1e400"),
    Case("box height negative", (*ITEM_A, "boundingBox", "height"), "-133.65"),
    Case("box width a word", (*ITEM_A, "boundingBox", "width"), "wide"),
    Case("posture yaw 500", (*ITEM_A, "posture", "yaw"), "500"),
    Case("posture a list", (*ITEM_A, "posture"), [1, 2, 3]),
    Case("isValidPosture a word", (*ITEM_A, "isValidPosture"), "maybe"),
    Case("blurScore a word", (*ITEM_A, "blurScore"), "sharp"),
    Case("blurScore 1e300", (*ITEM_A, "blurScore"), "1e300"),
]


@cases(COMPARE_CASES)
def test_compare_answers(case: Case) -> None:
    assert_malformed(parse_compare, body(JD_004, case.path, case.value), True)


PROPS = ("result", "props", 0)
ITEM = ("result", "faceItems", 0)
ANALYZE_CASES = [
    Case("faceItems an object", ("result", "faceItems"), {"0": {}}),
    Case("101 faces where 100 is the most", ("result", "faceItems"), [{}] * 101),
    Case("box missing", (*ITEM, "boundingBox"), DELETE),
    Case("box top -1e300", (*ITEM, "boundingBox", "top"), -1e300),
    Case("roll NaN", (*ITEM, "posture", "roll"), Raw("NaN")),
    Case("props a number", ("result", "props"), 5),
    Case("props entry a number", PROPS, 5),
    Case("age 1e300", (*PROPS, "age"), 1e300),
    Case("age negative", (*PROPS, "age"), -1),
    Case("age 400 digits", (*PROPS, "age"), HUGE_INT),
    Case("beauty 1000", (*PROPS, "beauty"), 1000),
    Case("smile a word", (*PROPS, "smile"), "wide"),
    Case("isFemale a word", (*PROPS, "isFemale"), "yes"),
    Case("hasMask a number", (*PROPS, "hasMask"), 1),
    Case("emotion a number", (*PROPS, "emotion"), 3),
    Case("race a list", (*PROPS, "race"), ["黄种人"]),
]


@cases(ANALYZE_CASES)
def test_analyze_answers(case: Case) -> None:
    assert_malformed(parse_analyze, body(JD_002, case.path, case.value), True)


@pytest.mark.parametrize("remain", [HUGE_INT, OVERFLOW, Raw("NaN"), 1e300, "many", True])
def test_an_unreadable_remaining_count_is_unknown(remain: Any) -> None:
    """``remain`` is the provider's count, not the answer: a charged result stays a result,
    and a count no budget could hold is not believed."""
    result = parse_compare(HttpReply(200, body(JD_004, ("remain",), remain)))
    assert result.usage.remain is None and result.usage.charged is True
    assert result.score == 1.0


# ---------------------------------------------------------------- random mutations

NASTY: list[Any] = [
    None,
    True,
    0,
    -1,
    "x",
    "",
    "1e400",
    [],
    {},
    [None],
    {"type": {}},
    1e300,
    -1e300,
    Raw("NaN"),
    Raw("-Infinity"),
    Raw("-0"),
    OVERFLOW,
    HUGE_INT,
    VERY_HUGE_INT,
    Raw("[" * 300 + "]" * 300),
    DELETE,
]


def paths(tree: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in ``tree`` a value can be changed."""
    found = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += paths(value, (*prefix, index))
    return found


@pytest.mark.parametrize(
    ("seed", "parse"),
    [
        (SEED_ANSWER, lambda r: parse_check_answer("jumdata", r)),
        (HUAWEI_SEED, lambda r: parse_check("huawei", r)),
        (SEED_003, parse_detect),
        (JD_004, parse_compare),
        (JD_002, parse_analyze),
    ],
    ids=["check", "huawei", "detect", "compare", "analyze"],
)
def test_random_mutations_raise_only_provider_errors(
    seed: Any, parse: Callable[[HttpReply], object]
) -> None:
    rng = random.Random(12)
    plain = [value for value in NASTY if not isinstance(value, Raw) and value is not DELETE]
    for _ in range(400):
        tree = copy.deepcopy(seed)
        for _ in range(rng.randint(0, 2)):
            *steps, last = rng.choice(paths(tree))
            node = tree
            for step in steps:
                node = node[step]
            node[last] = rng.choice(plain)
        raw = body(tree, rng.choice(paths(tree)), rng.choice(NASTY))
        try:
            parse(HttpReply(200, raw))
        except ProviderError:
            pass
