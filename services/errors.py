"""Failures the bot can explain to a user.

Every failure carries a ``message_id``: the catalogue entry that tells the user
what happened and what to do next. Provider failures also keep the provider's own
code and text (for logs, never shown raw) and whether the provider charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.i18n import N_
from services.models import Usage


class ServiceError(Exception):
    """Base of every failure that ends a request with a message to the user."""

    message_id: str = N_("error.internal")

    def __init__(self, detail: str = "", *, values: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail or self.message_id)
        self.detail = detail
        self.values: dict[str, Any] = dict(values or {})


class ImageProblem(StrEnum):
    NOT_IMAGE = "not_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT = "corrupt"
    ANIMATED = "animated"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_MANY_SCANS = "too_many_scans"
    TOO_SMALL = "too_small"
    FILE_TOO_BIG = "file_too_big"
    CANNOT_FIT = "cannot_fit"


_IMAGE_MESSAGES: dict[ImageProblem, str] = {
    ImageProblem.NOT_IMAGE: N_("image.not_image"),
    ImageProblem.UNSUPPORTED_FORMAT: N_("image.unsupported_format"),
    ImageProblem.CORRUPT: N_("image.corrupt"),
    ImageProblem.ANIMATED: N_("image.animated"),
    ImageProblem.TOO_MANY_PIXELS: N_("image.too_many_pixels"),
    ImageProblem.TOO_MANY_SCANS: N_("image.too_many_scans"),
    ImageProblem.TOO_SMALL: N_("image.too_small"),
    ImageProblem.FILE_TOO_BIG: N_("image.file_too_big"),
    ImageProblem.CANNOT_FIT: N_("image.cannot_fit"),
}


class ImageError(ServiceError):
    """The input is not a photo we can send anywhere; no provider is called."""

    def __init__(self, problem: ImageProblem, detail: str = "", **values: Any) -> None:
        super().__init__(detail or problem.value, values=values)
        self.problem = problem
        self.message_id = _IMAGE_MESSAGES[problem]


class OperationUnavailable(ServiceError):
    """The configured provider for an operation cannot serve it on this deployment."""

    message_id = N_("error.operation_unavailable")

    def __init__(self, operation: str, provider: str) -> None:
        super().__init__(
            f"{operation} via {provider} is not available",
            values={"operation": operation, "provider": provider},
        )
        self.operation = operation
        self.provider = provider


class BudgetEffect(StrEnum):
    """What a provider's answer says about the operator's account with that provider."""

    NONE = "none"
    SPENT_UNTIL_CLEARED = "spent_until_cleared"  # balance or payment: top up, then /clearbudget
    SPENT_UNTIL_RESET = "spent_until_reset"  # a daily limit: until the provider's day ends
    BACK_OFF = "back_off"  # too fast: no call for a while


class ProviderError(ServiceError):
    """A provider answered with (or failed with) something other than a result.

    ``code`` is the provider's own code (jumdata ``code``, an APIG ``error_code``,
    an HTTP status for transport faults); ``provider_msg`` its text, for logs only;
    ``usage`` what the answer said about billing (``charge``, JD's remaining calls).
    ``budget`` and ``backoff`` are what the vendor's code table says the answer means
    for the account, so ``services.budget`` needs no vendor's numbers.
    """

    def __init__(
        self,
        provider: str,
        *,
        code: int | str | None = None,
        provider_msg: str | None = None,
        message_id: str | None = None,
        usage: Usage | None = None,
        retry_safe: bool = False,
        budget: BudgetEffect = BudgetEffect.NONE,
        backoff: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(detail or f"{provider} code={code} msg={provider_msg!r}")
        self.provider = provider
        self.code = code
        self.provider_msg = provider_msg
        if message_id is not None:
            self.message_id = message_id
        self.usage = usage if usage is not None else Usage(charged=False)
        # True only when the provider certainly did not process (or charge) the call.
        self.retry_safe = retry_safe and not (self.usage.charged or self.usage.unknown)
        self.budget = budget
        self.backoff = backoff

    @property
    def charged(self) -> bool:
        return self.usage.charged

    @property
    def unknown(self) -> bool:
        """Sent, and never answered or answered unreadably: the provider may have charged
        (``Usage.unknown``)."""
        return self.usage.unknown

    @property
    def task_no(self) -> str | None:
        return self.usage.task_no


class ProviderInputError(ProviderError):
    """The provider looked at this photo and refused it: another photo may pass."""

    message_id = N_("provider.input_rejected")


class ProviderAuthError(ProviderError):
    """Credentials, subscription or network allow-list problem: only the operator can fix it."""

    message_id = N_("provider.auth")


class ProviderBudgetError(ProviderError):
    """The operator's paid calls with this provider are used up."""

    message_id = N_("provider.budget")


class ProviderRateLimitError(ProviderError):
    """Too many calls for now; the same call later will likely work."""

    message_id = N_("provider.rate_limited")


class ProviderUnavailableError(ProviderError):
    """Timeout, network fault, 5xx, maintenance or an answer we cannot read."""

    message_id = N_("provider.unavailable")


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One row of a vendor's code table: the failure family, the message that tells the user
    what to do next, whether a retry is safe, and what the code means for the budget."""

    family: type[ProviderError]
    message_id: str
    retry_safe: bool = False
    budget: BudgetEffect = BudgetEffect.NONE
    backoff: float | None = None  # seconds without calls, for a back-off code

    def error(
        self,
        provider: str,
        code: int | str,
        *,
        msg: str | None = None,
        usage: Usage | None = None,
        message_id: str | None = None,
    ) -> ProviderError:
        return self.family(
            provider,
            code=code,
            provider_msg=msg,
            message_id=message_id or self.message_id,
            usage=usage,
            retry_safe=self.retry_safe,
            budget=self.budget,
            backoff=self.backoff,
        )


UNKNOWN_CODE = CodeInfo(ProviderUnavailableError, N_("provider.unknown_code"))
MALFORMED = CodeInfo(ProviderUnavailableError, N_("provider.malformed"))
