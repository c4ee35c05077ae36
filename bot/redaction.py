"""Secrets out of logs and stored error text: one redactor, applied to every log record.

A `Redactor` masks the configured secrets (every SecretStr setting, the passwords in
DATABASE_URL and TELEGRAM_PROXY_URL) wherever they appear, plain or URL-encoded, and masks by
shape what no setting names: WeCom's `corpsecret=` and `access_token=`, a group robot's
`?key=`, a Telegram bot token and the `/bot<token>/` of a Bot API URL, and the password in any
`scheme://user:password@host` URL.

`install_redaction` (called by the composition root, never at import) redacts every log record
as it is made, whichever logger made it (httpx, urllib3, telegram, wechatpy, apscheduler ...)
and whichever handler will print it, including handlers added later: it wraps the log record
factory, and filters the root logger's handlers too for records made some other way. The
message, the traceback and the stack are redacted; a record with nothing to hide is left as
it was. Error text that is stored (`outbox.last_error`) or shown to people goes through the
same Redactor by hand.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bot.settings import Settings

MASK = "***"
MIN_SECRET = 6  # shorter values would mask ordinary words; such secrets are masked by shape only

# Masked by shape; the group `keep` is what stays in front of the mask.
_VALUE = r"(?:(?!%26)[^&\s'\"<>#,;)\]}\\])+"
_SHAPES = (
    # the password of scheme://user:password@host
    r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@?#]*:)[^\s@/?#]+(?=@)",
    # a Telegram bot token, and whatever stands in a Bot API URL's /bot<token>/
    r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}",
    r"(?P<keep>/bot)[^/\s?#'\"]*:[^/\s?#'\"]+",
    # a Feishu / Lark custom bot's webhook token, in its path
    r"(?P<keep>/open-apis/bot/v2/hook/)[^/\s?#'\"]+",
    # secrets in a query string (also URL-encoded inside another URL)
    r"(?P<keep>(?:[?&]|%3[Ff]|%26)(?:key|corpsecret|access_token|secret|token|password|ticket)"
    r"(?:=|%3[Dd]))" + _VALUE,
    # name=value, name: value, 'name': 'value' for the names that are always secret
    r"(?P<keep>\b(?:corpsecret|access_token|secret_token|password|encoding_?aes_?key"
    r"|tenant_access_token|app_?secret|client_?secret|accessToken|appSecret|clientSecret)"
    r"['\"]?\s*(?:[:=]|%3[Dd])\s*['\"]?)" + _VALUE,
)
# One pass over the text: the shapes side by side, each `keep` group named apart.
_SHAPE_RE = re.compile(
    "|".join(
        "(?:" + shape.replace("(?P<keep>", f"(?P<keep{n}>") + ")" for n, shape in enumerate(_SHAPES)
    ),
    re.IGNORECASE,
)
_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")


def _mask_shape(match: re.Match[str]) -> str:
    keep = next((kept for kept in match.groupdict().values() if kept is not None), "")
    return keep + MASK


def _spellings(secret: str) -> set[str]:
    """A secret as it may appear: plain, URL-encoded (either hex case), form-encoded."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    forms |= {_PERCENT_HEX.sub(lambda m: m.group(0).lower(), form) for form in forms}
    return forms


def _url_password(url: str | None) -> str | None:
    """The password in a URL, also in one too malformed to parse."""
    if not url:
        return None
    try:
        password = make_url(url).password
    except Exception:  # not a database URL: try it as any URL, then by shape
        password = None
    if password is None:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
    if password is None:
        found = re.search(r":([^:@/\s]+)@", url)
        password = found.group(1) if found else None
    return str(password) if password else None


class Redactor:
    """Masks known secret values and secret-shaped text with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if len(s) >= MIN_SECRET)
        forms = {form for secret in self.secrets for form in _spellings(secret)}
        longest_first = sorted(forms, key=len, reverse=True)
        self._literal = (
            re.compile("|".join(re.escape(form) for form in longest_first)) if forms else None
        )

    @classmethod
    def from_settings(cls, settings: Settings | None) -> Redactor:
        """A redactor for every secret in the settings (shapes only without settings)."""
        if settings is None:
            return cls()
        secrets: list[str] = []
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if isinstance(value, SecretStr):
                secrets.append(value.get_secret_value())
        token = settings.telegram_bot_token
        if token is not None:  # the part after the bot id is the secret half
            secrets.append(token.get_secret_value().partition(":")[2])
        for url in (settings.database_url, settings.telegram_proxy_url):
            password = _url_password(url)
            if password is not None:
                secrets.append(password)
        return cls(secrets)

    def __or__(self, other: Redactor) -> Redactor:
        """A redactor that masks the secrets of both."""
        return Redactor(self.secrets | other.secrets)

    def __call__(self, text: str) -> str:
        """The text with every secret masked."""
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        return _SHAPE_RE.sub(_mask_shape, text)


def redact(text: str, settings: Settings | None = None) -> str:
    """Text with the secrets of the settings (when given) and secret-shaped text masked."""
    return Redactor.from_settings(settings)(text)


# --- logging ------------------------------------------------------------------------------

_DONE = "duban_redacted"  # what a record held when it was last redacted


def _contents(record: logging.LogRecord) -> tuple[object, ...]:
    return (record.msg, record.args, record.exc_info, record.exc_text, record.stack_info)


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Redact a log record in place: its message, its traceback and its stack."""
    done = getattr(record, _DONE, None)
    if done is not None and all(a is b for a, b in zip(done, _contents(record), strict=True)):
        return  # redacted already, and nothing put in since (makeLogRecord fills in afterwards)
    try:
        message = record.getMessage()
    except Exception:  # a broken log call: keep what can be shown, masked
        record.msg, record.args = redactor(f"{record.msg} {record.args!r}"), ()
    else:
        masked = redactor(message)
        if masked != message:
            record.msg, record.args = _masked_call(record, redactor, masked)
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        masked = redactor(record.exc_text)
        if masked != record.exc_text:
            # Formatters print exc_text when set; with exc_info gone none can print the original.
            record.exc_text, record.exc_info = masked, None
    if record.stack_info:
        record.stack_info = redactor(record.stack_info)
    setattr(record, _DONE, _contents(record))


def _masked_call(record: logging.LogRecord, redactor: Redactor, masked: str) -> tuple[Any, Any]:
    """msg and args that give the masked message: the arguments masked one by one when that
    is enough (formatters that read the arguments keep working), else the message itself."""
    if isinstance(record.args, tuple) and isinstance(record.msg, str):
        args = tuple(redactor(a) if isinstance(a, str) else a for a in record.args)
        try:
            if record.msg % args == masked:
                return record.msg, args
        except (TypeError, ValueError):
            pass
    return masked, ()


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record it sees (and lets it through)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place."""
        redact_record(record, self.redactor)
        return True


class RedactingRecordFactory:
    """Wraps the log record factory: each record is redacted as it is made."""

    def __init__(self, previous: Callable[..., logging.LogRecord], redactor: Redactor) -> None:
        self.previous = previous
        self.redactor = redactor

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        """Make the record with the previous factory, then redact it."""
        record = self.previous(*args, **kwargs)
        redact_record(record, self.redactor)
        return record


def install_redaction(redactor: Redactor) -> None:
    """Redact every log record from now on, for the life of the process.

    Installing again adds the new secrets to those already masked: a secret once known stays
    masked.
    """
    current = logging.getLogRecordFactory()
    if isinstance(current, RedactingRecordFactory):
        current.redactor = current.redactor | redactor
    else:
        current = RedactingRecordFactory(current, redactor)
        logging.setLogRecordFactory(current)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(current.redactor))


def remove_redaction() -> None:
    """Undo `install_redaction` (tests use it to compare with and without)."""
    current = logging.getLogRecordFactory()
    if isinstance(current, RedactingRecordFactory):
        logging.setLogRecordFactory(current.previous)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)


__all__ = [
    "MASK",
    "Redactor",
    "install_redaction",
    "redact",
    "redact_record",
    "remove_redaction",
]
