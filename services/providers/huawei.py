"""The jumdata ID-photo check bought on the Huawei Cloud marketplace (seed 000).

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
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from services.i18n import N_
from services.images import CHECK_LIMITS_JUMDATA, ImageLimits, PreparedImage
from services.models import CheckResult
from services.providers.base import HttpReply, HttpTransport, with_retries
from services.providers.jumdata import parse_check_answer
from services.signing import huawei_sign

log = logging.getLogger(__name__)

_GATEWAY_AUTH = N_("huawei.gateway_auth")
_GATEWAY_THROTTLED = N_("huawei.gateway_throttled")
_GATEWAY_FAULT = N_("huawei.gateway_fault")


def gateway_error(provider: str, reply: HttpReply) -> ProviderError | None:
    """APIG answers in its own envelope (``error_code`` ``APIG.xxxx``) before the API is reached."""
    body = reply.json()
    if not isinstance(body, Mapping) or "error_code" not in body:
        return None
    code = str(body.get("error_code"))
    msg = str(body.get("error_msg", ""))
    log.warning("%s gateway refused the call: %s %s", provider, code, msg)
    if reply.status == 429:
        return ProviderRateLimitError(
            provider, code=code, provider_msg=msg, message_id=_GATEWAY_THROTTLED
        )
    if reply.status >= 500:
        return ProviderUnavailableError(
            provider,
            code=code,
            provider_msg=msg,
            message_id=_GATEWAY_FAULT,
            retry_safe=reply.status in (502, 503),
        )
    return ProviderAuthError(provider, code=code, provider_msg=msg, message_id=_GATEWAY_AUTH)


class HuaweiChecker:
    name = "huawei"
    limits: ImageLimits = CHECK_LIMITS_JUMDATA
    available = True

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        url: str,
        timeout: float,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._app_key = app_key
        self._app_secret = app_secret
        self._url = url
        self._clock = clock
        self._http = HttpTransport(self.name, timeout)

    def build_request(self, image: PreparedImage) -> tuple[bytes, dict[str, str]]:
        body = urlencode({"base64": base64.b64encode(image.data).decode("ascii")}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        headers.update(
            huawei_sign(
                "POST", self._url, headers, body, self._app_key, self._app_secret, now=self._clock()
            )
        )
        return body, headers

    async def check(self, image: PreparedImage) -> CheckResult:
        async def attempt() -> CheckResult:
            body, headers = self.build_request(image)
            reply = await self._http.post(self._url, data=body, headers=headers)
            refused = gateway_error(self.name, reply)
            if refused is not None:
                raise refused
            return parse_check_answer(self.name, reply, charge_field=False)

        return await with_retries(self.name, "check", attempt)

    async def close(self) -> None:
        await self._http.close()
