"""An item's quantitative targets as an admin names them: by metric or by number (1, 2, ...)."""

from __future__ import annotations

from sqlmodel import Session

from bot.cn_numbers import parse_number
from bot.i18n import UserError
from bot.models import Target, WorkItem
from bot.services import audit, plans
from bot.services.reports import item_targets


def match_values(targets: list[Target], given: list[str]) -> list[tuple[Target, float]]:
    """`METRIC=V` pairs matched to the item's targets (by metric, or its number 1, 2, ...)."""
    pairs: list[tuple[Target, float]] = []
    for raw in given:
        metric, sep, number = raw.partition("=")
        value = parse_number(number.strip()) if sep else None
        if value is None:
            raise UserError("report.bad_value", value=raw)
        name = metric.strip()
        matches = [
            t
            for i, t in enumerate(targets, start=1)
            if name == str(i) or (name and (name in t.metric or t.metric in name))
        ]
        if len(matches) != 1:
            known = "；".join(f"{i}={t.metric}" for i, t in enumerate(targets, start=1)) or "-"
            raise UserError("report.unknown_metric", metric=name, known=known)
        pairs.append((matches[0], value))
    return pairs


def set_additive(
    session: Session, item: WorkItem, number: int, *, additive: bool, actor: str
) -> Target:
    """Make the item's target `number` (1, 2, ...) sum each reporter's latest value, or take
    the latest value of all; the change is audited."""
    targets = item_targets(session, item)
    if not 1 <= number <= len(targets):
        raise UserError(
            "targets.unknown", item=plans.item_ref(session, item), number=number, count=len(targets)
        )
    chosen = targets[number - 1]
    chosen.additive = additive
    audit.record(
        session,
        actor=actor,
        action="target.additive",
        **audit.of_item(session, item),
        target=chosen.metric,
        additive=chosen.additive,
    )
    return chosen
