"""A bare python-telegram-bot echo bot: the baseline for bench/telegram_throughput.py."""

from __future__ import annotations

import os
import sys

from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters


async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """Replies with the same text."""
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(update.message.text)


def main() -> None:
    """Poll the given Bot API server until killed (argv: TOKEN URL [httpx|aiohttp])."""
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    token, base = sys.argv[1], sys.argv[2]
    transport = sys.argv[3] if len(sys.argv) > 3 else "httpx"
    builder = (
        ApplicationBuilder().token(token).base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    )
    if transport == "aiohttp":  # the same transport as Duban's default, for a like-for-like run
        from bot.channels.aiohttp_request import AiohttpRequest

        builder = builder.request(AiohttpRequest()).get_updates_request(AiohttpRequest(1))
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.run_polling(poll_interval=0.0, timeout=1, stop_signals=None, close_loop=False)


if __name__ == "__main__":
    main()
