"""Fakes of the outside services Duban talks to, for end-to-end tests and benchmarks."""

from .base import ApiCall, FakeServer, FilePart
from .telegram_api import DEFAULT_TOKEN, FakeTelegram, SentCall
from .wecom_api import FakeWeCom

__all__ = [
    "DEFAULT_TOKEN",
    "ApiCall",
    "FakeServer",
    "FakeTelegram",
    "FakeWeCom",
    "FilePart",
    "SentCall",
]
