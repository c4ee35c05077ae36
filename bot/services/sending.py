"""Sending the digest: to every leader through the outbox, and to the leaders' group robot.

The digest is rendered when it is queued, once per markup (plain text, HTML, markdown); the
dispatcher picks the one that suits the channel it delivers on.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from bot.models import Contact, Role
from bot.outbox import OUTBOX_TOUCHED, Message, enqueue
from bot.services.digest import Digest
from bot.templating import render_digest


def chart_subtitle(digest: Digest, locale: str) -> str:
    """The week, as the chart's subtitle says it."""
    if locale == "en":
        return f"Week {digest.week} of {digest.year} ({digest.start} to {digest.end})"
    start, end = digest.start, digest.end
    return (
        f"{digest.year}年第{digest.week}周（{start.month}月{start.day}日—{end.month}月{end.day}日）"
    )


def write_digest_chart(digest: Digest, path: Path, locale: str) -> Path:
    """Draw the digest's progress-per-section chart into a PNG file."""
    from bot.chart import render_progress_chart  # matplotlib is heavy: only when drawing

    path.parent.mkdir(parents=True, exist_ok=True)
    return render_progress_chart(
        digest.sections,
        path,
        title=digest.plan.title,
        subtitle=chart_subtitle(digest, locale),
        locale=locale,
    )


def digest_payload(digest: Digest, locale: str, chart: Path | None) -> dict[str, str]:
    """The digest in every markup, and its chart."""
    payload = {
        "text": render_digest(digest, "text", locale),
        "html": render_digest(digest, "html", locale),
        "markdown": render_digest(digest, "markdown", locale),
    }
    if chart is not None:
        payload["photo"] = str(chart)
    return payload


def queue_digest(
    session: Session,
    digest: Digest,
    *,
    locale: str,
    now: datetime,
    chart_dir: Path | None = None,
    group: bool = True,
) -> int:
    """Plan the digest for every active leader (once per week each) and the group robot."""
    chart = None
    if chart_dir is not None:
        chart = write_digest_chart(digest, chart_dir / f"digest-{digest.label}.png", locale)
    payload = digest_payload(digest, locale, chart)
    leaders = session.exec(
        select(Contact).where(Contact.role == Role.leader, col(Contact.active).is_(True))
    )
    messages = [
        Message(
            key=f"digest:{digest.plan.id}:{digest.label}:{leader.id}",
            kind="digest",
            contact_id=leader.id,
            payload=payload,
            due_at=now,
        )
        for leader in leaders
    ]
    queued = len(enqueue(session, messages, now=now))
    if group:
        robot = Message(
            key=f"digest-group:{digest.plan.id}:{digest.label}",
            kind="group",
            payload={"markdown": payload["markdown"]},
            due_at=now,
        )
        enqueue(session, [robot], now=now)
    session.info[OUTBOX_TOUCHED] = True
    return queued
