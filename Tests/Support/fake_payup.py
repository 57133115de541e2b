#!/usr/bin/env python3
"""Plays Payup's card key-in API ("카드결제 구인증 API 규격서" v1.3) for pgnoti's tests.

POST /v2/api/payment/{merchantId}/keyin2  approve (§2.1); signature checked per §2.1.1
POST /v2/api/payment/{merchantId}/cancel2 cancel (§2.2); signature checked per §2.2.1
orderNumber starting DECLINE -> responseCode 5001; SLOW -> answers after --slow seconds;
ECHO -> approves and echoes the card number back (which pgnoti must never keep);
HTTP500 -> approves (responseCode 0000) under HTTP status 500; NULLCODE -> responseCode null.
A bad signature -> 2001. Each request is logged to --log as one JSON line, with the card
number replaced by its length so the log itself holds no card data. Prints "listening PORT".
"""
import argparse
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sha(text):
    return hashlib.sha256(text.replace(" ", "").encode()).hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--api-key-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--slow", type=float, default=5)
    args = p.parse_args()
    key = open(args.api_key_file).read().strip()
    lock = threading.Lock()
    counter = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            parts = self.path.strip("/").split("/")
            merchant, op = parts[-2], parts[-1]
            with lock:
                counter[0] += 1
                n = counter[0]
            if op == "keyin2":
                ok = body.get("signature") == sha("%s|%s|%s|%s|%s" % (
                    merchant, body.get("orderNumber"), body.get("amount"), key, body.get("timestamp")))
                order = body.get("orderNumber", "")
                if not ok:
                    answer = {"responseCode": "2001", "responseMsg": "전문 검증에러!"}
                elif order.startswith("DECLINE"):
                    answer = {"responseCode": "5001", "responseMsg": "결제 금액이 최소 결제 금액 보다 작습니다.",
                              "orderNumber": order, "amount": body.get("amount")}
                elif order.startswith("NULLCODE"):
                    answer = {"responseCode": None, "responseMsg": None, "orderNumber": order}
                else:
                    answer = {"responseCode": "0000", "responseMsg": "성공", "transactionId": "20261124%06dST%04d" % (n, n),
                              "authDateTime": "20261124103000", "authNumber": "00308225", "orderNumber": order,
                              "amount": body.get("amount"), "cardName": "신한카드", "kakaoResultCode": ""}
                    if order.startswith("ECHO"):
                        answer["cardNo"] = body.get("cardNo")
                        answer["birthday"] = body.get("birthday")
                if order.startswith("SLOW"):
                    # Said before the wait, so a test knows the request reached Payup.
                    with open(args.log, "a") as log:
                        log.write(json.dumps({"path": self.path, "received": order}) + "\n")
                    time.sleep(args.slow)
            else:
                ok = body.get("signature") == sha("%s|%s|%s" % (merchant, body.get("transactionId"), key))
                answer = ({"responseCode": "0000", "responseMsg": "성공", "cancelDateTime": "20261124110000",
                           "transactionId": body.get("transactionId")} if ok
                          else {"responseCode": "2001", "responseMsg": "전문 검증에러!"})
            logged = dict(body)
            if "cardNo" in logged:
                logged["cardNo"] = "len%d" % len(logged["cardNo"])
            for secret in ("cardPw", "birthday", "expireMonth", "expireYear"):
                logged.pop(secret, None)
            with open(args.log, "a") as log:
                log.write(json.dumps({"path": self.path, "signature_ok": ok, "request": logged,
                                      "content_type": self.headers.get("Content-Type")}, ensure_ascii=False) + "\n")
            data = json.dumps(answer, ensure_ascii=False).encode()
            status = 500 if body.get("orderNumber", "").startswith("HTTP500") else 200
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except BrokenPipeError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("listening", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
