"""Encrypted WeCom callbacks end to end: decrypt -> report -> reply at the fake WeCom API.

`duban run` (its own process, SQLite file) serves /wecom/callback; this script posts callbacks
encrypted with wechatpy's crypto from several concurrent clients and waits until every reply
reached the fake WeCom API. Prints the end-to-end rate and the time to the 200 answer under
that load (p50, p99; target p99 < 100 ms).

    uv run python bench/wecom_callback.py [--callbacks 2000] [--officials 200] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import xmltodict
from wechatpy.enterprise.crypto import WeChatCrypto

from bench.common import (
    count_rows,
    free_port,
    item_of,
    proc_status_mb,
    seed,
    start_duban,
    wecom_userid,
)
from tests.fakes.wecom_api import FakeWeCom

TOKEN = "bench-callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def envelopes(
    fake: FakeWeCom, callbacks: int, officials: int
) -> list[tuple[dict[str, str], bytes]]:
    """Every callback encrypted beforehand, so the clock measures Duban, not this script."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, fake.corp_id)
    out = []
    for n in range(callbacks):
        official = n % officials
        text = f"{item_of(official)} {min(100, 5 + n // officials * 3)}% 本周推进顺利"
        xml = (
            f"<xml><ToUserName><![CDATA[{fake.corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{wecom_userid(official)}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{10_000_000 + n}</MsgId>"
            f"<AgentID>{fake.agent_id}</AgentID></xml>"
        )
        ts, nonce = str(int(time.time())), f"n{n}"
        encrypted = crypto.encrypt_message(xml, nonce, ts)
        signature = xmltodict.parse(encrypted)["xml"]["MsgSignature"]
        out.append(
            ({"msg_signature": signature, "timestamp": ts, "nonce": nonce}, encrypted.encode())
        )
    return out


async def load(
    url: str, jobs: list[tuple[dict[str, str], bytes]], clients: int, rate: float | None = None
) -> list[float]:
    """Post every callback from `clients` concurrent clients, at most `rate` a second in all
    (None: as fast as they are answered); returns each time to the 200 answer."""
    queue: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []
    start = time.perf_counter()
    sent = 0

    async def client() -> None:
        nonlocal sent
        async with httpx.AsyncClient(timeout=30) as http:
            while not queue.empty():
                params, body = queue.get_nowait()
                if rate is not None:  # keep to the schedule: callback k leaves at k / rate
                    sent += 1
                    await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
                started = time.perf_counter()
                response = await http.post(url, params=params, content=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"callback answered {response.status_code}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values lie, in ms."""
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)] * 1000


def main() -> None:
    """Run the load and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=2000)
    parser.add_argument("--officials", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with FakeWeCom() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.token_ttl = 7200
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        seed(url, args.officials)
        port = free_port()
        env = {
            "DATABASE_URL": url,
            "WECOM_CORP_ID": fake.corp_id,
            "WECOM_AGENT_ID": str(fake.agent_id),
            "WECOM_SECRET": fake.secret,
            "WECOM_TOKEN": TOKEN,
            "WECOM_AES_KEY": AES_KEY,
            "WECOM_API_BASE_URL": fake.api_base,
        }
        jobs = envelopes(fake, args.callbacks * 2, args.officials)
        proc = start_duban(env, Path(tmp), port)
        callback_url = f"http://127.0.0.1:{port}/wecom/callback"
        try:
            # 1. A burst: how many callbacks a second Duban carries end to end.
            started = time.perf_counter()
            burst = asyncio.run(load(callback_url, jobs[: args.callbacks], args.clients))
            answered = time.perf_counter() - started
            fake.wait_until(lambda f: f.stats["message/send"] >= args.callbacks, timeout=600)
            rate = args.callbacks / (time.perf_counter() - started)
            # 2. That load, sustained: how fast each callback gets its 200.
            paced = asyncio.run(load(callback_url, jobs[args.callbacks :], args.clients, rate))
            fake.wait_until(lambda f: f.stats["message/send"] >= 2 * args.callbacks, timeout=600)
            rss = proc_status_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        reports = count_rows(url, "report")
    print(f"callbacks: {args.callbacks} from {args.officials} officials, {args.clients} clients")
    print(f"burst: all answered 200 in {answered:.2f} s ({args.callbacks / answered:.1f}/s)")
    print(f"end to end (decrypt -> report -> reply at the API): {rate:.1f} callbacks/s")
    print(
        f"burst, time to the 200: p50 {percentile(burst, 0.5):.1f} ms, "
        f"p99 {percentile(burst, 0.99):.1f} ms"
    )
    print(
        f"at {rate:.0f}/s sustained, time to the 200: p50 {percentile(paced, 0.5):.1f} ms, "
        f"p99 {percentile(paced, 0.99):.1f} ms (target p99 < 100 ms)"
    )
    print(f"reports stored {reports} (of {2 * args.callbacks}); duban peak RSS {rss:.1f} MB")


if __name__ == "__main__":
    main()
