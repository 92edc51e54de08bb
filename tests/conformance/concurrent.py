#!/usr/bin/env python3
"""Many hostile connections at once through the real router (the conformance suite's
concurrency family).

The case-by-case suite drives one client connection at a time. The router's hot path also
has state shared between connections: one io_uring call reads up to 64 readable sockets per
loop iteration (a 65th flushes the batch during the poll), each read into a 2 KiB buffer;
bytes of a socket whose reading was stopped meanwhile are held until it reads again; all
sends of an iteration leave in one call. This drives that path as a crowd does:

- 120 connections made readable at once, more than one ring call reads;
- first requests whose bytes end just before, at and after 2 KiB and 4 KiB (and one short);
- pipelines of 1, 3, 40 or 200 requests with random padding, written 64 KiB at a time;
- 30 % of the clients read nothing for 1.5 s with a 4 KiB receive buffer, so the router
  stops reading them (backpressure) while their requests are already in its batch;
- about 7 % reset (RST) right after their first write, and 7 % after some answers.

Every request carries its own id; the pod (h11 as the server, an independent HTTP/1.1
parser) answers each with that id and the size of what it received. Every client's byte
stream is parsed by h11, and a connection passes when it got exactly its answers, in order,
each 200 with its own id and size: a lost, duplicated, reordered, truncated or crossed
answer fails. Under the sanitizer build any report fails the run.

  concurrent.py --bin build/src/pod-router [--seeds 1,2,3] [--threads 1] [--san-dir DIR]

Then clients that still send while the router answers (431 to a head too large, 413 from
the admin listener, 200 to a Connection: close request followed by 1 MB) must read the whole
answer and a clean end of stream: the router half-closes and reads on (lingering close)
instead of resetting the connection.

The last line is "N passed, N failed" (one per seed, one for the answers).
"""
import argparse
import os
import random
import select
import selectors
import socket
import sys
import threading
import time

import h11

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Router, listen_local  # noqa: E402

CONNS = 120
PIPELINES = (1, 3, 40, 200)
FIRST_ENDS = (700, 2047, 2048, 2049, 4096, 4097)


class EchoPod(threading.Thread):
    """HTTP/1.1 pod on 127.0.0.1 built on h11: answers each request with
    "<x-seq> <bytes of X-Pad>" and counts what it could not parse."""

    def __init__(self):
        super().__init__(daemon=True, name="echo-pod")
        self.lsock, self.port, self.sel = listen_local()
        self.stopping = False
        self.errors = []
        self.requests = 0

    def stop(self):
        self.stopping = True
        self.join(5)

    def run(self):
        while not self.stopping:
            for key, ev in self.sel.select(0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._serve(key.data, ev)

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            s.setblocking(False)
            st = {"s": s, "h": h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024),
                  "out": bytearray(), "req": None}
            self.sel.register(s, selectors.EVENT_READ, st)

    def _close(self, st):
        try:
            self.sel.unregister(st["s"])
        except (KeyError, ValueError):
            pass
        st["s"].close()

    def _serve(self, st, ev):
        s, h = st["s"], st["h"]
        if ev & selectors.EVENT_READ:
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data is not None:
                h.receive_data(data)
                if not self._answer(st):
                    return
        if st["out"]:
            try:
                n = s.send(st["out"])
                del st["out"][:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(st)
                return
        if st.get("closing") and not st["out"]:
            self._close(st)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0)
        if len(st["out"]) > 1 << 20:
            want = selectors.EVENT_WRITE  # the router is not reading: stop reading it too
        self.sel.modify(s, want, st)

    def _answer(self, st):
        h = st["h"]
        while not st.get("closing"):
            if h.our_state is h11.DONE and h.their_state is h11.DONE:
                h.start_next_cycle()
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as e:
                self.errors.append("pod could not parse what the router sent: %s" % e)
                self._close(st)
                return False
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return True
            if isinstance(ev, h11.ConnectionClosed):
                self._close(st)
                return False
            if isinstance(ev, h11.Request):
                st["req"] = ev
            elif isinstance(ev, h11.EndOfMessage):
                req, st["req"] = st["req"], None
                hdrs = dict(req.headers)
                body = b"%s %d" % (hdrs.get(b"x-seq", b"-"), len(hdrs.get(b"x-pad", b"")))
                self.requests += 1
                head = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
                if b"x-close" in hdrs:
                    head.append(("Connection", "close"))
                st["out"] += h.send(h11.Response(status_code=200, headers=head))
                st["out"] += h.send(h11.Data(data=body)) + h.send(h11.EndOfMessage())
                if b"x-close" in hdrs:
                    st["closing"] = True
                    return True


def request(seq, pad, extra=b""):
    return (b"GET /api/room/room_%d/state HTTP/1.1\r\nHost: x\r\nX-Seq: %s\r\n%sX-Pad: %s\r\n\r\n"
            % (len(seq) % 50, seq.encode(), extra, b"a" * pad))


def make_clients(port, rnd):
    clients = []
    for c in range(CONNS):
        n = rnd.choice(PIPELINES)
        end = rnd.choice(FIRST_ENDS)
        seqs = ["%d-%d" % (c, k) for k in range(n)]
        base = len(request(seqs[0], 0))
        pads = [max(0, end - base)] + [rnd.randint(0, 3000) for _ in range(n - 1)]
        # Request `last` says Connection: close while more is pipelined behind it (the router
        # answers up to it, then closes); the pod closes its side after some answers (the
        # router goes on with a new pod connection).
        last = rnd.randrange(n) if n > 1 and rnd.random() < 0.1 else n - 1
        extra = [b""] * n
        if last < n - 1:
            extra[last] = b"Connection: close\r\n"
        for k in range(n):
            if not extra[k] and rnd.random() < 0.02:
                extra[k] = b"X-Close: 1\r\n"
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        r = rnd.random()
        clients.append({
            "i": c, "s": s, "n": n, "seqs": seqs, "pads": pads, "last": last,
            "data": b"".join(request(q, p, e) for q, p, e in zip(seqs, pads, extra)), "sp": 0,
            "out": bytearray(), "done": False, "eof": False,
            # reset: 0 never, 1 right after the first write, k > 1 after k - 1 answers
            "reset": 1 if r < 0.07 else (rnd.randint(2, n) if r < 0.14 and n > 1 else 0),
            "wake": time.monotonic() + (1.5 if rnd.random() < 0.3 else 0),
        })
    return clients


def rst(c):
    c["s"].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c["s"].close()
    c["done"] = True


def drive(clients, limit):
    t0 = time.monotonic()
    for c in clients:  # everyone's first bytes before anything is read
        try:
            c["sp"] += c["s"].send(c["data"][:65536])
        except (BlockingIOError, InterruptedError):
            pass
    for c in clients:
        if c["reset"] == 1:
            rst(c)
    while time.monotonic() - t0 < limit:
        live = [c for c in clients if not c["done"]]
        if not live:
            return True
        now = time.monotonic()
        rd = [c["s"] for c in live if now >= c["wake"]]
        wr = [c["s"] for c in live if c["sp"] < len(c["data"])]
        r, w, _ = select.select(rd, wr, [], 0.2)
        for c in live:
            s = c["s"]
            if s in w:
                try:
                    c["sp"] += s.send(c["data"][c["sp"]:c["sp"] + 65536])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass
            if s in r:
                try:
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    c["done"] = c["eof"] = True
                    continue
                c["out"] += chunk
                got = c["out"].count(b"HTTP/1.1 ")
                if c["reset"] > 1 and got >= c["reset"] - 1:
                    rst(c)
                elif got > c["last"] and c["last"] == c["n"] - 1:
                    c["done"] = True  # (after a Connection: close answer: at the end of stream)
    return False


def check(c):
    """None when the connection got exactly its answers, in order; else why not."""
    cl = h11.Connection(h11.CLIENT)
    cl.receive_data(bytes(c["out"]))
    for k in range(c["last"] + 1):
        hdrs = [("Host", "x")] + ([("Connection", "close")] if k == c["last"] < c["n"] - 1 else [])
        cl.send(h11.Request(method="GET", target="/", headers=hdrs))
        cl.send(h11.EndOfMessage())
        status, body = None, b""
        while True:
            try:
                ev = cl.next_event()
            except h11.RemoteProtocolError as e:
                return "answer %d/%d: h11: %s" % (k + 1, c["last"] + 1, e)
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                break
            else:
                return "answer %d/%d missing (%d bytes received, %d/%d sent)" % (
                    k + 1, c["last"] + 1, len(c["out"]), c["sp"], len(c["data"]))
        want = b"%s %d" % (c["seqs"][k].encode(), c["pads"][k])
        if status != 200 or body != want:
            return "answer %d/%d: %s %r, expected 200 %r" % (k + 1, c["last"] + 1, status, body[:60], want)
        if k < c["last"]:
            cl.start_next_cycle()
    if c["last"] < c["n"] - 1:
        if cl.their_state is not h11.MUST_CLOSE:
            return "answer %d to a Connection: close request did not say close" % (c["last"] + 1)
        if not c["eof"]:
            return "no end of stream after the last answer (Connection: close)"
    elif cl.next_event() is not h11.NEED_DATA:
        return "bytes after the last answer"
    return None


def run_seed(args, seed):
    rnd = random.Random(seed)
    pod = EchoPod()
    pod.start()
    router = Router(args.bin, args.out, "concurrent-%d" % seed, args.san_dir, args.threads)
    problems = []
    try:
        router.start("echo", pod.port)
        clients = make_clients(router.port, rnd)
        t0 = time.monotonic()
        finished = drive(clients, args.limit)
        elapsed = time.monotonic() - t0
        whole = [c for c in clients if not c["reset"]]
        for c in whole:
            why = check(c)
            if why:
                problems.append("connection %d (%d requests, first ends at %d bytes): %s" % (
                    c["i"], c["n"], len(request(c["seqs"][0], c["pads"][0])), why))
        if not finished:
            problems.append("not every connection finished within %d s" % args.limit)
        if not router.alive():
            problems.append("router %s" % router.exit_status())
        for c in clients:
            if not c["done"]:
                c["s"].close()
        resets = sum(1 for c in clients if c["reset"])
        print("seed %d: %d connections answered, %d reset (%d of them mid-stream), %d requests "
              "at the pod, %.1f s" % (seed, len(whole), resets,
                                      sum(1 for c in clients if c["reset"] > 1), pod.requests, elapsed))
    finally:
        status = router.stop()
        pod.stop()
    if status:
        problems.append("router %s" % status)
    problems += pod.errors[:3]
    time.sleep(0.1)
    for r in router.san_reports():
        problems.append("sanitizer report %s" % os.path.basename(r))
    return problems


def error_while_sending(router, kind):
    """A client that is still sending when the router answers with an error and closes: the
    router must half-close and read on (lingering close), so the client reads the whole
    answer and then a clean end of stream, never a reset."""
    if kind == 431:
        port, data = router.port, (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: %s\r\n" % (i, b"b" * 900) for i in range(400)) + b"\r\n")
    elif kind == 413:
        port, data = router.admin, (b"PUT /v1/pods/zz HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                    b"application/json\r\nContent-Length: 2000000\r\n\r\n{" + b" " * 1999999)
    else:  # 200 to a Connection: close request, then 1 MB more
        port, data = router.port, (b"GET /a HTTP/1.1\r\nHost: x\r\nX-Seq: e\r\nConnection: close\r\n\r\n"
                                   + b"x" * 1000000)
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(0.3)
    sent, t0 = 0, time.monotonic()
    try:
        while sent < len(data) and time.monotonic() - t0 < 1.0:
            sent += s.send(data[sent:sent + 65536])
    except OSError:
        pass
    time.sleep(0.3)
    s.settimeout(5)
    blob, err = b"", None
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            blob += chunk
    except OSError as e:
        err = type(e).__name__
    s.close()
    cl = h11.Connection(h11.CLIENT)
    cl.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    cl.send(h11.EndOfMessage())
    cl.receive_data(blob)
    cl.receive_data(b"")
    status, ended = None, False
    try:
        while True:
            ev = cl.next_event()
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.EndOfMessage):
                ended = True
            elif ev is h11.NEED_DATA or isinstance(ev, h11.ConnectionClosed):
                break
    except h11.RemoteProtocolError as e:
        return "%d: h11: %s" % (kind, e)
    if status != kind or not ended:
        return "%d: got %s (%s), %d bytes" % (kind, status, "complete" if ended else "incomplete", len(blob))
    if err:
        return "%d: the answer came, then %s instead of the end of stream" % (kind, err)
    return None


def run_errors(args):
    pod = EchoPod()
    pod.start()
    router = Router(args.bin, args.out, "concurrent-errors", args.san_dir, args.threads)
    problems = []
    try:
        router.start("echo", pod.port)
        for kind in (431, 413, 200) * 3:
            why = error_while_sending(router, kind)
            if why:
                problems.append(why)
        if not router.alive():
            problems.append("router %s" % router.exit_status())
    finally:
        status = router.stop()
        pod.stop()
    if status:
        problems.append("router %s" % status)
    time.sleep(0.1)
    for r in router.san_reports():
        problems.append("sanitizer report %s" % os.path.basename(r))
    print("answers to clients still sending: %d problem(s)" % len(problems))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", default="test-output/conformance/concurrent")
    ap.add_argument("--seeds", default="11,12,13")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=float, default=60.0, help="seconds per seed")
    ap.add_argument("--san-dir", default=None)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    passed = failed = 0
    for seed in (int(s) for s in args.seeds.split(",")):
        problems = run_seed(args, seed)
        if problems:
            failed += 1
            print("FAIL concurrent seed %d (--threads %d):" % (seed, args.threads))
            for p in problems[:10]:
                print("  " + p)
        else:
            passed += 1
    problems = run_errors(args)
    if problems:
        failed += 1
        print("FAIL concurrent: answers to clients still sending (lingering close):")
        for p in problems[:10]:
            print("  " + p)
    else:
        passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
