"""Signers against the vendors' own test vectors, copied exactly from their sources.

* jumdata: the sign example of seeds 001/003 (``/work/shared/seeds``).
* Huawei APIG: ``huaweicloud/huaweicloud-sdk-python-v3``
  ``huaweicloud-sdk-core/tests/test_signer.py`` (``test_signer1``, ``test_signer2``,
  ``test_process_canonical_query_string``; and ``test_signer`` of the older version at
  commit d88b81ba1d0fe88584b38066f5c74e1196d3d66c).
* JD Cloud: ``jdcloud-api/jdcloud-sdk-go-signer`` ``core/Signer_test.go`` ``TestBackSigner``.

Round trips go through ``tests/fakes/_sigcheck.py``, a verifier written separately.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.signing import (
    EMPTY_SHA256,
    host_header_value,
    huawei_canonical_query,
    huawei_canonical_request,
    huawei_canonical_uri,
    huawei_query_params,
    huawei_sign,
    huawei_signature,
    huawei_signed_headers,
    huawei_string_to_sign,
    jdcloud_canonical_query,
    jdcloud_canonical_request,
    jdcloud_canonical_uri,
    jdcloud_credential_scope,
    jdcloud_sign,
    jdcloud_signature,
    jdcloud_signed_headers,
    jdcloud_signing_key,
    jdcloud_string_to_sign,
    jumdata_sign,
)
from tests.fakes._sigcheck import apig_verify, jdcloud2_verify

# --------------------------------------------------------------------------- jumdata


def test_jumdata_seed_vector() -> None:
    # Seeds 001/003: appId, appSecret and timestamp of the Java example.
    expected = "6ddcdc405743c576cb6d34b17b47ed56e2b9b6670fae1fe85ed01244fd31558b"
    assert jumdata_sign("xyzxy2121zxyz", "efcefcef1121cefcefc1212121", "1555378976238") == expected
    assert jumdata_sign("xyzxy2121zxyz", "efcefcef1121cefcefc1212121", 1555378976238) == expected


# ---------------------------------------------------------------------- Huawei APIG

# Fixtures of huaweicloud-sdk-core/tests/test_signer.py: SdkRequest(method, schema="https",
# host="service.endpoint.myhuaweicloud.com", resource_path="/resources",
# query_params=[("size", "1")], header_params={...}, body=...).
HW_URL = "https://service.endpoint.myhuaweicloud.com/resources?size=1"
HW_HEADERS = {"X-Sdk-Date": "20200608T023900Z", "TEST_UNDERSCORE": "TEST_VALUE"}


def test_huawei_test_signer1_get() -> None:
    headers = huawei_sign("GET", HW_URL, HW_HEADERS, b"", "AccessKey", "SecretKey")
    assert headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
        "Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
    )
    assert headers["X-Sdk-Date"] == "20200608T023900Z"


def test_huawei_test_signer2_post() -> None:
    body = b'{"name":"test","id":1}'
    headers = huawei_sign("POST", HW_URL, HW_HEADERS, body, "AccessKey", "SecretKey")
    assert headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
        "Signature=436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
    )


def test_huawei_older_sdk_test_signer() -> None:
    # Same file at commit d88b81ba: credentials "my ak"/"my sk", only X-Sdk-Date given.
    headers = huawei_sign("GET", HW_URL, {"X-Sdk-Date": "20200608T023900Z"}, b"", "my ak", "my sk")
    assert headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=my ak, SignedHeaders=host;x-sdk-date, "
        "Signature=6d5bc610d3d4475346aae5cd7ed8d99585e60c0430a1d3d6e2f54e2bdd633701"
    )


def test_huawei_pieces_reproduce_test_signer1() -> None:
    headers = {"host": "service.endpoint.myhuaweicloud.com", "x-sdk-date": "20200608T023900Z"}
    canonical = huawei_canonical_request(
        "GET", "/resources", "size=1", headers, ["host", "x-sdk-date"], b""
    )
    assert canonical == (
        "GET\n/resources/\nsize=1\n"
        "host:service.endpoint.myhuaweicloud.com\nx-sdk-date:20200608T023900Z\n\n"
        f"host;x-sdk-date\n{EMPTY_SHA256}"
    )
    to_sign = huawei_string_to_sign(canonical, "20200608T023900Z")
    assert to_sign.startswith("SDK-HMAC-SHA256\n20200608T023900Z\n")
    assert huawei_signature(to_sign, "SecretKey") == (
        "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
    )


def test_huawei_process_canonical_query_string_vector() -> None:
    query_params = [
        ("limit", 1),
        ("enable", True),
        ("test", "一 (&=?!#%.*)"),
        ("path", "/tmp/123"),
        ("multi", [1, 2, 3]),
    ]
    assert huawei_canonical_query(query_params) == (
        "enable=true&limit=1&multi=1&multi=2&multi=3"
        "&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    )


def test_huawei_query_from_raw_url_matches_vector() -> None:
    raw = (
        "test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29&multi=3&limit=1"
        "&path=/tmp/123&multi=1&enable=true&multi=2&=dropped"
    )
    assert huawei_canonical_query(huawei_query_params(raw)) == (
        "enable=true&limit=1&multi=1&multi=2&multi=3"
        "&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    )
    # "+" is not a space in the APIG canonical form, and a bare name has an empty value.
    assert huawei_canonical_query(huawei_query_params("a+b=c+d&flag")) == "a%2Bb=c%2Bd&flag="


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/huawei/idphoto/check", "/huawei/idphoto/check/"),
        ("/resources/", "/resources/"),
        ("", "/"),
        ("/", "/"),
        ("/a%20b/c~d", "/a%20b/c~d/"),
        ("/中文", "/%E4%B8%AD%E6%96%87/"),
    ],
)
def test_huawei_canonical_uri(path: str, expected: str) -> None:
    assert huawei_canonical_uri(path) == expected


def test_huawei_signed_headers_all_given_sorted_without_underscores() -> None:
    given = {
        "X-Sdk-Date": "d",
        "Content-Type": "x",
        "Host": "h",
        "X_Skip": "1",
        "Authorization": "a",
    }
    assert huawei_signed_headers(given) == ["content-type", "host", "x-sdk-date"]


def test_huawei_sign_uses_now_and_host_with_port() -> None:
    url = "http://127.0.0.1:8080/idphoto/check"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    out = huawei_sign(
        "POST", url, headers, b"url=x", "k", "s", now=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    assert out["X-Sdk-Date"] == "20240102T030405Z"
    assert "SignedHeaders=content-type;host;x-sdk-date," in out["Authorization"]
    # Naive datetimes are UTC; aware ones are converted.
    naive = huawei_sign("POST", url, headers, b"url=x", "k", "s", now=datetime(2024, 1, 2, 3, 4, 5))
    shifted = datetime(2024, 1, 2, 11, 4, 5, tzinfo=timezone(timedelta(hours=8)))
    aware = huawei_sign("POST", url, headers, b"url=x", "k", "s", now=shifted)
    assert naive == out == aware


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("https://Example.COM:443/x", "example.com"),
        ("http://example.com:80/x", "example.com"),
        ("https://example.com:80/x", "example.com:80"),
        ("http://[::1]:9000/x", "[::1]:9000"),
    ],
)
def test_host_header_value(url: str, host: str) -> None:
    assert host_header_value(url) == host


def test_huawei_content_sha256_header_replaces_body_hash() -> None:
    headers = {
        "host": "h",
        "x-sdk-date": "20200608T023900Z",
        "x-sdk-content-sha256": "UNSIGNED-PAYLOAD",
    }
    signed = huawei_signed_headers(headers)
    canonical = huawei_canonical_request("POST", "/p", "", headers, signed, b"anything")
    assert canonical.endswith("\nhost;x-sdk-content-sha256;x-sdk-date\nUNSIGNED-PAYLOAD")


def test_huawei_round_trip_through_independent_verifier() -> None:
    url = "http://127.0.0.1:8080/idphoto/check?x=1%202&a=b"
    body = b"base64=aGVsbG8%3D"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    now = datetime.now(UTC)
    added = huawei_sign("POST", url, headers, body, "key", "secret", now=now)
    sent = {**headers, **added, "Host": "127.0.0.1:8080"}

    def verify(body_sent: bytes, secret: str = "secret") -> str:
        verdict = apig_verify(
            method="POST",
            raw_target="/idphoto/check?x=1%202&a=b",
            headers=sent,
            body=body_sent,
            app_secrets={"key": secret},
            now=now.timestamp(),
        )
        return "ok" if verdict.ok else verdict.reason

    assert verify(body) == "ok"
    assert verify(body + b"&url=x") == "bad_signature"
    assert verify(body, secret="other") == "bad_signature"


# ------------------------------------------------------------------------ JD Cloud

# TestBackSigner (jdcloud-sdk-go-signer core/Signer_test.go): host
# "test.cn-north-1.jdcloud-api.net", uri "/v1/region/cn-north-1/test", method PATCH,
# query filters.1.name=id, filters.1.values.1=v1, filters.1.values.2=v2, body
# "this is body", headers x-jdcloud-date 20190214T104514Z (buildTime), x-jdcloud-nonce
# "test nonce" (buildNonce), content-type application/json; Credential("access key",
# "secret key"); the expected Authorization it checks BackendSign against:
JD_BACK_AUTHORIZATION = (
    "JDCLOUD2-HMAC-SHA256 Credential=access key/20190214/cn-north-1/test/jdcloud2_request, "
    "SignedHeaders=content-type;x-jdcloud-date;x-jdcloud-nonce, "
    "Signature=1912eba02012ce6eb482302bae29cfa8e721ad66c188c533f9070e69aad2c896"
)
JD_QUERY = "filters.1.name=id&filters.1.values.1=v1&filters.1.values.2=v2"
JD_HEADERS = {
    "x-jdcloud-date": "20190214T104514Z",
    "x-jdcloud-nonce": "test nonce",
    "content-type": "application/json",
}


def test_jdcloud_test_back_signer_vector() -> None:
    signed = ["content-type", "x-jdcloud-date", "x-jdcloud-nonce"]
    canonical = jdcloud_canonical_request(
        "PATCH", "/v1/region/cn-north-1/test", JD_QUERY, JD_HEADERS, signed, b"this is body"
    )
    scope = jdcloud_credential_scope("20190214", "cn-north-1", "test")
    to_sign = jdcloud_string_to_sign("20190214T104514Z", scope, canonical)
    key = jdcloud_signing_key("secret key", "20190214", "cn-north-1", "test")
    signature = jdcloud_signature(key, to_sign)
    assert signature == "1912eba02012ce6eb482302bae29cfa8e721ad66c188c533f9070e69aad2c896"
    authorization = (
        f"JDCLOUD2-HMAC-SHA256 Credential=access key/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    assert authorization == JD_BACK_AUTHORIZATION


def test_jdcloud_test_back_signer_vector_passes_independent_verifier() -> None:
    verdict = jdcloud2_verify(
        method="PATCH",
        raw_target=f"/v1/region/cn-north-1/test?{JD_QUERY}",
        headers={**JD_HEADERS, "Authorization": JD_BACK_AUTHORIZATION},
        body=b"this is body",
        secrets={"access key": "secret key"},
        now=datetime(2019, 2, 14, 10, 45, 14, tzinfo=UTC).timestamp(),
    )
    assert verdict.ok, verdict


def test_jdcloud_canonical_pieces() -> None:
    assert jdcloud_canonical_uri("/jdai/facePropV1") == "/jdai/facePropV1"
    assert jdcloud_canonical_uri("") == "/"
    assert jdcloud_canonical_query("maxFaceCount=5") == "maxFaceCount=5"
    assert jdcloud_canonical_query("b=2&a=1&a=0&&c") == "a=0&a=1&b=2&c="
    assert jdcloud_canonical_query("x=%20y") == "x=%20y"  # raw, not re-encoded
    headers = {"Content-Type": "application/json", "User-Agent": "ua", "Authorization": "a"}
    assert jdcloud_signed_headers(headers) == ["content-type", "host"]


def test_jdcloud_sign_headers_and_shape() -> None:
    out = jdcloud_sign(
        "POST",
        "https://aiapi.jdcloud.com/jdai/facePropV1?maxFaceCount=5",
        {"Content-Type": "application/json", "User-Agent": "facecheck"},
        b'{"imgBase64":"x"}',
        "AK",
        "SK",
        now=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        nonce="n-1",
    )
    assert out["x-jdcloud-date"] == "20240506T070809Z"
    assert out["x-jdcloud-nonce"] == "n-1"
    assert out["x-jdcloud-algorithm"] == "JDCLOUD2-HMAC-SHA256"
    assert out["Authorization"].startswith(
        "JDCLOUD2-HMAC-SHA256 Credential=AK/20240506/jdcloud-api/simpleclient/jdcloud2_request, "
        "SignedHeaders=content-type;host;x-jdcloud-date;x-jdcloud-nonce, Signature="
    )
    fresh = jdcloud_sign("POST", "https://aiapi.jdcloud.com/jdai/facePropV1", {}, b"", "AK", "SK")
    other = jdcloud_sign("POST", "https://aiapi.jdcloud.com/jdai/facePropV1", {}, b"", "AK", "SK")
    assert fresh["x-jdcloud-nonce"] != other["x-jdcloud-nonce"]


def test_jdcloud_content_sha256_header_replaces_body_hash() -> None:
    headers = {"host": "h", "x-jdcloud-content-sha256": "abc"}
    canonical = jdcloud_canonical_request("POST", "/p", "", headers, ["host"], b"body")
    assert canonical.endswith("\nhost\nabc")


@pytest.mark.parametrize(
    ("region", "service"), [("jdcloud-api", "simpleclient"), ("cn-north-1", "nc")]
)
def test_jdcloud_round_trip_through_independent_verifier(region: str, service: str) -> None:
    url = "https://aiapi.jdcloud.com/jdai/facePropV1?maxFaceCount=5"
    body = b'{"imgBase64": "aGVsbG8="}'
    given = {"Content-Type": "application/json", "User-Agent": "facecheck-bot"}
    added = jdcloud_sign("POST", url, given, body, "AK", "SK", region=region, service=service)
    sent = {**given, **added, "Host": "aiapi.jdcloud.com"}
    seen: set[str] = set()

    def verify(body_sent: bytes, target: str = "/jdai/facePropV1?maxFaceCount=5") -> str:
        verdict = jdcloud2_verify(
            method="POST",
            raw_target=target,
            headers=sent,
            body=body_sent,
            secrets={"AK": "SK"},
            now=time.time(),
            seen_nonces=seen,
        )
        return "ok" if verdict.ok else verdict.reason

    assert verify(b'{"imgBase64": "other"}') == "bad_signature"
    assert verify(body, target="/jdai/facePropV1?maxFaceCount=6") == "bad_signature"
    assert verify(body) == "ok"
    assert verify(body) == "nonce_reused"
