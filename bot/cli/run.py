"""`duban demo`, `duban chat` and `duban run`: the bot itself, offline in a terminal or on the
configured channels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.errors import LOG_FORMAT, bad_input_exits, fail
from bot.cli.runtime import app, out


@app.command("demo")
@bad_input_exits
def demo_cmd(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where to write the ledger and the chart.")
    ] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
) -> None:
    """Play a fortnight of the sample plan offline: asks, replies, escalation, the digest."""
    import asyncio

    from bot import db
    from bot.demo import demo_settings, play
    from bot.i18n import Translator
    from bot.settings import load_settings

    base = load_settings()
    settings = demo_settings(base, out_dir)
    if out_dir is not None and (out_dir / "demo.db").exists():
        (out_dir / "demo.db").unlink()  # always a fresh database
    t = Translator(settings.locale)
    out.print(t("demo.intro"), highlight=False)
    result = asyncio.run(
        play(
            settings,
            out=sys.stdout,
            colors=not no_color and sys.stdout.isatty(),
            csv=db.sample_path("assignments.csv"),
            sample=db.sample_path("jiangmen-edu-2023-workpoints.txt"),
        )
    )
    out.print(
        t(
            "demo.done",
            ledger=str(result.ledger),
            chart=str(result.chart),
            bulletin=str(result.bulletin),
            database=str(result.database),
        ),
        highlight=False,
    )


@app.command("chat")
@bad_input_exits
def chat_cmd(
    as_name: Annotated[str, typer.Option("--as", help="The contact to be (their name).")],
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours.")] = False,
) -> None:
    """Chat with the bot in this terminal as a contact (no Telegram or WeCom needed)."""
    import asyncio

    from bot.console_chat import run_chat
    from bot.settings import load_settings

    settings = load_settings()
    try:
        code = asyncio.run(
            run_chat(settings, as_name, stdin=sys.stdin, stdout=sys.stdout, colors=not no_color)
        )
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.command("run")
@bad_input_exits
def run_cmd() -> None:
    """Run the bot: the configured channels, the web app (/healthz) and the scheduler."""
    import asyncio
    import logging

    from bot import memory
    from bot.app import DubanApp, configured_channels
    from bot.i18n import Translator
    from bot.settings import load_settings

    settings = load_settings()
    t = Translator(settings.locale)
    if not configured_channels(settings):
        names = {c.name for c in app.registered_commands}
        from bot.channels import registry

        choices = "; ".join(
            f"{t(f'channel.{spec.name}.label')}: {', '.join(k.upper() for k in spec.settings)}"
            for spec in registry.specs().values()
            if spec.settings
        )
        fail(
            t("run.no_channel", channels=choices)
            + (" " + t("run.try_demo") if "demo" in names else "")
        )
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the token
    memory.limit_arenas()  # before the threads start (bot/memory.py)
    asyncio.run(DubanApp(settings).run_until_signal())
