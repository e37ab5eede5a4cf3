"""The offline engine's place among the providers.

It implements the same interfaces as the cloud providers. The models are not
bundled yet, so it reports itself unavailable for every operation and the bot tells
users so before it downloads anything.
"""

from __future__ import annotations

from services.errors import OperationUnavailable
from services.faces import AnalyzeResult, CompareResult, DetectResult
from services.images import CHECK_LIMITS_JUMDATA, ImageLimits, PreparedImage
from services.models import CheckResult, Operation

LOCAL_LIMITS = CHECK_LIMITS_JUMDATA


class LocalEngine:
    name = "local"
    limits: ImageLimits = LOCAL_LIMITS
    available = False

    def limits_for(self, width: int, height: int) -> ImageLimits:
        return self.limits

    async def check(self, image: PreparedImage) -> CheckResult:
        raise OperationUnavailable(Operation.CHECK.value, self.name)

    async def compare(self, a: PreparedImage, b: PreparedImage) -> CompareResult:
        raise OperationUnavailable(Operation.COMPARE.value, self.name)

    async def detect(
        self, image: PreparedImage, *, max_faces: int = 120, attributes: bool = False
    ) -> DetectResult:
        raise OperationUnavailable(Operation.DETECT.value, self.name)

    async def analyze(self, image: PreparedImage, *, max_faces: int = 5) -> AnalyzeResult:
        raise OperationUnavailable(Operation.ANALYZE.value, self.name)

    async def close(self) -> None:
        return None
