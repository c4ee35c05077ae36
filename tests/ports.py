"""Free TCP ports on 127.0.0.1 for a server a test starts itself (`duban run`, a proxy), or for a
port that nothing may listen on.

A port from `bind(("127.0.0.1", 0))`, released at once, comes from the kernel's ephemeral range,
which every socket on the machine draws from: with the suite in parallel (pytest-xdist) another
worker's fake server or outgoing connection can take it before `duban run` binds it, and the test
then fails to start or talks to the wrong server. These ports come from below the ephemeral range
instead, from a block of its own for each xdist worker, and none is handed out twice in a
session (up to 400 a worker).
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from pathlib import Path

_FIRST = 20_000  # the blocks' start, below the ephemeral range (32768-60999 on Linux)
_BLOCK = 400  # ports a worker may take in a session


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _block_start() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw0", "gw1", ... under xdist
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    blocks = max(1, (_ephemeral_start() - _FIRST) // _BLOCK)
    return _FIRST + (index % blocks) * _BLOCK


# A random start in the block, so that two test sessions running at once rarely meet.
_taken = itertools.count(random.randrange(_BLOCK))


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now and no other test of this run is given."""
    start = _block_start()
    for _ in range(_BLOCK):
        port = start + next(_taken) % _BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use (another session, another program): the next one
                continue
        return port
    raise RuntimeError(f"no free port in {start}-{start + _BLOCK - 1}")
