"""/quota for users and /stats for admins: allowances, usage and provider budgets."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.render.text import Html, escape, fill, operation_name, pack, when
from services.budget import BudgetStatus
from services.ledger import QuotaStatus, Stats
from services.models import Operation
from services.wiring import Services


def quota_text(
    statuses: dict[Operation, QuotaStatus], budgets: list[BudgetStatus], services: Services
) -> str:
    """What the user has left today, and which operations their provider has paused."""
    lines = ["<b>" + _("quota.title") + "</b>"]
    for operation, status in statuses.items():
        if status.limit is None:
            left = _("quota.unlimited")
        else:
            left = fill(_("quota.left"), remaining=status.remaining, limit=status.limit)
        lines.append(operation_name(operation) + ": " + left)
    limited = [status for status in statuses.values() if status.limit is not None]
    if limited:
        lines.append(fill(_("quota.resets"), when=when(limited[0].resets_at)))
    lines.extend(_paused_lines(statuses, budgets, services))
    return "\n".join(lines)


def _paused_lines(
    statuses: dict[Operation, QuotaStatus], budgets: list[BudgetStatus], services: Services
) -> list[str]:
    by_provider = {budget.provider: budget for budget in budgets}
    lines: list[str] = []
    for operation in statuses:
        budget = by_provider.get(services.provider_name(operation))
        if budget is None or budget.available:
            continue
        until = budget.spent_until if budget.spent else budget.backoff_until
        sentence = _("quota.provider_paused") if until else _("quota.provider_spent")
        lines.append(fill(sentence, operation=Html(operation_name(operation)), when=when(until)))
    return lines


def stats_texts(stats: Stats, budgets: list[BudgetStatus]) -> list[str]:
    """The day's usage for an admin, cut into messages Telegram accepts."""
    total = stats.total
    lines = [
        "<b>" + fill(_("stats.title"), day=stats.day.isoformat()) + "</b>",
        fill(_("stats.total"), calls=total.calls, charged=total.charged, free=total.free),
    ]
    for (operation, provider), count in sorted(stats.calls.items()):
        lines.append(
            escape(f"{operation.value} · {provider}: ")
            + fill(_("stats.calls"), calls=count.calls, charged=count.charged, free=count.free)
        )
    if stats.errors:
        lines.append("<b>" + _("stats.errors") + "</b>")
        for (provider, code), errors in sorted(stats.errors.items(), key=lambda item: -item[1]):
            lines.append(escape(f"{provider} {code}: {errors}"))
    if budgets:
        lines.append("<b>" + _("stats.budgets") + "</b>")
        lines.extend(_budget_line(budget) for budget in budgets)
    if stats.busiest:
        lines.append("<b>" + _("stats.busiest") + "</b>")
        lines.extend(escape(f"{user}: {calls}") for user, calls in stats.busiest)
    return pack(["\n".join(lines)])


def _budget_line(budget: BudgetStatus) -> str:
    state = _("stats.budget_ok") if budget.available else _("stats.budget_paused")
    return fill(
        _("stats.budget"),
        provider=budget.provider,
        remain="—" if budget.remain is None else budget.remain,
        state=Html(state),
        resets=when(budget.resets_at),
    )
