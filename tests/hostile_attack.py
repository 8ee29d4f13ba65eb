"""A hostile client in a process of its own, for tests/test_hostile_fairness.py.

    python tests/hostile_attack.py URL --seconds 10 --local 127.0.0.2

Runs several attack classes at once from one source address, each bounded in count and time,
against URL (which must be on 127.0.0.1), then prints one JSON line of what each class did.
Classes: a long-polling handshake flood; packets announcing binary attachments; malformed
frames; three connections sending 1 MB frames of an unknown event; thirty sessions each
validating a near-limit spec twice a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_util import polling_handshake  # noqa: E402
from rawsio import RawSio, client_session  # noqa: E402

__all__: list[str] = []

MALFORMED = ['31["unterminated', '5x-["e"]', "9bogus", '4{"m":1}']


def near_limit_spec() -> dict[str, Any]:
    nodes: dict[str, Any] = {"src": {"coro": "Source.items", "args": {"items": ["x" * 50] * 1000}}}
    graph: dict[str, Any] = {"src": [f"n{i}" for i in range(62)], "out": None}
    for i in range(62):
        nodes[f"n{i}"] = {"coro": "Flow.identity"}
        graph[f"n{i}"] = ["out"]
    nodes["out"] = {"coro": "Flow.identity"}
    return {"nodes": nodes, "graph": graph}


class Attack:
    def __init__(self, url: str, local: str, seconds: float, classes: list[str]) -> None:
        self.classes = classes
        self.url = url
        self.local = local
        self.deadline = time.monotonic() + seconds
        self.counts: Counter[str] = Counter()

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def handshakes(self, first: int = 1000, then: int = 100) -> None:
        """`first` long-polling handshakes at once, then `then` more every second."""
        await asyncio.sleep(0.5)  # the other classes connect first
        async with client_session(self.local) as http:
            batch = first
            while self.running():
                results = await asyncio.gather(
                    *(polling_handshake(http, self.url) for _ in range(batch)),
                    return_exceptions=True)
                for r in results:
                    self.counts["handshakes"] += 1
                    status = r[0] if isinstance(r, tuple) else "error"
                    self.counts[f"handshake_{status}"] += 1
                batch = then
                await asyncio.sleep(1.0)

    async def _reconnecting(self, name: str, frames: list[str | bytes], limit: int) -> None:
        while self.running() and self.counts[name] < limit:
            try:
                c = await RawSio.connect(self.url, local=self.local)
            except Exception:  # noqa: BLE001 - refused: counted, tried again later
                self.counts[f"{name}_refused"] += 1
                await asyncio.sleep(0.1)
                continue
            try:
                for frame in frames:
                    if isinstance(frame, bytes):
                        await c.send_bytes(frame)
                    else:
                        await c.send(frame)
                    self.counts[name] += 1
                async with asyncio.timeout(5):
                    while True:
                        await c.next_packet(timeout=5)
            except (ConnectionError, TimeoutError, OSError):
                self.counts[f"{name}_closed"] += 1
            finally:
                await c.close()

    async def binary(self) -> None:
        frames: list[str | bytes] = ['51000-1["process_msg",{"_placeholder":true,"num":0}]',
                                     *[b"\x00" * 100_000] * 5]
        await self._reconnecting("binary", frames, 1000)

    async def malformed(self) -> None:
        for frame in MALFORMED * 1000:
            if not self.running():
                return
            await self._reconnecting("malformed", [frame], self.counts["malformed"] + 1)

    async def big_unknown(self) -> None:
        body = '{"x":"' + "y" * 990_000 + '"}'
        c = await RawSio.connect(self.url, local=self.local)
        try:
            n = 0
            while self.running() and n < 300:
                n += 1
                await c.send(f'2{n}["mine_bitcoin",{body}]')
                self.counts["big_unknown"] += 1
                if n % 10 == 0:  # read the answers so the socket does not back up
                    await c.wait_ack(n, timeout=30)
        finally:
            await c.close()

    async def validator(self, frame: str) -> None:
        c = await RawSio.connect(self.url, local=self.local)
        try:
            n = 0
            while self.running() and n < 100:
                n += 1
                await c.send(f"2{n}{frame}")
                answer = (await c.wait_ack(n, timeout=30))[0]
                self.counts["validate_" + ("ok" if answer["ok"] else
                                           answer["error"]["code"])] += 1
                await asyncio.sleep(0.5)
        finally:
            await c.close()

    async def run(self) -> None:
        frame = json.dumps(["validate", near_limit_spec()])
        classes = {
            "handshakes": lambda: [self.handshakes()],
            "binary": lambda: [self.binary()],
            "malformed": lambda: [self.malformed()],
            "big": lambda: [self.big_unknown() for _ in range(3)],
            "validate": lambda: [self.validator(frame) for _ in range(30)],
        }
        jobs = [job for name in self.classes for job in classes[name]()]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                self.counts[f"job_error_{type(r).__name__}"] += 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--local", default="127.0.0.2")
    parser.add_argument("--classes", default="handshakes,binary,malformed,big,validate",
                        help="comma separated attack classes")
    args = parser.parse_args()
    if urlsplit(args.url).hostname != "127.0.0.1":
        raise SystemExit("attacks target 127.0.0.1 only")
    attack = Attack(args.url, args.local, args.seconds, args.classes.split(","))
    print("started", flush=True)
    await attack.run()
    print(json.dumps(dict(attack.counts)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
