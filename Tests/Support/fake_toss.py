#!/usr/bin/env python3
"""Plays Toss's transaction download page (trxdown.jsp, "거래연동 방안" §2) for pgnoti's tests.

GET /pg/wmp/outerpage/trxdown.jsp?mertid=M&servicecode=TRX|REV&trxdate=YYYYMMDD&key=K
  key must be md5_hex(mertid + MertKey); anything else gets an HTML error page, as a JSP would.
  Rows are served from --rows-dir/<mid>_<AUTH|REV>_<trxdate>.dat (CP949 bytes as they are).
--fail-first N answers 503 to the first N requests (to exercise retries).
Every request is appended to --log as one JSON line. Prints "listening PORT".
"""
import argparse
import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mert-key-file", required=True)
    p.add_argument("--rows-dir", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    args = p.parse_args()
    mert_key = open(args.mert_key_file).read().strip()
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            with lock:
                count[0] += 1
                n = count[0]
            expected = hashlib.md5((q.get("mertid", "") + mert_key).encode()).hexdigest()
            ok_key = q.get("key") == expected
            with open(args.log, "a") as log:
                log.write(json.dumps({"path": url.path, "mertid": q.get("mertid"), "servicecode": q.get("servicecode"),
                                      "trxdate": q.get("trxdate"), "key_ok": ok_key}) + "\n")
            if n <= args.fail_first:
                return self.answer(503, b"busy", "text/plain")
            if url.path != "/pg/wmp/outerpage/trxdown.jsp":
                return self.answer(404, b"<html><head><title>404 Not Found</title></head></html>", "text/html")
            if not ok_key:
                page = "<html><head><title>인증 오류</title></head><body>key 값이 올바르지 않습니다.</body></html>"
                return self.answer(200, page.encode("cp949"), "text/html; charset=euc-kr")
            kind = {"TRX": "AUTH", "REV": "REV"}.get(q.get("servicecode"))
            path = os.path.join(args.rows_dir, "%s_%s_%s.dat" % (q.get("mertid"), kind, q.get("trxdate")))
            body = open(path, "rb").read() if kind and os.path.exists(path) else b""
            self.answer(200, body, "text/plain; charset=euc-kr")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("listening", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
