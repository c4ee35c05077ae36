"""Channels are plug-ins: the core, the handlers, the scheduler and the templates name no
platform and import no platform SDK; accounts live in one table (migration 0010 kept every
binding); a channel's spec drives markup, account ids, admin binding and configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from bot import db
from bot.channels import registry
from bot.i18n import Translator, UserError, catalog_keys
from bot.models import Account, Contact, Role
from bot.services import accounts, audit, contacts
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_FREE = ["bot/chat.py", "bot/services", "handlers", "scheduler", "templates"]
PLATFORM_WORDS = re.compile(r"telegram|wecom|dingtalk|feishu|lark", re.IGNORECASE)
SDKS = ("telegram", "wechatpy", "dingtalk_stream", "lark_oapi")


def _files(path: str) -> list[Path]:
    target = ROOT / path
    if target.is_file():
        return [target]
    return sorted(p for p in target.rglob("*") if p.suffix in {".py", ".j2", ".yaml", ".html"})


def _without_comments(path: Path, text: str) -> str:
    """The text without comments (Python and YAML #..., Jinja {# ... #})."""
    if path.suffix == ".j2" or path.suffix == ".html":
        return re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL)
    return "\n".join(line.split("#", 1)[0] if "#" in line else line for line in text.splitlines())


def test_the_core_handlers_scheduler_and_templates_name_no_platform() -> None:
    found = []
    for path in PLATFORM_FREE:
        for file in _files(path):
            text = _without_comments(file, file.read_text(encoding="utf-8"))
            for number, line in enumerate(text.splitlines(), 1):
                if PLATFORM_WORDS.search(line):
                    found.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_platform_free_modules_import_no_platform_sdk() -> None:
    modules = ["bot.chat", "bot.services.accounts", "bot.services.sending", "bot.templating"]
    modules += [f"handlers.{p.stem}" for p in (ROOT / "handlers").glob("*.py")]
    modules += [f"scheduler.{p.stem}" for p in (ROOT / "scheduler").glob("*.py")]
    modules += [f"bot.services.{p.stem}" for p in (ROOT / "bot" / "services").glob("*.py")]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "from bot.channels import registry\n"
        "registry.specs()\n"  # reading every channel's spec loads no SDK either
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(result.stdout) == []


def test_every_channel_has_its_words_in_both_locales() -> None:
    for locale in ("zh-CN", "en"):
        keys = catalog_keys(locale)
        for spec in registry.specs().values():
            if spec.by_name:
                continue
            assert f"channel.{spec.name}.label" in keys, (locale, spec.name)
            assert f"channel.{spec.name}.bad_account" in keys, (locale, spec.name)
            if spec.admin_binds:  # its /<name> command has a menu line
                assert f"cmd.{spec.name}" in keys, (locale, spec.name)


def test_account_ids_are_checked_by_their_channel(session: Session) -> None:
    assert registry.account_id("telegram", " 0042 ") == "42"
    assert registry.account_id("telegram", "-5") is None
    assert registry.account_id("wecom", "zhang san") is None
    assert registry.account_id("console", "张三") is None  # known by name, no account
    with pytest.raises(UserError) as bad:
        contacts.add_contact(
            session,
            name="张三",
            unit="科",
            role=Role.official,
            accounts={"telegram": "abc"},
            actor=audit.CLI_ACTOR,
        )
    assert "Telegram ID“abc”无效" in bad.value.render(Translator("zh-CN"))
    with pytest.raises(UserError) as unknown:
        contacts.add_contact(
            session,
            name="张三",
            unit="科",
            role=Role.official,
            accounts={"icq": "1"},
            actor=audit.CLI_ACTOR,
        )
    assert "没有名为“icq”的聊天渠道" in unknown.value.render(Translator("zh-CN"))
    assert session.exec(select(Contact)).all() == []


def test_an_account_belongs_to_one_contact(session: Session) -> None:
    zhang = contacts.add_contact(
        session,
        name="张三",
        unit="科",
        role=Role.official,
        accounts={"wecom": "zhangsan"},
        actor=audit.CLI_ACTOR,
    )
    with pytest.raises(UserError) as taken:
        contacts.add_contact(
            session,
            name="李四",
            unit="科",
            role=Role.official,
            accounts={"wecom": "zhangsan"},
            actor=audit.CLI_ACTOR,
        )
    assert taken.value.render(Translator("zh-CN")) == "企业微信账号“zhangsan”已绑定给“张三”。"
    assert (
        taken.value.render(Translator("en"))
        == "WeCom account 'zhangsan' is already bound to '张三'."
    )
    li = contacts.add_contact(session, name="李四", unit="科", role=Role.official, actor="t")
    with pytest.raises(UserError):
        accounts.bind_by_admin(session, li, "wecom", "zhangsan", actor="t")
    with pytest.raises(UserError) as no_admin:  # Telegram ids are bound by invite only
        accounts.bind_by_admin(session, li, "telegram", "1001", actor="t")
    assert "不能由管理员直接绑定" in no_admin.value.render(Translator("zh-CN"))
    assert accounts.bind_by_admin(session, li, "wecom", " lisi ", actor="t") == "lisi"
    accounts.bind_by_admin(session, li, "wecom", "lisi2", actor="t")  # replaces, one per platform
    rows = session.exec(select(Account.contact_id, Account.account_id).order_by(Account.id)).all()
    assert [tuple(r) for r in rows] == [(zhang.id, "zhangsan"), (li.id, "lisi2")]


def test_configured_channels_come_from_the_specs() -> None:
    empty = Settings(_env_file=None)  # type: ignore[call-arg]
    assert registry.configured(empty) == []
    half = Settings(_env_file=None, wecom_corp_id="ww1", wecom_secret="s")  # type: ignore[call-arg]
    with pytest.raises(UserError) as incomplete:
        registry.configured(half)
    text = incomplete.value.render(Translator("zh-CN"))
    assert text.startswith("企业微信配置不完整，还缺：WECOM_AGENT_ID, WECOM_TOKEN, WECOM_AES_KEY")
    hook = Settings(  # type: ignore[call-arg]
        _env_file=None, telegram_bot_token="1:x", telegram_webhook_url="https://example.org/h"
    )
    with pytest.raises(UserError) as secret:
        registry.configured(hook)
    assert "TELEGRAM_WEBHOOK_SECRET" in secret.value.render(Translator("zh-CN"))
    both = Settings(_env_file=None, telegram_bot_token="1:x")  # type: ignore[call-arg]
    assert [s.name for s in registry.configured(both)] == ["telegram"]


def test_private_notices_go_to_the_channel_first_by_priority() -> None:
    from bot.chat import chat_address

    person = Contact(id=1, name="张三", unit="科", role=Role.official)
    held = {"telegram": "1001", "wecom": "zhangsan"}
    assert chat_address(person, held, {"telegram", "wecom"}) == ("wecom", "zhangsan")
    assert chat_address(person, held, {"telegram"}) == ("telegram", "1001")
    assert chat_address(person, {}, {"telegram", "wecom"}) is None
    assert chat_address(person, {}, {"console"}) == ("console", "张三")
    assert accounts.preferred(held) == "wecom"
    assert accounts.preferred({}) == "none"


def test_digest_markup_follows_the_channel() -> None:
    assert registry.markup_of("telegram") == "html"
    assert registry.markup_of("wecom") == "markdown"
    assert registry.markup_of("console") == "text"
    assert registry.markup_of("nowhere") == "text"


def test_migration_0010_keeps_every_binding(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    db.upgrade(engine, "0009")
    now = datetime(2023, 6, 1)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO contact (id, name, unit, role, telegram_id, wecom_userid, active, "
                "created_at) VALUES (1, '张三', '科', 'official', 1001, 'zhangsan', 1, :now), "
                "(2, '李四', '科', 'official', NULL, 'lisi', 1, :now), "
                "(3, '王局', '局', 'leader', 2001, NULL, 1, :now), "
                "(4, '陈五', '科', 'official', NULL, NULL, 1, :now)"
            ),
            {"now": now},
        )
    db.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT contact_id, platform, account_id FROM account ORDER BY contact_id, platform"
            )
        ).all()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("contact")}
        version = conn.execute(sa.text("SELECT version FROM cache_version")).scalar()
        conn.execute(sa.text("UPDATE contact SET unit = '办' WHERE id = 4"))
        bumped = conn.execute(sa.text("SELECT version FROM cache_version")).scalar()
    assert [tuple(r) for r in rows] == [
        (1, "telegram", "1001"),
        (1, "wecom", "zhangsan"),
        (2, "wecom", "lisi"),
        (3, "telegram", "2001"),
    ]
    assert "telegram_id" not in columns and "wecom_userid" not in columns
    assert bumped == version + 1  # contact's cache triggers survived the table rebuild
    db.downgrade(engine, "0009")
    with engine.connect() as conn:
        back = conn.execute(
            sa.text("SELECT id, telegram_id, wecom_userid FROM contact ORDER BY id")
        ).all()
    assert [tuple(r) for r in back] == [
        (1, 1001, "zhangsan"),
        (2, None, "lisi"),
        (3, 2001, None),
        (4, None, None),
    ]
    engine.dispose()


def test_a_group_secret_without_its_robot_is_refused_even_without_the_app() -> None:
    lone = Settings(_env_file=None, dingtalk_group_secret="SECabc")  # type: ignore[call-arg]
    with pytest.raises(UserError) as refused:
        registry.groups(lone)
    assert "DINGTALK_GROUP_ACCESS_TOKEN" in refused.value.render(Translator("zh-CN"))


async def test_every_group_robot_gets_the_digest_even_when_one_fails() -> None:
    from bot.app import GroupRobots

    class Robot:
        def __init__(self, fails: bool) -> None:
            self.fails = fails
            self.sent: list[str] = []

        async def send_markdown(self, text: str) -> int:
            self.sent.append(text)
            if self.fails:
                raise RuntimeError("robot down")
            return 2

    broken, working = Robot(fails=True), Robot(fails=False)
    with pytest.raises(RuntimeError, match="robot down"):  # the row is tried again later
        await GroupRobots([broken, working]).send_markdown("周报")
    assert broken.sent == working.sent == ["周报"]
    assert await GroupRobots([Robot(False), Robot(False)]).send_markdown("x") == 4
