"""Server-side signature checks used by the fake provider servers.

Written separately from ``services/signing.py`` and deliberately not importing it:
the fakes must recompute signatures the way a gateway does (from what arrived on
the wire and what the ``Authorization`` header claims), so a bug in the client
signer shows up as a refused request instead of being mirrored by the fake.
Sources for each rule: the vendors' published signing documents (Huawei APIG App
authentication, JD Cloud ``JDCLOUD2-HMAC-SHA256``, jumdata's ``sign``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

__all__ = [
    "Verdict",
    "apig_verify",
    "jdcloud2_verify",
    "jumdata_expected_sign",
    "utc_stamp",
]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Verdict:
    """Outcome of a check: ``reason`` is a short machine word, ``message`` the text
    a gateway would put after its standard prefix."""

    ok: bool
    reason: str = ""
    message: str = ""
    key: str | None = None


def _percent(text: str, keep: bytes = b"") -> str:
    """RFC 3986 encoding byte by byte (upper-case hex), keeping only unreserved + ``keep``."""
    return "".join(
        chr(byte) if byte in _UNRESERVED or byte in keep else f"%{byte:02X}"
        for byte in text.encode("utf-8")
    )


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_stamp(epoch_s: float) -> str:
    """``YYYYMMDDTHHMMSSZ`` for an epoch time, the date form both gateways use."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime(_STAMP)


def _parse_stamp(text: str) -> float | None:
    try:
        return datetime.strptime(text, _STAMP).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


# --------------------------------------------------------------------------- jumdata


def jumdata_expected_sign(app_id: str, app_secret: str, timestamp: str) -> str:
    """The sign jumdata expects for the received ``timestamp`` text (seeds 001/003)."""
    hasher = hashlib.sha256()
    for part in (app_id, app_secret, timestamp):
        hasher.update(part.encode("utf-8"))
    return hasher.hexdigest()


# --------------------------------------------------------------------- Huawei APIG

_APIG_PREFIX = "SDK-HMAC-SHA256"
_APIG_FIELD = re.compile(r"(\w+)=([^,]*)")


def _apig_uri(raw_path: str) -> str:
    pieces = [_percent(piece) for piece in unquote(raw_path).split("/")]
    uri = "/".join(pieces)
    return uri if uri.endswith("/") else f"{uri}/"


def _apig_query(raw_query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for piece in raw_query.split("&"):
        name, _, value = piece.partition("=")
        if name:
            pairs.append((unquote(name), unquote(value)))
    pairs.sort()
    return "&".join(f"{_percent(name)}={_percent(value)}" for name, value in pairs)


def apig_verify(
    *,
    method: str,
    raw_target: str,
    headers: Mapping[str, str],
    body: bytes,
    app_secrets: Mapping[str, str],
    now: float,
    max_skew_s: float = 15 * 60,
) -> Verdict:
    """Check APIG App authentication on a received request.

    ``raw_target`` is the request target as sent (path and raw query). Mirrors the
    gateway's documented refusals: empty Access, unknown app,
    ``x-sdk-date`` more than 15 minutes off, otherwise a signature mismatch. ``host``
    must be among the signed headers. ``x-sdk-content-sha256`` stands in for the body
    hash; unless it is ``UNSIGNED-PAYLOAD`` it must match the body that arrived.
    """
    fields = _lowered(headers)
    authorization = fields.get("authorization", "").strip()
    scheme, _, rest = authorization.partition(" ")
    claims = dict(_APIG_FIELD.findall(rest))
    access = claims.get("Access", "").strip()
    if not access:
        return Verdict(False, "empty", "Access or Credential is empty in Authorization")
    secret = app_secrets.get(access)
    if secret is None:
        return Verdict(False, "app_not_found", f"app not found, appkey {access}", access)
    fail = Verdict(False, "bad_signature", "verify aksk signature fail", access)

    stamp = fields.get("x-sdk-date", "").strip()
    signed_at = _parse_stamp(stamp)
    if signed_at is None:
        return fail
    if abs(now - signed_at) > max_skew_s:
        message = f"signature expired, signature time:{stamp},server time:{utc_stamp(now)}"
        return Verdict(False, "expired", message, access)

    signed_names = [name for name in claims.get("SignedHeaders", "").strip().split(";") if name]
    if scheme != _APIG_PREFIX or "host" not in signed_names:
        return fail
    if any(name not in fields for name in signed_names):
        return fail
    claimed_hash = fields.get("x-sdk-content-sha256")
    if claimed_hash is not None and claimed_hash != "UNSIGNED-PAYLOAD":
        if claimed_hash != _digest(body):
            return fail
    path, _, query = raw_target.partition("?")
    canonical = "\n".join(
        [
            method.upper(),
            _apig_uri(path),
            _apig_query(query),
            "".join(f"{name}:{fields[name].strip()}\n" for name in signed_names),
            ";".join(signed_names),
            claimed_hash if claimed_hash is not None else _digest(body),
        ]
    )
    to_sign = f"{_APIG_PREFIX}\n{stamp}\n{_digest(canonical.encode('utf-8'))}"
    expected = hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), "sha256").hexdigest()
    if not hmac.compare_digest(expected, claims.get("Signature", "").strip()):
        return fail
    return Verdict(True, key=access)


# ------------------------------------------------------------------------ JD Cloud

_JD_PREFIX = "JDCLOUD2-HMAC-SHA256"
_JD_AUTH = re.compile(
    r"^JDCLOUD2-HMAC-SHA256\s+Credential=(?P<credential>.+?),\s*"
    r"SignedHeaders=(?P<signed>[^,]*),\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)


def _jd_header_value(value: str) -> str:
    return re.sub(" +", " ", value.strip())


def _jd_uris(raw_path: str) -> set[str]:
    """The apim SDK quotes the path as is; the Go signer also drops a trailing ``/``."""
    uri = _percent(raw_path or "/", keep=b"/")
    variants = {uri}
    if len(uri) > 1 and uri.endswith("/"):
        variants.add(uri.rstrip("/") or "/")
    return variants


def _jd_queries(raw_query: str) -> set[str]:
    """Raw pairs sorted (apim SDK) or decoded and RFC 3986-encoded (docs): accept both."""
    raw_pairs: list[tuple[str, str]] = []
    for piece in raw_query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            raw_pairs.append((name.strip(), value.strip()))
    encoded = sorted((_percent(unquote(n)), _percent(unquote(v))) for n, v in raw_pairs)

    def join(pairs: Iterable[tuple[str, str]]) -> str:
        return "&".join(f"{n}={v}" for n, v in pairs)

    return {join(sorted(raw_pairs)), join(encoded)}


def jdcloud2_verify(
    *,
    method: str,
    raw_target: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    now: float,
    max_skew_s: float = 15 * 60,
    seen_nonces: set[str] | None = None,
) -> Verdict:
    """Check a ``JDCLOUD2-HMAC-SHA256`` request the way the gateway validators do.

    AK, date, region and service are read from the Credential scope and the header
    list from ``SignedHeaders`` (Java ``handleCredential``, Go ``signForBackend``), so
    any consistent scope is accepted. ``x-jdcloud-date`` and ``x-jdcloud-nonce`` must be
    present and signed, the date must match the scope date and lie within
    ``max_skew_s``; a nonce already in ``seen_nonces`` is refused (and a fresh one is
    added after a successful check). Reasons: ``missing`` (APIGW_LACK_PARAMS),
    ``unknown_key`` (APIGW_KEY_NOT_EXITST), ``expired``, ``nonce_reused``
    (APIGW_NONCE_CONFLICT), ``bad_signature`` (APIGW_SIGN_RESULT_NOT_SAME).
    """
    fields = _lowered(headers)
    match = _JD_AUTH.match(fields.get("authorization", "").strip())
    if match is None:
        return Verdict(False, "missing", "authorization is missing or malformed")
    scope_parts = match["credential"].split("/")
    if len(scope_parts) != 5 or scope_parts[4] != "jdcloud2_request":
        return Verdict(False, "missing", "credential scope is malformed")
    access_key, scope_date, region, service, _ = scope_parts
    secret = secrets.get(access_key)
    if secret is None:
        return Verdict(False, "unknown_key", f"unknown access key {access_key}", access_key)
    signed_names = [name for name in match["signed"].split(";") if name]
    stamp = fields.get("x-jdcloud-date", "").strip()
    nonce = fields.get("x-jdcloud-nonce", "").strip()
    if not stamp or not nonce or not {"x-jdcloud-date", "x-jdcloud-nonce"} <= set(signed_names):
        return Verdict(
            False, "missing", "x-jdcloud-date/x-jdcloud-nonce missing or unsigned", access_key
        )
    if any(name not in fields for name in signed_names):
        return Verdict(False, "missing", "a signed header is missing", access_key)
    signed_at = _parse_stamp(stamp)
    if signed_at is None or stamp[:8] != scope_date:
        return Verdict(
            False, "bad_signature", "date does not match the credential scope", access_key
        )
    if abs(now - signed_at) > max_skew_s:
        return Verdict(False, "expired", "request date too far from server time", access_key)
    if seen_nonces is not None and nonce in seen_nonces:
        return Verdict(False, "nonce_reused", "nonce already used", access_key)

    key = f"JDCLOUD2{secret}".encode()
    for step in (scope_date, region, service, "jdcloud2_request"):
        key = hmac.new(key, step.encode("utf-8"), "sha256").digest()
    claimed_hash = (fields.get("x-jdcloud-content-sha256") or "").strip()
    if claimed_hash and claimed_hash not in {"UNSIGNED-PAYLOAD", _digest(body)}:
        # The gateway would trust the header; the fake also insists it fits the body.
        return Verdict(
            False, "bad_signature", "x-jdcloud-content-sha256 does not fit the body", access_key
        )
    payload_hash = claimed_hash or _digest(body)
    header_block = "".join(f"{name}:{_jd_header_value(fields[name])}\n" for name in signed_names)
    path, _, query = raw_target.partition("?")
    claimed_signature = match["signature"].lower()
    for uri in _jd_uris(path):
        for canonical_query in _jd_queries(query):
            canonical = "\n".join(
                [
                    method.upper(),
                    uri,
                    canonical_query,
                    header_block,
                    ";".join(signed_names),
                    payload_hash,
                ]
            )
            to_sign = "\n".join(
                [_JD_PREFIX, stamp, "/".join(scope_parts[1:]), _digest(canonical.encode("utf-8"))]
            )
            expected = hmac.new(key, to_sign.encode("utf-8"), "sha256").hexdigest()
            if hmac.compare_digest(expected, claimed_signature):
                if seen_nonces is not None:
                    seen_nonces.add(nonce)
                return Verdict(True, key=access_key)
    return Verdict(False, "bad_signature", "signature does not match", access_key)
