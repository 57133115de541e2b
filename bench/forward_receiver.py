#!/usr/bin/env python3
"""A small, fast webhook receiver for bench/forward_backlog.sh: HTTP/1.1 keep-alive on
127.0.0.1, answers 204 to every request after reading its body, and stops by itself after
--expect requests or --max-seconds, whichever comes first. Prints one JSON line: how many
requests came, the time from the first to the last, and the rate between them."""
import argparse
import asyncio
import json
import time


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()

    state = {"count": 0, "first": None, "last": None, "ids": set(), "duplicates": 0}
    done = asyncio.Event()

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                event_id = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value.strip())
                    elif name == b"webhook-id":
                        event_id = value.strip()
                if length:
                    await reader.readexactly(length)
                now = time.monotonic()
                if state["first"] is None:
                    state["first"] = now
                state["last"] = now
                state["count"] += 1
                if event_id in state["ids"]:
                    state["duplicates"] += 1
                state["ids"].add(event_id)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
                if len(state["ids"]) >= args.expect:
                    done.set()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=128)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    import os

    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        await asyncio.wait_for(done.wait(), timeout=args.max_seconds)
    except asyncio.TimeoutError:
        pass
    server.close()
    first, last, count = state["first"], state["last"], state["count"]
    span = (last - first) if first is not None else 0.0
    distinct = len(state["ids"])
    print(
        json.dumps(
            {
                "requests": count,
                "distinct": distinct,
                "duplicates": state["duplicates"],
                "seconds_first_to_last": round(span, 3),
                "per_second": round((distinct - 1) / span, 1) if span > 0 else 0,
                "complete": distinct >= args.expect,
            }
        )
    )


asyncio.run(main())
