"""User-facing text: message catalogs per locale (zh-CN default, English with LOCALE=en)."""

from __future__ import annotations

import re
import string
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.db import resource_dir

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"


# libyaml's parser when PyYAML was built with it (about eight times faster on the catalogs)
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SAFE_LOADER):  # type: ignore[misc,valid-type]
    """A YAML loader that refuses a key given twice (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ValueError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@cache
def _catalog(locale: str) -> dict[str, str]:
    """The flat catalog of a locale: templates/locales/<locale>.yaml plus <locale>.*.yaml parts,
    and each channel package's locales/<locale>.yaml (its own words: `channel.<name>.*`)."""
    folder: Path = resource_dir("templates") / "locales"
    channels = Path(__file__).resolve().parent / "channels"
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any, source: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value, source)
            return
        if prefix in flat:
            raise ValueError(f"{source}: message key {prefix!r} is defined twice")
        flat[prefix] = str(node).rstrip("\n")

    parts = [
        folder / f"{locale}.yaml",
        *sorted(folder.glob(f"{locale}.*.yaml")),
        *sorted(channels.glob(f"*/locales/{locale}.yaml")),
    ]
    for path in parts:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
        walk("", data, path.name)
    return flat


# "第 {item} 项" / "第{item}项": how the Chinese catalog names an item by its number. An item of
# a plan other than the default one is named by its reference instead (民生3, J2), which
# needs no 第…项 around it: "第 民生3 项" would read as a number that is not one.
_ORDINAL_ITEM = re.compile(r"第\s*\{item\}\s*项")


@cache
def _coded_item_template(template: str) -> str:
    """The template for an item named by a reference with a plan code (民生3)."""
    return _ORDINAL_ITEM.sub("{item}", template)


def catalog_keys(locale: str) -> set[str]:
    """The message keys a locale defines."""
    return set(_catalog(locale))


def placeholders(locale: str, key: str) -> set[str]:
    """The named placeholders of one message."""
    fmt = string.Formatter()
    return {name for _, name, _, _ in fmt.parse(_catalog(locale)[key]) if name}


class Translator:
    """Renders message keys in one locale."""

    def __init__(self, locale: str = DEFAULT_LOCALE) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT_LOCALE

    def __call__(self, key: str, **params: Any) -> str:
        """Render the message key with its parameters."""
        template = _catalog(self.locale).get(key) or _catalog(DEFAULT_LOCALE)[key]
        item = params.get("item")
        if type(item) is str and not item.isdecimal():
            template = _coded_item_template(template)  # 民生3, not 第 民生3 项
        if any(type(value) is dict for value in params.values()):
            # a parameter that is itself a message ({"key": ..., "params": {...}}), e.g. a
            # channel's name, is said in this locale
            params = {
                name: self(value["key"], **value.get("params", {}))
                if type(value) is dict and "key" in value
                else value
                for name, value in params.items()
            }
        return template.format(**params)


class UserError(Exception):
    """Bad input from a person: rendered in their locale, and nothing is changed."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def render(self, t: Translator) -> str:
        """The message in the translator's locale (nested errors one per line)."""
        params = {
            name: "\n".join(e.render(t) for e in value)
            if isinstance(value, list) and all(isinstance(e, UserError) for e in value)
            else value
            for name, value in self.params.items()
        }
        return t(self.key, **params)

    def __str__(self) -> str:
        return self.render(Translator("en"))
