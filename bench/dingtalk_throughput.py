"""Progress replies through the whole pipeline on DingTalk: Stream frames in, robot messages out.

3,000 text progress replies from 200 officials are pushed on the fake DingTalk's stream
websocket into `duban run` (its own process, a SQLite file); each is stored before its ack,
handled, and answered through the fake's batchSend. Prints the rate until every reply was sent,
the CPU per message of the Duban process, how busy it kept one core, and its peak RSS.

    uv run python bench/dingtalk_throughput.py [--messages 3000] [--officials 200]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import Load, push_load, run_load, seed_on
from tests.fakes.dingtalk_api import FakeDingTalk

SEND = "robot/oToMessages/batchSend"


def dingtalk_userid(n: int) -> str:
    """The DingTalk userId of the n-th seeded official."""
    return f"dt{n:05d}"


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
    seed_on(url, officials, "dingtalk", dingtalk_userid)

    def drive(pid: int) -> Load:
        return push_load(
            fake,
            pid,
            messages,
            officials,
            lambda official, text: fake.user_says(dingtalk_userid(official), text),
            lambda f: f.stats[SEND],
        )

    figures = run_load(
        url,
        dingtalk_env(fake, url),
        workdir,
        connected=lambda: fake.wait_connected(timeout=30),
        drive=drive,
    )
    load = figures.load
    acks = [a.code for a in fake.acks]
    print(f"messages: {messages} from {officials} officials (SQLite, one duban process)")
    print(f"replies sent       : {load.rate:8.1f} /s ({load.elapsed:.2f} s)")
    print(f"duban cpu          : {load.cpu_ms:8.2f} ms/msg, busy {load.busy:.0%}")
    fake_ms = load.fake_cpu / messages * 1000
    print(f"fake DingTalk cpu  : {fake_ms:8.2f} ms/msg, busy {load.fake_busy:.0%}")
    print(f"acks               : {len(acks)} ({acks.count(200)} with code 200)")
    print(f"inbox rows {figures.inbox_rows}, reports {figures.reports} (of {messages})")
    print(f"duban RSS          : {figures.rss_text}")


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
