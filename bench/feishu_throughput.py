"""Progress replies through the whole pipeline on Feishu: the fake's long connection in,
`duban run` (its own process, SQLite file), the fake's message API out.

3,000 progress replies from 200 officials are pushed down the websocket the official SDK
keeps open, as fast as the fake can write them; the clock stops when every reply was sent.
Prints the replies a second, the CPU time of the Duban process per message, its RSS idle and
at its peak (the SDK alone is about 100 MB: it imports every API's models), and how the
events were acknowledged.

    uv run python bench/feishu_throughput.py [--messages 3000] [--officials 200]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlmodel import Session

from bench.common import (
    SAMPLE,
    count_rows,
    cpu_seconds,
    free_port,
    proc_status_mb,
    progress_text,
    start_duban,
)
from bot import db
from bot.importer.parse import parse_plan_file
from bot.models import Assignment, Role
from bot.services import audit, contacts, plans
from tests.fakes.feishu_api import FAST_CLIENT_CONFIG, FakeFeishu

TIMEOUT = 600.0  # seconds the load may take


def open_id(n: int) -> str:
    """The open_id of the n-th seeded official."""
    return "ou_" + hashlib.md5(f"bench-official-{n}".encode()).hexdigest()


def seed(url: str, officials: int) -> None:
    """The sample plan and `officials` officials bound on Feishu, one item each."""
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
                accounts={"feishu": open_id(i)},
                actor=audit.CLI_ACTOR,
            )
            item = items[i % len(items)]
            session.add(Assignment(item_id=item.id or 0, contact_id=contact.id or 0))
        session.commit()
    engine.dispose()


def feishu_env(fake: FakeFeishu, url: str) -> dict[str, str]:
    """`duban run`'s settings against the fake Feishu."""
    return {
        "DATABASE_URL": url,
        "FEISHU_APP_ID": fake.app_id,
        "FEISHU_APP_SECRET": fake.app_secret,
        "FEISHU_DOMAIN": fake.url,
    }


def run(fake: FakeFeishu, messages: int, officials: int, workdir: Path) -> None:
    """Push the load into `duban run` and print the figures."""
    url = f"sqlite:///{workdir / 'bench.db'}"
    seed(url, officials)
    proc = start_duban(feishu_env(fake, url), workdir, free_port())
    try:
        fake.wait_connected(timeout=60)
        time.sleep(0.5)  # let the start settle (the SDK's import, the first ping)
        idle = proc_status_mb(proc.pid, "VmRSS")
        cpu = cpu_seconds(proc.pid)
        fake_cpu = time.process_time()
        started = time.perf_counter()
        for n in range(messages):
            official = n % officials
            fake.user_says(open_id(official), progress_text(n, official, officials))
        pushed = time.perf_counter() - started
        try:
            fake.wait_until(lambda f: len(f.sent) >= messages, timeout=TIMEOUT)
        except TimeoutError:
            print(
                f"stuck: {len(fake.sent)} replies, {len(fake.acks)} acks, {dict(fake.stats)}",
                flush=True,
            )
            raise
        elapsed = time.perf_counter() - started
        used = cpu_seconds(proc.pid) - cpu
        fake_used = time.process_time() - fake_cpu
        fake.wait_until(lambda f: len(f.acks) >= messages, timeout=60)
        after = proc_status_mb(proc.pid, "VmRSS")
        peak = proc_status_mb(proc.pid)
        codes = Counter(ack.code for ack in fake.acks.values())
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    processed = count_rows(url, "inbox")
    reports = count_rows(url, "report")
    print(f"messages          : {messages} from {officials} officials")
    print(f"pushed in         : {pushed:.2f} s")
    print(f"all replies sent  : {elapsed:.2f} s")
    print(f"replies/s         : {messages / elapsed:8.1f}")
    print(
        f"duban cpu         : {used / messages * 1000:.2f} ms/msg ({used / elapsed:.0%} of a core)"
    )
    print(f"the fake's cpu    : {fake_used / elapsed:.0%} of a core (this process)")
    print(f"duban RSS         : idle {idle:.1f} MB, after {after:.1f} MB, peak {peak:.1f} MB")
    print(f"acknowledgements  : {dict(codes)}")
    print(
        f"inbox rows {processed}, reports stored {reports}, token fetches "
        f"{fake.stats['tenant_access_token']}"
    )


def main() -> None:
    """Run the load and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--officials", type=int, default=200)
    args = parser.parse_args()
    with FakeFeishu(client_config=FAST_CLIENT_CONFIG) as fake, tempfile.TemporaryDirectory() as tmp:
        run(fake, args.messages, args.officials, Path(tmp))


if __name__ == "__main__":
    main()
