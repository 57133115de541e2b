#!/usr/bin/env python3
"""A merchant app's webhook endpoint for pgnoti's forwarder tests.

Every request is verified with the reference Standard Webhooks implementation (PyPI
`standardwebhooks`), which no one on the pgnoti team wrote. Each request becomes one JSON line
in --log, written before the answer is sent:

  {"at": unix time, "id": webhook-id, "attempt": n (per id), "verified": bool, "error": str|null,
   "status": answered status, "kind": event kind, "order_id": ..., "tid": ..., "user_agent": ...}

Behaviours for the tests:
  --fail-first N      answer 500 to the first N attempts of every webhook-id
  --fail-all          answer 500 to everything
  --gone ID[,ID]      answer 410 to these webhook-ids
  --delay-first S     sleep S seconds before answering the first attempt of every id
  --delay-all S       sleep S seconds before answering every request

Prints "listening PORT" once the socket accepts connections.
"""
import argparse
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-all", action="store_true")
    parser.add_argument("--gone", default="")
    parser.add_argument("--delay-first", type=float, default=0)
    parser.add_argument("--delay-all", type=float, default=0)
    args = parser.parse_args()

    with open(args.secret_file) as f:
        webhook = Webhook(f.read().strip())
    gone = set(filter(None, args.gone.split(",")))
    attempts = {}
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            wid = headers.get("webhook-id", "")
            with lock:
                attempts[wid] = attempts.get(wid, 0) + 1
                attempt = attempts[wid]
            verified, error, event = True, None, {}
            try:
                event = webhook.verify(body, headers)
            except WebhookVerificationError as e:
                verified, error = False, str(e)
            except Exception as e:  # not JSON, etc.
                verified, error = False, repr(e)
            if verified and event.get("id") != wid:
                verified, error = False, "webhook-id differs from the event id"
            delay = args.delay_all or (args.delay_first if attempt == 1 else 0)
            if delay:
                time.sleep(delay)
            if not verified:
                status = 400
            elif wid in gone:
                status = 410
            elif args.fail_all or attempt <= args.fail_first:
                status = 500
            else:
                status = 204
            record = {
                "at": time.time(), "id": wid, "attempt": attempt, "verified": verified, "error": error,
                "status": status, "kind": event.get("kind"), "order_id": event.get("order_id"),
                "tid": event.get("tid"), "user_agent": headers.get("user-agent"),
                "content_type": headers.get("content-type"), "timestamp": headers.get("webhook-timestamp"),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening", server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
