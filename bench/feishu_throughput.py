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

from bench.common import Load, push_load, run_load, seed_on
from tests.fakes.feishu_api import FAST_CLIENT_CONFIG, FakeFeishu

TIMEOUT = 600.0  # seconds the load may take


def open_id(n: int) -> str:
    """The open_id of the n-th seeded official."""
    return "ou_" + hashlib.md5(f"bench-official-{n}".encode()).hexdigest()


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
    seed_on(url, officials, "feishu", open_id)

    def connected() -> None:
        fake.wait_connected(timeout=60)
        time.sleep(0.5)  # let the start settle (the SDK's import, the first ping)

    def drive(pid: int) -> Load:
        return push_load(
            fake,
            pid,
            messages,
            officials,
            lambda official, text: fake.user_says(open_id(official), text),
            lambda f: len(f.sent),
            timeout=TIMEOUT,
            stuck=lambda: f"{len(fake.sent)} replies, {len(fake.acks)} acks, {dict(fake.stats)}",
        )

    figures = run_load(
        url,
        feishu_env(fake, url),
        workdir,
        connected=connected,
        drive=drive,
        settle=lambda: fake.wait_until(lambda f: len(f.acks) >= messages, timeout=60),
    )
    load = figures.load
    codes = Counter(ack.code for ack in fake.acks.values())
    print(f"messages          : {messages} from {officials} officials")
    print(f"pushed in         : {load.pushed:.2f} s")
    print(f"all replies sent  : {load.elapsed:.2f} s")
    print(f"replies/s         : {load.rate:8.1f}")
    print(f"duban cpu         : {load.cpu_ms:.2f} ms/msg ({load.busy:.0%} of a core)")
    print(f"the fake's cpu    : {load.fake_busy:.0%} of a core (this process)")
    print(f"duban RSS         : {figures.rss_text}")
    print(f"acknowledgements  : {dict(codes)}")
    print(
        f"inbox rows {figures.inbox_rows}, reports stored {figures.reports}, token fetches "
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
