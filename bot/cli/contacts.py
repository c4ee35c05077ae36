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
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account",
            help="A chat account as PLATFORM:ID (repeatable), e.g. --account wecom:zhangsan, "
            "--account dingtalk:manager4220, --account feishu:ou_7d8a6e6df7621556ce0d21922b676706.",
        ),
    ] = None,
    telegram: Annotated[str | None, typer.Option("--telegram", help="Telegram user id.")] = None,
    wecom: Annotated[str | None, typer.Option("--wecom", help="WeCom userid.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Register a contact."""
    from bot.services import accounts, audit, contacts

    parsed_role = contacts.parse_role(role)
    wanted = contacts.parse_accounts(account or [])
    for platform, value in (("telegram", telegram), ("wecom", wecom)):
        if value is not None:
            wanted[platform] = value
    rt = runtime()
    with rt.session() as session:
        contact = contacts.add_contact(
            session,
            name=name,
            unit=unit,
            role=parsed_role,
            accounts=wanted,
            actor=audit.CLI_ACTOR,
        )
        if as_json:
            print_json(contact_json(contact, 0, accounts.accounts_of(session, [contact.id or 0])))
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

    from bot.services import accounts, contacts

    rt = runtime()
    with rt.session() as session:
        rows = contacts.list_contacts(session)
        held = accounts.accounts_of(session, [c.id for c, _ in rows if c.id is not None])
        if as_json:
            print_json({"contacts": [contact_json(c, n, held) for c, n in rows]})
            return
        t = rt.t
        table = Table()
        for key in ("name", "unit", "role", "accounts", "items"):
            table.add_column(t(f"cli.contacts.col.{key}"))
        for c, n in rows:
            shown = [
                f"{t(f'channel.{platform}.label')} {value}"
                for platform, value in held.get(c.id or 0, {}).items()
            ]
            table.add_row(c.name, c.unit, t(f"role.{c.role.value}"), ", ".join(shown), str(n))
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


def contact_json(contact: Contact, items: int, held: dict[int, dict[str, str]]) -> dict[str, Any]:
    """A contact as `duban contacts list --json` prints it: their accounts ({platform: id})
    and the number of their items."""
    return {
        "name": contact.name,
        "unit": contact.unit,
        "role": contact.role.value,
        "accounts": held.get(contact.id or 0, {}),
        "items": items,
    }
