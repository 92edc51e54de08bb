#!/usr/bin/env python3
"""Negative control for the conformance suite: a byte-transparent TCP proxy that accepts
pod-router's serve flags (admin: /healthz and PUT/GET /v1/pods). It adds no forwarding
headers and removes nothing, so every case must FAIL against it:

    bash tests/conformance/run.sh selftest
"""
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = sys.argv[1:]


def flag(name):
    host, port = args[args.index(name) + 1].rsplit(":", 1)
    return host, int(port)


pods = {}


class Admin(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self._reply(200, b'{"status":"ok"}')
        else:
            self._reply(200, json.dumps({"state": "ready", **pods.get(self.path.rsplit("/", 1)[1], {})}).encode())

    def do_PUT(self):
        n = int(self.headers["Content-Length"])
        pods[self.path.rsplit("/", 1)[1]] = json.loads(self.rfile.read(n))
        self._reply(201)


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    threading.Thread(target=ThreadingHTTPServer(flag("--admin-listen"), Admin).serve_forever, daemon=True).start()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(flag("--listen"))
    ls.listen(128)
    while True:
        c, _ = ls.accept()
        host, port = list(pods.values())[0]["address"].rsplit(":", 1)
        u = socket.create_connection((host, int(port)))
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()


if __name__ == "__main__":
    main()
