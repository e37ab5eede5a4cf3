"""The offline engine's place among the providers.

It implements the same ``IdPhotoChecker`` interface as the cloud providers. The
models are not bundled yet, so it reports itself unavailable and the bot tells
users so before it downloads anything.
"""

from __future__ import annotations

from services.errors import OperationUnavailable
from services.images import CHECK_LIMITS_JUMDATA, ImageLimits, PreparedImage
from services.models import CheckResult, Operation


class LocalChecker:
    name = "local"
    limits: ImageLimits = CHECK_LIMITS_JUMDATA
    available = False

    async def check(self, image: PreparedImage) -> CheckResult:
        raise OperationUnavailable(Operation.CHECK.value, self.name)

    async def close(self) -> None:
        return None
