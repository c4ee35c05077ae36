"""`duban contacts add | list | invite`: the people who answer for items, and their invites."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.errors import bad_input_exits
from bot.cli.runtime import app, out, print_json, runtime

if TYPE_CHECKING:
    from bot.models import Contact

contacts_app = typer.Typer(help="Register contacts and issue invite codes.", no_args_is_help=True)
app.add_typer(contacts_app, name="contacts")


@contacts_app.command("add")
@bad_input_exits
def contacts_add(
    name: Annotated[str, typer.Argument(help="The person's name, unique.")],
    unit: Annotated[str, typer.Option("--unit", help="Their unit, e.g. 基础教育科.")] = "",
    role: Annotated[str, typer.Option("--role", help="official, leader or admin.")] = "official",
    telegram: Annotated[int | None, typer.Option("--telegram", help="Telegram user id.")] = None,
    wecom: Annotated[str | None, typer.Option("--wecom", help="WeCom userid.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Register a contact."""
    from bot.services import audit, contacts

    parsed_role = contacts.parse_role(role)
    rt = runtime()
    with rt.session() as session:
        contact = contacts.add_contact(
            session,
            name=name,
            unit=unit,
            role=parsed_role,
            telegram_id=telegram,
            wecom_userid=wecom,
            actor=audit.CLI_ACTOR,
        )
        if as_json:
            print_json(contact_json(contact, 0))
        else:
            out.print(
                rt.t(
                    "cli.contacts.added",
                    name=contact.name,
                    unit=contact.unit or "-",
                    role=rt.t(f"role.{contact.role.value}"),
                )
            )


@contacts_app.command("list")
@bad_input_exits
def contacts_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every contact with their unit, role, bound accounts and number of items."""
    from rich.table import Table

    from bot.services import contacts

    rt = runtime()
    with rt.session() as session:
        rows = contacts.list_contacts(session)
        if as_json:
            print_json({"contacts": [contact_json(c, n) for c, n in rows]})
            return
        t = rt.t
        table = Table()
        for key in ("name", "unit", "role", "telegram", "wecom", "items"):
            table.add_column(t(f"cli.contacts.col.{key}"))
        for c, n in rows:
            table.add_row(
                c.name,
                c.unit,
                t(f"role.{c.role.value}"),
                str(c.telegram_id or ""),
                c.wecom_userid or "",
                str(n),
            )
        out.print(table)


@contacts_app.command("invite")
@bad_input_exits
def contacts_invite(
    name: Annotated[str, typer.Argument(help="The contact's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print a one-time code that binds the contact's chat account (valid 7 days)."""
    from bot.services import audit, contacts

    rt = runtime()
    with rt.session() as session:
        contact = contacts.find_contact(session, name)
        code, invite = contacts.create_invite(
            session, contact, valid_days=rt.settings.invite_valid_days, actor=audit.CLI_ACTOR
        )
        expires = invite.expires_at.astimezone(rt.settings.tz)
        if as_json:
            print_json({"name": contact.name, "code": code, "expires_at": expires.isoformat()})
        else:
            out.print(
                rt.t(
                    "cli.contacts.invite",
                    name=contact.name,
                    code=code,
                    expires=expires.strftime("%Y-%m-%d %H:%M"),
                )
            )


def contact_json(contact: Contact, items: int) -> dict[str, Any]:
    """A contact as `duban contacts list --json` prints it, with the number of their items."""
    return {
        "name": contact.name,
        "unit": contact.unit,
        "role": contact.role.value,
        "telegram_id": contact.telegram_id,
        "wecom_userid": contact.wecom_userid,
        "items": items,
    }
