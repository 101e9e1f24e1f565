#!/usr/bin/env python3
"""Third-party WebSocket peers for liyu's integration tests, built on the `websockets` package.

liyu did not write these peers, so they check that liyu speaks WebSocket the way the rest of the
world does (fragmentation, close handshake, permessage-deflate offered and refused, large frames),
not just the way tokio-tungstenite does.

  ws_peers.py server --out FILE
      Listens on 127.0.0.1, port 0, and prints the port on stdout (one line). Accepts one
      connection, records every message it receives, in order, and after the close writes FILE:
      {"received": [{"kind": "text"|"binary", "data": str|base64}, ...],
       "close_code": int|null, "close_reason": str|null}
      then exits.

  ws_peers.py client --url URL --frames FILE --out OUT --expect N [--wait SECONDS]
      Connects to URL and sends the frames of FILE (a JSON list of
      {"kind": "text"|"binary", "data": str|base64, "fragments": n, "split": "chars"|"utf8"})
      in order: a frame with fragments > 1 is sent as that many fragments (text split between
      characters, or with "split": "utf8" at byte offsets that may fall inside a character).
      Meanwhile it records every message it receives. After sending it waits until it has
      received N messages (or SECONDS, default 30), a little longer for stragglers, then closes
      normally and writes OUT:
      {"received": [...as above...], "close_code": int|null, "close_reason": str|null,
       "send_seconds": float}
"""

import argparse
import asyncio
import base64
import json
import sys
import time

try:
    import websockets
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
except ImportError as e:  # pragma: no cover - reported to the Rust test
    sys.exit(f"ws_peers.py needs the `websockets` package (>= 14): {e}; run tests/run.sh")

# How long to keep reading after the expected count arrived, so an unexpected extra frame is seen.
GRACE_SECONDS = 0.5


def record(message):
    if isinstance(message, str):
        return {"kind": "text", "data": message}
    return {"kind": "binary", "data": base64.b64encode(message).decode("ascii")}


def close_info(ws):
    """The close code and reason the other side sent (None, None when it sent none)."""
    return ws.close_code, ws.close_reason


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)


def pieces(seq, n):
    """`seq` cut into n consecutive pieces of near-equal length (some empty when n > len)."""
    size = len(seq)
    return [seq[k * size // n : (k + 1) * size // n] for k in range(n)]


async def run_server(out):
    received = []
    done = asyncio.get_running_loop().create_future()

    async def handler(ws):
        try:
            async for message in ws:
                received.append(record(message))
        finally:
            if not done.done():
                done.set_result(close_info(ws))

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        code, reason = await done
    write_json(out, {"received": received, "close_code": code, "close_reason": reason})


async def run_client(url, frames_path, out, expect, wait):
    with open(frames_path, encoding="utf-8") as f:
        frames = json.load(f)
    received = []
    got_enough = asyncio.Event()

    # proxy=None: an HTTP(S)_PROXY in the environment must not route this through something else.
    async with connect(url, max_size=None, proxy=None) as ws:

        async def reader():
            async for message in ws:
                received.append(record(message))
                if len(received) >= expect:
                    got_enough.set()

        if expect <= 0:
            got_enough.set()
        reading = asyncio.create_task(reader())
        started = time.monotonic()
        for frame in frames:
            if frame["kind"] == "text":
                data = frame["data"]
            else:
                data = base64.b64decode(frame["data"])
            n = frame.get("fragments", 1)
            if n <= 1:
                await ws.send(data)
            elif frame["kind"] == "text" and frame.get("split") == "utf8":
                # Fragments cut at byte offsets: a character's bytes may span two frames.
                await ws.send(pieces(data.encode("utf-8"), n), text=True)
            else:
                await ws.send(pieces(data, n))
        send_seconds = time.monotonic() - started
        try:
            await asyncio.wait_for(got_enough.wait(), timeout=wait)
        except asyncio.TimeoutError:
            print(
                f"ws_peers.py client: {len(received)} of {expect} messages after {wait} s",
                file=sys.stderr,
            )
        await asyncio.sleep(GRACE_SECONDS)
        await ws.close()
        # The reader ends at the close; whatever arrived before it is in `received`.
        await reading
        code, reason = close_info(ws)
    write_json(
        out,
        {
            "received": received,
            "close_code": code,
            "close_reason": reason,
            "send_seconds": send_seconds,
        },
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--out", required=True)
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--frames", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--expect", type=int, required=True)
    c.add_argument("--wait", type=float, default=30.0)
    args = parser.parse_args()
    if int(websockets.__version__.split(".")[0]) < 14:
        sys.exit(f"ws_peers.py needs websockets >= 14, found {websockets.__version__}")
    if args.mode == "server":
        asyncio.run(run_server(args.out))
    else:
        asyncio.run(run_client(args.url, args.frames, args.out, args.expect, args.wait))


if __name__ == "__main__":
    main()
