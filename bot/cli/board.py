"""`duban board link`: a one-time sign-in link to the leaders' board, for a contact."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, out, print_json, runtime

board_app = typer.Typer(help="The leaders' board (web).", no_args_is_help=True)
app.add_typer(board_app, name="board")


@board_app.command("link")
@bad_input_exits
def board_link(
    name: Annotated[str, typer.Argument(help="The contact's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print a one-time link that signs the contact in to the board (15 minutes, once)."""
    from bot.board.auth import LINK_TTL, create_link, link_url
    from bot.i18n import UserError
    from bot.models import utcnow
    from bot.services import audit, contacts

    rt = runtime()
    base = rt.settings.web_base_url
    if base is None:
        raise UserError("board.cli_no_base_url")
    now = utcnow()
    with rt.session() as session:
        contact = contacts.find_contact(session, name)
        if not contact.active or contact.id is None:
            raise UserError("cli_plans.board_inactive", name=contact.name)
        url = link_url(base, create_link(session, contact.id, now=now))
        audit.record(session, actor=audit.CLI_ACTOR, action="board.link", contact=contact.name)
        who = contact.name
    expires = (now + LINK_TTL).astimezone(rt.settings.tz).replace(microsecond=0)
    if as_json:
        print_json({"name": who, "url": url, "expires_at": expires.isoformat()})
        return
    out.print(
        rt.t("board.cli_link", name=who, url=url, expires=expires.strftime("%Y-%m-%d %H:%M")),
        markup=False,
        highlight=False,
    )
