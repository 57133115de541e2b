#!/usr/bin/env python3
"""Hostile load against a running pgnoti, with genuine notifications posted alongside.

    python3 bench/hostile.py --port P --secret S --seconds 60

Hostile traffic, all at once, for --seconds:
  garbage    random bytes posted to every notify URL
  oversized  Content-Length: 100000000 announced, body trickled
  slow       --slow connections sending a header one byte every 2 s (slowloris)
  forged     unsigned TomatoPay/Innopay approvals without or with a wrong path secret
  flipped    Smartro's published test approval re-posted with StateCd=2 (SignValue still valid)
  replayed   one genuine Smartro approval posted again and again (PG retry storm)
Genuine: a new TomatoPay approval (right path secret) every --interval seconds, timed from
send to the end of its ACK.

Prints one JSON object: requests per kind, genuine ACK latency (p50/p99/max ms), genuine
requests not ACKed. Exit status 1 if a genuine notification went without its ACK.
"""
import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import statistics
import time
from urllib.parse import quote

SMARTRO_KEY = "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow=="
FORM = "application/x-www-form-urlencoded"


def smartro_sign(tid, code):
    text = tid[:10] + code + tid[10:15] + SMARTRO_KEY + tid[15:]
    return base64.b64encode(hashlib.md5(text.encode()).hexdigest().encode()).decode()


def smartro_body(tid, state="0", code="3001", amount=1000):
    fields = [("PayMethod", "CARD"), ("MID", "SMTPAY001m"), ("Amt", str(amount)), ("TID", tid),
              ("OID", "ORD-" + tid[-6:]), ("ResultCode", code), ("StateCd", state),
              ("SignValue", smartro_sign(tid, code))]
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in fields).encode()


def tomato_body(tid, amount=1000):
    return (f"PayMethod=CARD&MID=tomato001m&Amt={amount}&TID={tid}&OID=O{tid[-8:]}"
            f"&StateCd=0&ResultCode=3001&AuthDate=241123153000").encode()


def request(path, body, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: pgnoti\r\nContent-Type: {FORM}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n").encode() + body


async def exchange(port, data, timeout=30.0):
    """Sends one request on a new connection; returns (status, body, seconds)."""
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else -1
        return status, body, time.perf_counter() - start
    except (OSError, asyncio.TimeoutError, IndexError, ValueError):
        return -1, b"", time.perf_counter() - start


class Counts(dict):
    def bump(self, key, status):
        bucket = self.setdefault(key, {})
        bucket[str(status)] = bucket.get(str(status), 0) + 1


async def loop_until(deadline, coro_factory, concurrency):
    async def worker():
        while time.monotonic() < deadline:
            await coro_factory()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--slow", type=int, default=500)
    ap.add_argument("--baseline", action="store_true", help="genuine traffic only")
    args = ap.parse_args()
    port, secret = args.port, args.secret
    deadline = time.monotonic() + args.seconds
    counts = Counts()
    rng = random.Random(7)
    run = os.getpid()

    async def garbage():
        path = rng.choice(["/notify/smartro", f"/notify/tomatopay/{secret}", "/notify/innopay/x", "/notify/nicepay"])
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
        status, _, _ = await exchange(port, request(path, body))
        counts.bump("garbage", status)

    async def oversized():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"POST /notify/tomatopay/{secret} HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\n"
                         "Content-Length: 100000000\r\n\r\n".encode())
            await writer.drain()
            for _ in range(50):
                writer.write(b"a" * 65536)
                await asyncio.wait_for(writer.drain(), 1)
            head = await asyncio.wait_for(reader.read(200), 5)
            counts.bump("oversized", int(head.split(b" ")[1]) if head else -1)
            writer.close()
        except (OSError, asyncio.TimeoutError, IndexError, ValueError):
            counts.bump("oversized", "cut")

    async def slow_client():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            header = f"POST /notify/tomatopay/{secret} HTTP/1.1\r\nHost: x\r\n".encode()
            for b in header:
                if time.monotonic() > deadline:
                    break
                writer.write(bytes([b]))
                await writer.drain()
                await asyncio.sleep(2)
            counts.bump("slow", "survived")
        except OSError:
            counts.bump("slow", "cut")

    async def forged():
        n = rng.randint(0, 10**9)
        path = rng.choice(["/notify/tomatopay", "/notify/tomatopay/wrong-secret-guess-000", "/notify/innopay"])
        body = tomato_body(f"forged{n:020d}") if "tomato" in path else \
            f"pgMid=testpay01m&pgTid=F{n}&status=25&approvalAmt=9900000".encode()
        status, _, _ = await exchange(port, request(path, body))
        counts.bump("forged", status)

    flipped_body = smartro_body("SMTPAY001m01012411231530009999", state="2", code="3001")

    async def flipped():
        status, _, _ = await exchange(port, request("/notify/smartro", flipped_body))
        counts.bump("flipped", status)

    replay_body = smartro_body("SMTPAY001m01012411231530008888")

    async def replayed():
        status, _, _ = await exchange(port, request("/notify/smartro", replay_body))
        counts.bump("replayed", status)

    latencies, missed = [], []

    async def genuine():
        i = 0
        while time.monotonic() < deadline:
            i += 1
            tid = f"genuine{run:07d}{i:09d}"
            status, body, seconds = await exchange(port, request(f"/notify/tomatopay/{secret}", tomato_body(tid)))
            if status == 200 and body == b"OK":
                latencies.append(seconds * 1000)
            else:
                missed.append((tid, status))
            await asyncio.sleep(args.interval)

    tasks = [genuine()]
    if not args.baseline:
        tasks += [
            loop_until(deadline, garbage, 8),
            loop_until(deadline, oversized, 2),
            asyncio.gather(*(slow_client() for _ in range(args.slow))),
            loop_until(deadline, forged, 4),
            loop_until(deadline, flipped, 2),
            loop_until(deadline, replayed, 4),
        ]
    await asyncio.gather(*tasks)
    latencies.sort()
    q = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None
    print(json.dumps({
        "seconds": args.seconds, "hostile": counts,
        "genuine": {"sent": len(latencies) + len(missed), "acked": len(latencies), "missed": missed[:10],
                    "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": round(max(latencies), 1) if latencies else None,
                    "mean_ms": round(statistics.mean(latencies), 1) if latencies else None},
    }, indent=1))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
