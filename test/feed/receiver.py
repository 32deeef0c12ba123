#!/usr/bin/env python3
"""A stand-in audit repository for t/106_audit_feed.pl.

  receiver.py fhir   PORT CERT KEY STORE TOKEN   HTTPS FHIR server: PUT
      /fhir/AuditEvent/<id> stores STORE/<id>.json (201 new, 200 replaced)
      and appends "<id>" to STORE/puts.log; needs "Authorization: Bearer
      TOKEN" (401 otherwise) and a body whose id is <id> (400 otherwise).
  receiver.py syslog PORT CERT KEY STORE         syslog over TLS (RFC 5425
      octet-counted frames): appends each message as a line to
      STORE/syslog.log.
"""
import json
import os
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

mode, port, cert, key, store = sys.argv[1:6]
port = int(port)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
lock = threading.Lock()


def append(name, line):
    with lock, open(os.path.join(store, name), "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


if mode == "fhir":
    token = sys.argv[6]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # its answer goes out as written: with Nagle's algorithm the
        # answer's second write waited for the feed's delayed ACK (40 ms)
        disable_nagle_algorithm = True

        def answer(self, status, body):
            data = json.dumps(body).encode()
            # with a file "early-hints" in the store: an interim answer
            # first (RFC 9110 15.2), as some servers and proxies send
            if os.path.exists(os.path.join(store, "early-hints")):
                self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </fhir>; rel=preconnect\r\n\r\n")
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Authorization") != "Bearer " + token:
                return self.answer(401, {"resourceType": "OperationOutcome"})
            prefix = "/fhir/AuditEvent/"
            rid = self.path[len(prefix):] if self.path.startswith(prefix) else ""
            try:
                res = json.loads(body)
            except ValueError:
                res = {}
            if not rid or res.get("resourceType") != "AuditEvent" or res.get("id") != rid:
                return self.answer(400, {"resourceType": "OperationOutcome"})
            path = os.path.join(store, rid + ".json")
            existed = os.path.exists(path)
            with open(path + ".tmp", "wb") as f:
                f.write(body)
            os.rename(path + ".tmp", path)
            append("puts.log", rid)
            self.answer(200 if existed else 201, res)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()
else:
    def serve(conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while True:
                    sp = buf.find(b" ")
                    if sp <= 0:
                        break
                    n = int(buf[:sp])
                    if len(buf) < sp + 1 + n:
                        break
                    append("syslog.log", buf[sp + 1:sp + 1 + n].decode())
                    buf = buf[sp + 1 + n:]
        except (OSError, ssl.SSLError):
            return

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    while True:
        c, _ = ls.accept()
        try:
            tc = ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError):
            c.close()
            continue
        threading.Thread(target=serve, args=(tc,), daemon=True).start()
