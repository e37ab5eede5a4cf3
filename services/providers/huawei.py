"""The jumdata ID-photo check bought on the Huawei Cloud marketplace.

The API sits behind Huawei's API gateway (APIG) and is signed with the App
AppKey/AppSecret algorithm. The URL comes whole from ``HUAWEI_CHECK_URL``: the
marketplace gives every purchase its own host and path. The photo travels as
``base64`` in a form body, the field the product documents first.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

from services.errors import (
    BudgetEffect,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.i18n import N_
from services.images import CHECK_LIMITS_JUMDATA, ImageLimits, PreparedImage
from services.models import CheckResult, Usage
from services.providers.answers import decode, short_text
from services.providers.base import Checker
from services.providers.http import RETRY_SAFE_HTTP, CloudClient, HttpReply, HttpRequest
from services.providers.jumdata import parse_check_answer
from services.signing import huawei_sign

log = logging.getLogger(__name__)

_GATEWAY_AUTH = N_("huawei.gateway_auth")
_GATEWAY_THROTTLED = N_("huawei.gateway_throttled")
_GATEWAY_FAULT = N_("huawei.gateway_fault")


def build_check_request(
    url: str, image: PreparedImage, app_key: str, app_secret: str, now: datetime
) -> HttpRequest:
    """The photo as ``base64`` in a form body, signed with APIG App authentication."""
    body = urlencode({"base64": base64.b64encode(image.data).decode("ascii")}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    headers.update(huawei_sign("POST", url, headers, body, app_key, app_secret, now=now))
    return HttpRequest(url, body, headers)


def gateway_error(provider: str, reply: HttpReply) -> ProviderError | None:
    """APIG answers in its own envelope (``error_code`` ``APIG.xxxx``) before the API is reached."""
    body = decode(reply.body)
    if not isinstance(body, Mapping) or "error_code" not in body:
        return None
    code = short_text(body.get("error_code")) or "APIG"  # APIG's codes are strings: APIG.0303
    msg = short_text(body.get("error_msg")) or ""
    log.warning("%s gateway refused the call: %s %s", provider, code, msg)
    if reply.status == 429:
        return ProviderRateLimitError(
            provider,
            code=code,
            provider_msg=msg,
            message_id=_GATEWAY_THROTTLED,
            budget=BudgetEffect.BACK_OFF,
        )
    if reply.status >= 500:
        # A 502/503 passed nothing on; past them (a 504: the backend timed out) the API was
        # reached and may have billed.
        passed_on = reply.status not in RETRY_SAFE_HTTP
        return ProviderUnavailableError(
            provider,
            code=code,
            provider_msg=msg,
            message_id=_GATEWAY_FAULT,
            usage=Usage(charged=False, unknown=passed_on),
            retry_safe=not passed_on,
        )
    return ProviderAuthError(provider, code=code, provider_msg=msg, message_id=_GATEWAY_AUTH)


def parse_check(provider: str, reply: HttpReply) -> CheckResult:
    """A gateway refusal, or the jumdata answer (with no ``charge``: code 200 is billed)."""
    refused = gateway_error(provider, reply)
    if refused is not None:
        raise refused
    return parse_check_answer(provider, reply, charge_field=False)


class HuaweiChecker(CloudClient, Checker):
    name = "huawei"
    limits: ImageLimits = CHECK_LIMITS_JUMDATA

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        url: str,
        timeout: float,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(timeout)
        self._app_key = app_key
        self._app_secret = app_secret
        self._url = url
        self._clock = clock

    async def check(self, image: PreparedImage) -> CheckResult:
        return await self.call(
            "check",
            lambda: build_check_request(
                self._url, image, self._app_key, self._app_secret, self._clock()
            ),
            lambda reply: parse_check(self.name, reply),
        )
