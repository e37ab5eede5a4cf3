"""Request signing for the three provider APIs.

Pure functions with no I/O, so the HTTP clients and the tests share one
implementation and every step can be pinned with the vendors' own test vectors
(from their published SDKs and signing guides):

* jumdata (聚美智数): ``sign = sha256(appId + appSecret + timestamp)``, lower-case hex.
* Huawei Cloud APIG App authentication, ``SDK-HMAC-SHA256``: no key derivation,
  ``HMAC(AppSecret, string_to_sign)``; the canonical URI always ends with ``/``.
* JD Cloud ``JDCLOUD2-HMAC-SHA256``: AWS-v4-like key chain whose first key is
  ``"JDCLOUD2" + SecretKey``; hex signature; raw query sorted, not re-encoded.

The building pieces (canonical URI, query, request, string to sign, signature) are
public so tests can check each against the vendor SDK tests separately.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "EMPTY_SHA256",
    "HUAWEI_ALGORITHM",
    "JDCLOUD_ALGORITHM",
    "host_header_value",
    "huawei_canonical_query",
    "huawei_canonical_request",
    "huawei_canonical_uri",
    "huawei_query_params",
    "huawei_sign",
    "huawei_signature",
    "huawei_signed_headers",
    "huawei_string_to_sign",
    "jdcloud_canonical_query",
    "jdcloud_canonical_request",
    "jdcloud_canonical_uri",
    "jdcloud_credential_scope",
    "jdcloud_sign",
    "jdcloud_signature",
    "jdcloud_signed_headers",
    "jdcloud_signing_key",
    "jdcloud_string_to_sign",
    "jumdata_sign",
    "sha256_hex",
]

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""sha256 of the empty body, as the SDKs hard-code it."""

_DATETIME_FORMAT = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}

QueryScalar = str | int | float | bool
QueryValue = QueryScalar | Sequence[QueryScalar]


def sha256_hex(data: bytes) -> str:
    """Lower-case hex sha256, the payload/canonical-request hash of both HMAC schemes."""
    return hashlib.sha256(data).hexdigest()


def _hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _as_utc(now: datetime | None) -> datetime:
    """UTC time for the signature; a naive ``now`` is taken to be UTC already."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def _find_header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def host_header_value(url: str) -> str:
    """The ``Host`` value an HTTP client sends for ``url``: lower-case host, port only if
    not the scheme's default (what aiohttp sends, and what both gateways sign)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


# --------------------------------------------------------------------------- jumdata


def jumdata_sign(app_id: str, app_secret: str, timestamp_ms: int | str) -> str:
    """``sha256(appId + appSecret + timestamp)`` as lower-case hex (seeds 001/003).

    The same ``timestamp`` text must be sent in the form, so pass the string you send
    (an int is rendered in plain decimal).
    """
    return sha256_hex(f"{app_id}{app_secret}{timestamp_ms}".encode())


# --------------------------------------------------------------------- Huawei APIG

HUAWEI_ALGORITHM = "SDK-HMAC-SHA256"
_HUAWEI_CONTENT_SHA256 = "x-sdk-content-sha256"


def _rfc3986(text: str) -> str:
    return quote(text, safe="~")


def huawei_canonical_uri(path: str) -> str:
    """Percent-decode the path, RFC 3986-encode each segment, and always end with ``/``
    (APIG SDK ``CanonicalURI``; ``/huawei/idphoto/check`` -> ``/huawei/idphoto/check/``)."""
    uri = "/".join(_rfc3986(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def huawei_query_params(raw_query: str) -> list[tuple[str, str]]:
    """Split a raw query as the APIG SDK's ``HttpRequest`` does: on ``&`` and the first
    ``=``, percent-decoded (``+`` stays ``+``), names that are empty dropped."""
    params: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        key, _, value = item.partition("=")
        if key:
            params.append((unquote(key), unquote(value)))
    return params


def _query_text(value: QueryScalar) -> str:
    if isinstance(value, bool):  # the SDK renders Python booleans as true/false
        return "true" if value else "false"
    return str(value)


def huawei_canonical_query(params: Iterable[tuple[str, QueryValue]]) -> str:
    """Sort by name, then each name's values; RFC 3986-encode both; join ``k=v`` with ``&``
    (SDK ``process_canonical_query_string``; lists give one pair per value)."""
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        values: Sequence[QueryScalar] = (
            [value] if isinstance(value, str | int | float) else value  # bool is an int
        )
        grouped.setdefault(key, []).extend(_query_text(v) for v in values)
    return "&".join(
        f"{_rfc3986(key)}={_rfc3986(value)}"
        for key in sorted(grouped)
        for value in sorted(grouped[key])
    )


def huawei_signed_headers(headers: Mapping[str, str]) -> list[str]:
    """Every header handed to the signer, lower-cased and sorted.

    Names containing ``_`` are left out, as the current Huawei SDK does: gateways drop
    such headers, so signing them could never verify (vendor ``test_signer1`` sends
    ``TEST_UNDERSCORE`` and expects ``SignedHeaders=host;x-sdk-date``).
    ``Authorization`` cannot sign itself and is left out too.
    """
    return sorted(
        {name.lower() for name in headers if "_" not in name and name.lower() != "authorization"}
    )


def huawei_canonical_request(
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """Method, canonical URI, canonical query, ``name:trimmed value`` lines, signed names,
    and the body hash (or the ``x-sdk-content-sha256`` header's value when present)."""
    values = {name.lower(): value.strip() for name, value in headers.items()}
    missing = [name for name in signed_headers if name not in values]
    if missing:
        raise ValueError(f"signed headers without a value: {missing}")
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed_headers)
    payload_hash = values.get(_HUAWEI_CONTENT_SHA256) or sha256_hex(body)
    return "\n".join(
        [
            method.upper(),
            huawei_canonical_uri(path),
            huawei_canonical_query(huawei_query_params(raw_query)),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def huawei_string_to_sign(canonical_request: str, sdk_date: str) -> str:
    """``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n<hex sha256(canonical request)>``: no scope."""
    return f"{HUAWEI_ALGORITHM}\n{sdk_date}\n{sha256_hex(canonical_request.encode('utf-8'))}"


def huawei_signature(string_to_sign: str, app_secret: str) -> str:
    """Lower-case hex ``HMAC_SHA256(key=AppSecret, string_to_sign)``."""
    return _hmac_sha256(app_secret.encode("utf-8"), string_to_sign).hex()


def huawei_sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    app_key: str,
    app_secret: str,
    *,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers to add for APIG App authentication: ``X-Sdk-Date`` and ``Authorization``.

    ``headers`` are the headers that will be sent (all get signed, see
    :func:`huawei_signed_headers`), so pass the exact ``Content-Type`` (with the
    multipart boundary, if any). ``host`` comes from ``headers`` or else from the URL;
    an ``X-Sdk-Date`` already in ``headers`` is kept, like the SDK does, else ``now``.
    ``body`` must be the exact bytes sent.
    """
    parts = urlsplit(url)
    signing: dict[str, str] = dict(headers)
    sdk_date = _find_header(headers, "x-sdk-date")
    if sdk_date is None:
        sdk_date = _as_utc(now).strftime(_DATETIME_FORMAT)
        signing["X-Sdk-Date"] = sdk_date
    if _find_header(headers, "host") is None:
        signing["Host"] = host_header_value(url)
    signed = huawei_signed_headers(signing)
    canonical = huawei_canonical_request(method, parts.path, parts.query, signing, signed, body)
    signature = huawei_signature(huawei_string_to_sign(canonical, sdk_date), app_secret)
    authorization = (
        f"{HUAWEI_ALGORITHM} Access={app_key}, SignedHeaders={';'.join(signed)}, "
        f"Signature={signature}"
    )
    return {"X-Sdk-Date": sdk_date, "Authorization": authorization}


# ------------------------------------------------------------------------ JD Cloud

JDCLOUD_ALGORITHM = "JDCLOUD2-HMAC-SHA256"
_JD_KEY_PREFIX = "JDCLOUD2"
_JD_TERMINATOR = "jdcloud2_request"
_JD_CONTENT_SHA256 = "x-jdcloud-content-sha256"
_JD_UNSIGNED = frozenset({"authorization", "user-agent"})


def jdcloud_canonical_uri(path: str) -> str:
    """``quote(path)`` with ``/`` kept, as the apim SDK does (``/`` for an empty path)."""
    return quote(path or "/", safe="/")


def jdcloud_canonical_query(raw_query: str) -> str:
    """The raw query split on ``&`` and the first ``=``, stripped, sorted by (name,
    value) and re-joined without re-encoding (apim SDK ``__normalize_query_string``)."""
    pairs = []
    for item in raw_query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((key.strip(), value.strip()))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def jdcloud_signed_headers(headers: Mapping[str, str]) -> list[str]:
    """``host`` plus every given header except ``authorization``/``user-agent``, sorted."""
    names = {name.lower() for name in headers} - _JD_UNSIGNED
    names.add("host")
    return sorted(names)


def _collapse_spaces(value: str) -> str:
    """Trim and collapse runs of spaces, as the Go signer's ``stripExcessSpaces``."""
    return " ".join(part for part in value.strip().split(" ") if part)


def jdcloud_canonical_request(
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """Method, canonical URI, sorted raw query, ``name:value`` lines for the signed
    headers (``headers`` must hold ``host`` when it is signed), the signed names, and
    the body hash (or ``x-jdcloud-content-sha256``'s value when present)."""
    values = {name.lower(): _collapse_spaces(value) for name, value in headers.items()}
    missing = [name for name in signed_headers if name not in values]
    if missing:
        raise ValueError(f"signed headers without a value: {missing}")
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed_headers)
    payload_hash = values.get(_JD_CONTENT_SHA256) or sha256_hex(body)
    return "\n".join(
        [
            method.upper(),
            jdcloud_canonical_uri(path),
            jdcloud_canonical_query(raw_query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def jdcloud_credential_scope(date_stamp: str, region: str, service: str) -> str:
    """``<yyyymmdd>/<region>/<service>/jdcloud2_request``."""
    return f"{date_stamp}/{region}/{service}/{_JD_TERMINATOR}"


def jdcloud_string_to_sign(
    request_datetime: str, credential_scope: str, canonical_request: str
) -> str:
    """``JDCLOUD2-HMAC-SHA256\\n<x-jdcloud-date>\\n<scope>\\n<hex sha256(canonical)>``."""
    digest = sha256_hex(canonical_request.encode("utf-8"))
    return f"{JDCLOUD_ALGORITHM}\n{request_datetime}\n{credential_scope}\n{digest}"


def jdcloud_signing_key(secret_key: str, date_stamp: str, region: str, service: str) -> bytes:
    """Key chain date -> region -> service -> ``jdcloud2_request``, starting from
    ``"JDCLOUD2" + SecretKey`` (not ``AWS4``)."""
    key = _hmac_sha256(f"{_JD_KEY_PREFIX}{secret_key}".encode(), date_stamp)
    for part in (region, service, _JD_TERMINATOR):
        key = _hmac_sha256(key, part)
    return key


def jdcloud_signature(signing_key: bytes, string_to_sign: str) -> str:
    """Lower-case hex HMAC of the string to sign (hex, not base64)."""
    return _hmac_sha256(signing_key, string_to_sign).hex()


def jdcloud_sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    *,
    region: str = "jdcloud-api",
    service: str = "simpleclient",
    now: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers to add for ``JDCLOUD2-HMAC-SHA256``.

    Returns ``x-jdcloud-date``, ``x-jdcloud-nonce`` (fresh ``uuid4`` unless given;
    the gateway refuses a reused one), ``Authorization`` and ``x-jdcloud-algorithm``,
    the last added after signing and unsigned, as the SDKs do. Signed headers are
    ``host`` (from ``headers`` or the URL) plus every given header except
    ``authorization``/``user-agent``, plus date and nonce; the defaults for region and
    service are what ``jdcloud_apim_sdk``'s ``SimpleClient`` signs with.
    """
    parts = urlsplit(url)
    moment = _as_utc(now)
    request_datetime = moment.strftime(_DATETIME_FORMAT)
    date_stamp = request_datetime[:8]
    nonce_value = nonce if nonce is not None else str(uuid.uuid4())

    signing: dict[str, str] = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() not in {"x-jdcloud-date", "x-jdcloud-nonce", "x-jdcloud-algorithm"}
    }
    signing.setdefault("host", host_header_value(url))
    signing["x-jdcloud-date"] = request_datetime
    signing["x-jdcloud-nonce"] = nonce_value
    signed = jdcloud_signed_headers(signing)

    canonical = jdcloud_canonical_request(method, parts.path, parts.query, signing, signed, body)
    scope = jdcloud_credential_scope(date_stamp, region, service)
    key = jdcloud_signing_key(secret_key, date_stamp, region, service)
    signature = jdcloud_signature(key, jdcloud_string_to_sign(request_datetime, scope, canonical))
    authorization = (
        f"{JDCLOUD_ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return {
        "x-jdcloud-date": request_datetime,
        "x-jdcloud-nonce": nonce_value,
        "Authorization": authorization,
        "x-jdcloud-algorithm": JDCLOUD_ALGORITHM,
    }
