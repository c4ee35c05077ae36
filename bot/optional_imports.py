"""Importing a library without the optional extras Duban never uses.

Some libraries import another one at import time only because it is installed (``try: import
X except ImportError``), for a feature Duban does not use. Under :func:`skipping` they import
as if it were not installed, and the bot does not carry it:

- python-telegram-bot imports ``cryptography`` (its Rust library: some 9 MB resident) for
  Telegram Passport decryption, which needs a ``private_key`` Duban never gives it;
- httpx imports its command-line client (``httpx._main``: click, pygments, rich) for the
  ``httpx`` console script, a program of its own.

Only names not imported yet are skipped, and only for the ``with`` block: afterwards they
import as usual (WeCom's wechatpy needs ``cryptography`` and gets it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

# What `duban run` skips when it imports python-telegram-bot (see the module docstring).
TELEGRAM_EXTRAS = ("cryptography", "httpx._main")


@contextmanager
def skipping(*names: str) -> Iterator[None]:
    """Imports inside the block find the modules `names` missing (ModuleNotFoundError), unless
    they were imported already; afterwards they import as usual."""
    skipped = [name for name in names if name not in sys.modules]
    for name in skipped:
        sys.modules[name] = None  # type: ignore[assignment]  # "not installed", for import
    try:
        yield
    finally:
        for name in skipped:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
