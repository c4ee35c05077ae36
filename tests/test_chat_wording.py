"""Words people read in chat: what to do in chat (never a `duban ...` command), no slang.

The messages a chat user can read are found in the code: every catalogue key named in the
modules that build chat text (the handlers, the chat core, the channels, the scheduler, and
every module of Duban they import), and in the message templates. A key found there that
only the CLI says is listed in CLI_ONLY with the reason; anything else is checked as chat
text, in its chat wording (bot/chat_wording.py).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from bot.chat_wording import CHAT_VARIANT, chat_key, for_chat
from bot.i18n import LOCALES, Translator, UserError, catalog_keys, placeholders
from bot.models import Plan
from tests.fakes import FakeTelegram
from tests.harness import WANG, ZHANG, ZHAO, running_bot

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "scheduler")
# Where chat text is built; the modules they import are followed from here.
CHAT_ENTRIES = ("bot/chat.py", "handlers/*.py", "bot/channels/*.py", "scheduler/*.py")
# Imported by chat modules, but never heard in chat: the importer reads plan files for
# `duban import` only, and the CLI is the CLI.
NOT_CHAT = ("bot.importer", "bot.cli")
# Keys named in chat modules that only the CLI can raise or say, and why ("csv." is the
# family). Keys named `cli.*` or `*.cli_*` are the CLI's by their name.
CLI_ONLY = {
    "csv.": "assignments.read_assignment_csv: `duban assign --csv`",
    "date.bad": "assignments.parse_date: the CLI's --from/--to; chat reads dates with bot.dates",
    "assign.unit_none": "assignments.assign_unit: `duban assign --unit`",
    "contact.bad_role": "contacts.parse_role: `duban contacts add --role`",
    "contact.bad_name": "contacts.add_contact: `duban contacts add`, the assignment CSV",
    "contact.exists": "contacts.add_contact",
    "account.bad_pair": "contacts.parse_accounts: `duban contacts add --account`",
    "account.bad_platform": "accounts.normalise: chat binds only on channels whose spec allows it",
    "channel.telegram.bad_account": "Telegram ids: by invite in chat, by id only in the CLI",
    "reminders.bad_range": "reminders.preview: `duban reminders preview`",
    "reminders.too_long": "reminders.preview",
    "sections.unknown": "reminders.find_section: `duban sections leader`",
    "sections.not_leader": "reminders.set_section_leader",
    "plan.bad_code": "plans.check_code: `duban import --code`",
    "plan.code_taken": "plans.import_plan(code=...): `duban import --code`",
    "plan.no_free_code": "plans.default_code: `duban import` (a code is asked for with --code)",
    "plan.unknown_code": "plans.plan_by_code: chat only looks up codes it read from the plans",
}
CLI_NAMED = re.compile(r"^cli\.|\.cli_")
# A CLI command or option in a message: `duban import ...`, `--deadline`.
CLI_HINT = re.compile(r"\bduban |(?:^|[\s(（：:])--[a-z]")
# A template's message keys: t("bind.done") and t("status_label." ~ view.status).
TEMPLATE_KEY = re.compile(r"""\bt\(\s*["']([a-z_][a-z0-9_.]*)["']""")


def _module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(tree: ast.Module) -> set[str]:
    """The modules of Duban a module imports (`from bot.services import items` is one)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES and _module_path(n)}


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def chat_modules() -> dict[str, ast.Module]:
    """Every module that builds chat text, and every module of Duban those import."""
    todo = [_name(p) for pattern in CHAT_ENTRIES for p in sorted(ROOT.glob(pattern))]
    seen: dict[str, ast.Module] = {}
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(NOT_CHAT):
            continue
        path = _module_path(name)
        assert path is not None, name
        seen[name] = ast.parse(path.read_text(encoding="utf-8"))
        todo.extend(_imports(seen[name]))
    return seen


def _keys_named(text: str, *, prefix: bool) -> set[str]:
    """The catalogue keys a string names: itself, or (a prefix such as "kind.") its family."""
    keys = catalog_keys("zh-CN")
    if prefix:
        return {k for k in keys if k.startswith(text)}
    return {text} if text in keys else set()


def _keys_in_module(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= _keys_named(node.value, prefix=False)
        elif isinstance(node, ast.JoinedStr) and node.values:  # f"kind.{row.kind}"
            head = node.values[0]
            if isinstance(head, ast.Constant) and str(head.value).endswith("."):
                found |= _keys_named(str(head.value), prefix=True)
    return found


@cache
def chat_keys() -> frozenset[str]:
    """Every catalogue key a chat user can read."""
    found: set[str] = set()
    for tree in chat_modules().values():
        found |= _keys_in_module(tree)
    for template in sorted((ROOT / "templates").glob("*/*.j2")):
        for key in TEMPLATE_KEY.findall(template.read_text(encoding="utf-8")):
            found |= _keys_named(key, prefix=key.endswith("."))
    return frozenset(k for k in found if not _cli_only(k))


def _cli_only(key: str) -> bool:
    return bool(CLI_NAMED.search(key)) or any(_cli_only_match(key, only) for only in CLI_ONLY)


def _cli_only_match(key: str, only: str) -> bool:
    return key == only or (only.endswith(".") and key.startswith(only))


def _render(key: str, locale: str) -> str:
    """A message as the chat says it, every placeholder filled."""
    said = chat_key(key)
    params = {name: "X" for name in placeholders(locale, said)}
    return for_chat(UserError(key, **params)).render(Translator(locale))


def test_the_scan_finds_what_the_chat_says() -> None:
    keys = chat_keys()
    # refusals from shared services, chat-only refusals, notices, reminders, the menu, templates
    for key in (
        "plan.none",
        "item.unknown",
        "contact.unknown",
        "assign.usage",
        "date.unreadable",
        "assign.notice",
        "deadline.notice",
        "remind.ask",
        "remind.escalation",
        "chat.unknown_sender",
        "cmd.assign",
        "status_label.red",
        "why.overdue",
        "bind.locked",
        "kind.digest",
    ):
        assert key in keys, key
    # a key the CLI alone says is not taken for chat text
    assert "cli.assign.usage" not in keys and "report.cli_empty" not in keys


def test_cli_only_keys_are_named_in_chat_modules_and_exist() -> None:
    named: set[str] = set()
    for tree in chat_modules().values():
        named |= _keys_in_module(tree)
    stale = sorted(only for only in CLI_ONLY if not any(_cli_only_match(k, only) for k in named))
    assert not stale, f"CLI_ONLY lists keys no chat module names any more: {stale}"


@pytest.mark.parametrize("locale", LOCALES)
def test_nothing_said_in_chat_tells_a_person_to_run_a_command(locale: str) -> None:
    offending = {
        key: text for key in sorted(chat_keys()) if CLI_HINT.search(text := _render(key, locale))
    }
    assert not offending, (
        "chat text that points at the CLI (give the key a chat variant in_chat.KEY, or list "
        f"it in CLI_ONLY when the chat never says it): {offending}"
    )


@pytest.mark.parametrize(
    ("key", "params", "cli", "chat"),
    [
        ("plan.none", {}, "duban import", "管理员"),
        ("item.unknown", {"ref": "99"}, "duban items", "/my"),
        ("contact.unknown", {"name": "无名氏"}, "duban contacts add", "/contacts"),
    ],
)
def test_the_cli_keeps_its_wording_and_the_chat_has_its_own(
    key: str, params: dict[str, str], cli: str, chat: str
) -> None:
    t = Translator("zh-CN")
    error = UserError(key, **params)
    assert cli in error.render(t)
    said = for_chat(error).render(t)
    assert chat in said and "duban" not in said
    # the chat's words keep what the CLI's say about the input
    assert all(str(value) in said for value in params.values())


def test_chat_variants_have_the_placeholders_of_the_message_they_replace() -> None:
    for locale in LOCALES:
        for variant in (k for k in catalog_keys(locale) if k.startswith(CHAT_VARIANT)):
            original = variant.removeprefix(CHAT_VARIANT)
            assert original in catalog_keys(locale), f"{variant} replaces no message"
            assert placeholders(locale, variant) == placeholders(locale, original), variant


def test_a_message_without_a_chat_variant_is_said_as_it_is() -> None:
    error = UserError("report.not_yours", item=9)
    assert for_chat(error) is error


# --- no internet slang -------------------------------------------------------------------

# 他/她 written as "ta", and a few other words of internet slang.
SLANG = re.compile(r"(?<![A-Za-z])ta(?![A-Za-z])|童鞋|木有|神马|肿么|酱紫|亲[，,！!]", re.I)
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def _words(locale: str, key: str) -> str:
    """A message's own words: its placeholders left empty."""
    return Translator(locale)(key, **dict.fromkeys(placeholders(locale, key), ""))


def test_no_internet_slang_in_chinese_text() -> None:
    texts = {key: _words("zh-CN", key) for key in catalog_keys("zh-CN")}
    for template in sorted((ROOT / "templates" / "zh-CN").glob("*.j2")):
        texts[template.name] = JINJA.sub(" ", template.read_text(encoding="utf-8"))
    found = {where: m.group(0) for where, text in texts.items() if (m := SLANG.search(text))}
    assert not found, f"internet slang in user text (write 该领导, 对方, or name the role): {found}"


def test_the_slang_check_catches_ta() -> None:
    assert SLANG.search("逾期上报将发给 ta。") and SLANG.search("请提醒TA报送")
    assert not SLANG.search("请提醒该领导，数据 data 见 metadata")


# --- in a running chat -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "text", "expected"),
    [
        (ZHANG, "99 50%", "发送 /my 查看您负责的事项"),
        (WANG, "/status 99", "发送 /my 查看您负责的事项"),
        (ZHAO, "/assign 9 无名氏", "发送 /contacts 查看全部联系人"),
        (ZHAO, "/invite 无名氏", "发送 /contacts 查看全部联系人"),
    ],
)
async def test_chat_refusals_say_what_to_do_in_chat(
    server: FakeTelegram, db_url: str, user: int, text: str, expected: str
) -> None:
    async with running_bot(server, db_url) as chat:
        answer = await chat.says_one(user, text)
    assert expected in answer and "duban" not in answer


async def test_without_a_plan_the_chat_asks_for_an_admin(server: FakeTelegram, db_url: str) -> None:
    async with running_bot(server, db_url) as chat:
        with Session(chat.engine) as session:
            session.execute(sa.delete(Plan))
            session.commit()
        answer = await chat.says_one(ZHANG, "/my")
    assert "请管理员先导入工作计划" in answer and "duban" not in answer
