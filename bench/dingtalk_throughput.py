"""Progress replies through the whole pipeline on DingTalk: Stream frames in, robot messages out.

3,000 text progress replies from 200 officials are pushed on the fake DingTalk's stream
websocket into `duban run` (its own process, a SQLite file); each is stored before its ack,
handled, and answered through the fake's batchSend. Prints the rate until every reply was sent,
the CPU per message of the Duban process, how busy it kept one core, and its peak RSS.

    uv run python bench/dingtalk_throughput.py [--messages 3000] [--officials 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlmodel import Session

from bench.common import (
    SAMPLE,
    count_rows,
    cpu_seconds,
    free_port,
    item_of,
    proc_status_mb,
    progress_text,
    start_duban,
)
from bot import db
from bot.importer.parse import parse_plan_file
from bot.models import Assignment, Role
from bot.services import audit, contacts, plans
from tests.fakes.dingtalk_api import FakeDingTalk

SEND = "robot/oToMessages/batchSend"


def dingtalk_userid(n: int) -> str:
    """The DingTalk userId of the n-th seeded official."""
    return f"dt{n:05d}"


def seed(url: str, officials: int) -> None:
    """The sample plan and `officials` officials bound on DingTalk, one item each."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    with Session(engine) as session:
        plan = plans.import_plan(
            session, parse_plan_file(SAMPLE), source_file="s", actor="cli"
        ).plan
        items = plans.live_items(session, plan)
        for i in range(officials):
            contact = contacts.add_contact(
                session,
                name=f"联络员{i:05d}",
                unit="基础教育科",
                role=Role.official,
                accounts={"dingtalk": dingtalk_userid(i)},
                actor=audit.CLI_ACTOR,
            )
            item = items[(item_of(i) - 1) % len(items)]
            session.add(Assignment(item_id=item.id or 0, contact_id=contact.id or 0))
        session.commit()
    engine.dispose()


def dingtalk_env(fake: FakeDingTalk, url: str) -> dict[str, str]:
    """`duban run`'s settings against the fake DingTalk."""
    return {
        "DATABASE_URL": url,
        "DINGTALK_CLIENT_ID": fake.client_id,
        "DINGTALK_CLIENT_SECRET": fake.client_secret,
        "DINGTALK_API_BASE_URL": fake.url,
        "DINGTALK_OAPI_BASE_URL": fake.url,
    }


def run(fake: FakeDingTalk, messages: int, officials: int, workdir: Path) -> None:
    """Push the load into `duban run` and print what it took."""
    url = f"sqlite:///{workdir / 'bench.db'}"
    seed(url, officials)
    proc = start_duban(dingtalk_env(fake, url), workdir, free_port())
    try:
        fake.wait_connected(timeout=30)
        idle = proc_status_mb(proc.pid, "VmRSS")
        done = fake.stats[SEND] + messages
        cpu = cpu_seconds(proc.pid)
        fake_cpu = cpu_seconds(os.getpid())
        start = time.perf_counter()
        for n in range(messages):
            official = n % officials
            fake.user_says(dingtalk_userid(official), progress_text(n, official, officials))
        fake.wait_until(lambda s: s.stats[SEND] >= done, timeout=600)
        elapsed = time.perf_counter() - start
        used = cpu_seconds(proc.pid) - cpu
        fake_used = cpu_seconds(os.getpid()) - fake_cpu
        acks = [a.code for a in fake.acks]
        after = proc_status_mb(proc.pid, "VmRSS")
        peak = proc_status_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    processed = count_rows(url, "inbox")
    reports = count_rows(url, "report")
    print(f"messages: {messages} from {officials} officials (SQLite, one duban process)")
    print(f"replies sent       : {messages / elapsed:8.1f} /s ({elapsed:.2f} s)")
    print(f"duban cpu          : {used / messages * 1000:8.2f} ms/msg, busy {used / elapsed:.0%}")
    fake_ms = fake_used / messages * 1000
    print(f"fake DingTalk cpu  : {fake_ms:8.2f} ms/msg, busy {fake_used / elapsed:.0%}")
    print(f"acks               : {len(acks)} ({acks.count(200)} with code 200)")
    print(f"inbox rows {processed}, reports {reports} (of {messages})")
    print(f"duban RSS          : idle {idle:.1f} MB, after {after:.1f} MB, peak {peak:.1f} MB")


def main() -> None:
    """Run the load and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--officials", type=int, default=200)
    args = parser.parse_args()
    with FakeDingTalk() as fake, tempfile.TemporaryDirectory() as tmp:
        run(fake, args.messages, args.officials, Path(tmp))


if __name__ == "__main__":
    main()
