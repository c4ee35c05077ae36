"""Fakes of the outside services Duban talks to, for end-to-end tests and benchmarks."""

from .telegram_api import (
    DEFAULT_TOKEN,
    FakeTelegram,
    SentCall,
    UploadedFile,
)

__all__ = ["DEFAULT_TOKEN", "FakeTelegram", "SentCall", "UploadedFile"]
