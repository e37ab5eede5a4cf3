"""Fake Huawei Cloud marketplace ID-photo check behind APIG App authentication.

The product (seed 000) is jumdata's ID-photo check resold through Huawei's API
gateway: the gateway verifies ``SDK-HMAC-SHA256`` and refuses
with HTTP 401 ``APIG.0303`` before the service sees anything; the service
reads ``base64`` (priority) or ``url`` from a form body and answers like jumdata's
check but without ``charge`` (codes 200, 201-210, 400, 500, 501, 999).

Signature checking lives in ``tests/fakes/_sigcheck.py``, independent of the client
signer in ``services/signing.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes._sigcheck import apig_verify
from tests.fakes.jumdata import CLIENT_MAX_SIZE, _FakeProvider, parse_form

__all__ = ["APIG_AUTH_ERROR_CODE", "HUAWEI_CHECK_MESSAGES", "FakeHuaweiCheck"]

APIG_AUTH_ERROR_CODE = "APIG.0303"
_APIG_AUTH_PREFIX = "Incorrect app authentication information: "

HUAWEI_CHECK_MESSAGES: dict[int, str] = {
    200: "成功",
    201: "照片处理失败",
    202: "人脸检测失败",
    203: "照片找不到",
    204: "图片尺寸过大，最大边长为2500像素",
    205: "图片中找不到人脸",
    206: "图片中找不到人的头部信息",
    207: "证件照规格不存在",
    208: "内容涉嫌违规",
    209: "图片编码失败",
    210: "图片不适合制作证件照",
    400: "参数错误",
    500: "服务商维护，请稍候再试",
    501: "官方数据源维护，请稍候再试",
    999: "其他",
}
"""Seed 000 code table (full-width commas as published)."""


def _apig_error(code: str, message: str) -> dict[str, str]:
    return {"error_msg": message, "error_code": code, "request_id": uuid.uuid4().hex}


class FakeHuaweiCheck(_FakeProvider):
    """One APIG-protected endpoint (``url``) serving the ID-photo check.

    Auth refusals are HTTP 401 ``{"error_msg": "Incorrect app authentication
    information: …", "error_code": "APIG.0303", "request_id": <32 hex>}`` with the
    gateway's texts: "Access or Credential is empty in Authorization", "app not
    found, appkey <key>", "signature expired, signature time:…,server time:…" (more
    than ``max_skew_s`` off) and "verify aksk signature fail". Business answers are
    HTTP 200. ``charged`` counts code-200 answers (the package is billed per success,
    assumed).
    """

    _with_charge: ClassVar[bool] = False

    def __init__(
        self,
        app_key: str = "test-key",
        app_secret: str = "test-secret",
        path: str = "/idphoto/check",
        *,
        max_skew_s: float = 15 * 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__((path,), {path: HUAWEI_CHECK_MESSAGES})
        self.app_key = app_key
        self.app_secret = app_secret
        self.path = path
        self.max_skew_s = max_skew_s
        self._clock = clock

    @property
    def url(self) -> str:
        """Full URL of the endpoint."""
        return self.base_url + self.path

    def script(  # type: ignore[override]
        self,
        path: str | None = None,
        *,
        code: int | None = None,
        msg: str | None = None,
        hang: float | None = None,
        malformed: bool = False,
        http_status: int | None = None,
        detect_result: dict[str, Any] | None = None,
        reasons: list[str] | None = None,
        times: int = 1,
    ) -> None:
        """Queue answers as :meth:`FakeJumdata.script` does; ``path`` defaults to the endpoint."""
        super().script(
            path if path is not None else self.path,
            code=code,
            msg=msg,
            hang=hang,
            malformed=malformed,
            http_status=http_status,
            detect_result=detect_result,
            reasons=reasons,
            times=times,
        )

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = parse_form(request.headers.get("Content-Type", ""), body)
        received = self._record(request, form)
        if request.path != self.path or request.method != "POST":
            message = "The API does not exist or has not been published in the environment"
            return self._respond_json(received, _apig_error("APIG.0101", message), status=404)

        verdict = apig_verify(
            method=request.method,
            raw_target=request.raw_path,
            headers=request.headers,
            body=body,
            app_secrets={self.app_key: self.app_secret},
            now=self._clock(),
            max_skew_s=self.max_skew_s,
        )
        if not verdict.ok:
            error = _apig_error(APIG_AUTH_ERROR_CODE, _APIG_AUTH_PREFIX + verdict.message)
            return self._respond_json(received, error, status=401)
        received.auth_ok = True

        script = self._pop_script(self.path)
        if script is not None and script.hang:
            await self._hang(script.hang)
        if script is not None and script.http_status is not None and script.http_status != 200:
            return self._respond_html(received, script.http_status)
        if script is not None and script.malformed:
            return self._respond_malformed(received)

        image_field, data, problem = self._take_image(form, ("base64", "url"))
        received.image_field, received.image_bytes = image_field, data
        if script is not None and script.code is not None and script.code != 200:
            return self._respond_json(received, self._coded(self.path, script.code, script.msg))
        if problem is not None:
            return self._respond_json(received, problem)
        assert data is not None
        return self._respond_json(received, self._check_answer(self.path, data, script))
