"""Processes and sockets of the conformance suite: the real router, a capture pod and a
raw-socket client. Everything listens on 127.0.0.1 only."""
import http.client
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import threading
import time

import h11

from h11parse import MAX_EVENT, Msg, _capture_lines


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# --------------------------------------------------------------------------- router


class Router:
    """One pod-router process: --store memory, --threads 1 (or `threads`), one pod registered."""

    def __init__(self, binary, logdir, tag, san_dir=None, threads=1):
        self.binary = binary
        self.threads = threads
        self.logdir = logdir
        self.tag = tag
        self.san_dir = san_dir
        self.proc = None
        self.port = self.admin = None
        self.starts = 0
        self.log = None

    def start(self, pod_name, pod_port):
        for _attempt in range(5):
            self.port, self.admin = free_port(), free_port()
            self.starts += 1
            path = os.path.join(self.logdir, "router-%s-%d.log" % (self.tag, self.starts))
            self.log = open(path, "wb")
            args = [
                self.binary, "serve",
                "--store", "memory",
                "--listen", "127.0.0.1:%d" % self.port,
                "--admin-listen", "127.0.0.1:%d" % self.admin,
                "--threads", str(self.threads),
                "--pod-ttl", "1h",
                "--drain-timeout", "1s",
                "--log-format", "text",
            ]
            self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            if self._wait_ready() and self._register(pod_name, pod_port):
                return
            self.stop()
        raise RuntimeError("router %s did not start (see %s)" % (self.tag, self.logdir))

    def _admin(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        try:
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def _wait_ready(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                st, _ = self._admin("GET", "/healthz")
                if st == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _register(self, name, port):
        try:
            st, body = self._admin("PUT", "/v1/pods/" + name,
                                   json.dumps({"address": "127.0.0.1:%d" % port}))
            if st not in (200, 201):
                return False
            st, body = self._admin("GET", "/v1/pods/" + name)
            return st == 200 and json.loads(body).get("state") == "ready"
        except (OSError, ValueError):
            return False

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exit_status(self):
        rc = self.proc.poll() if self.proc else None
        if rc is None:
            return None
        if rc < 0:
            try:
                return "killed by %s" % signal.Signals(-rc).name
            except ValueError:
                return "killed by signal %d" % -rc
        return "exited with status %d" % rc

    def san_reports(self):
        """Sanitizer report files written by this process (ASAN/UBSAN log_path)."""
        if not self.san_dir or not self.proc:
            return []
        pid = ".%d" % self.proc.pid
        try:
            return sorted(os.path.join(self.san_dir, f) for f in os.listdir(self.san_dir)
                          if f.endswith(pid))
        except OSError:
            return []

    def stop(self):
        if not self.proc:
            return None
        status = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                status = "did not exit within 10 s of SIGTERM"
        if self.log:
            self.log.close()
            self.log = None
        return status


# --------------------------------------------------------------------------- capture pod


class PodAction:
    """What the pod sends for one request."""

    def __init__(self, data, close=False, switch=False, later=None, shut_after=None):
        self.data = data  # bytes written at once when the request is complete
        self.close = close  # close the connection once written
        self.switch = switch  # the request is upgraded (data holds the 101 and any bytes after)
        self.later = later or []  # [(delay seconds, bytes)] written after data
        self.tunnel_extra = b""  # bytes after the 101 head inside data + later (for the judge)


class PodRequest(Msg):
    def __init__(self):
        super().__init__()
        self.seq = 0
        self.conn_id = 0
        self.action = None
        self.response = b""  # bytes the pod wrote for this request (head + body, not `later`)
        self.aborted = False  # connection ended before the request was complete


class PodConnRecord:
    def __init__(self, conn_id, reused):
        self.conn_id = conn_id
        self.reused = reused
        self.recv = bytearray()
        self.sent = bytearray()
        self.requests = []
        self.error = None
        self.eof = False  # the router closed its side
        self.pod_closed = False
        self.switched = False
        self.tunnel_in = bytearray()
        self.tunnel_out = bytearray()
        self.unsolicited = bytearray()  # bytes the pod sent beyond its scripted responses
        self.discarded = bytearray()  # bytes received after the pod closed its side


class _PodConn:
    def __init__(self, sock, conn_id):
        self.sock = sock
        self.id = conn_id
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_EVENT)
        self.lines = _capture_lines(self.h)
        self.out = bytearray()
        self.cur = None
        self.rec = None
        self.case_no = -1
        self.broken = False  # h11 error: stop parsing
        self.switched = False
        self.closing = False  # close when out is flushed
        self.half_closed = False
        self.closed = False
        self.continue_sent = False


def listen_local():
    """A non-blocking listener on 127.0.0.1 (a free port) and a selector watching it
    (its key's data is None): (socket, port, selector)."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(512)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    return lsock, lsock.getsockname()[1], sel


class PodServer(threading.Thread):
    """Raw-socket HTTP/1.1 server on 127.0.0.1 that records every byte per connection and
    answers with the scripted responses of the current case."""

    def __init__(self, name):
        super().__init__(daemon=True, name="pod-" + name)
        self.name = name
        self.lsock, self.port, self.sel = listen_local()
        self.lock = threading.Lock()
        self.conns = {}
        self.next_id = 1
        self.case_no = 0
        self.script = None
        self.records = {}
        self.seq = 0
        self.timers = []
        self.stopping = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.accepted = 0
        self.last_io = time.monotonic()

    # ---- control (worker thread)

    def begin_case(self, script):
        with self.lock:
            self.case_no += 1
            self.script = script
            self.records = {}
            self.seq = 0
            self.timers = []

    def quiesce(self, quiet=0.05, limit=1.5):
        """Wait until the pod has read everything sent to it and nothing arrived for `quiet`
        seconds, so late bytes of this case are not taken for the next one's."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with self.lock:
                socks = [c.sock for c in self.conns.values() if not c.closed] + [self.lsock]
                idle = time.monotonic() - self.last_io
            try:
                readable, _, _ = select.select(socks, [], [], 0)
            except (OSError, ValueError):
                readable = [None]
            if not readable and idle >= quiet:
                return
            time.sleep(0.01)

    def end_case(self):
        """Stop attributing bytes to the case; close connections that are not cleanly idle
        (mid-message, switched, broken, closing) so the next case starts on a clean state."""
        self.quiesce()
        closed = 0
        with self.lock:
            recs = self.records
            self.records = {}
            self.script = None
            self.timers = []
            for c in list(self.conns.values()):
                clean = (not c.broken and not c.switched and not c.closing and not c.half_closed
                         and c.cur is None and not c.out and c.h.their_state is h11.IDLE
                         and not c.h.trailing_data[0])
                if not clean:
                    self._close(c)
                    closed += 1
        self._wake()
        if closed:
            time.sleep(0.05)  # let the router see these closes before the next case
        return sorted(recs.values(), key=lambda r: r.conn_id)

    def stop(self):
        self.stopping = True
        self._wake()

    def _wake(self):
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    # ---- loop

    def run(self):
        while not self.stopping:
            timeout = 0.05
            with self.lock:
                if self.timers:
                    timeout = max(0.0, min(t for t, _, _ in self.timers) - time.monotonic())
            for key, mask in self.sel.select(timeout):
                with self.lock:
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        try:
                            self.wake_r.recv(4096)
                        except OSError:
                            pass
                    else:
                        c = key.data
                        if c.closed:
                            continue
                        if mask & selectors.EVENT_READ:
                            self._read(c)
                        if not c.closed and mask & selectors.EVENT_WRITE:
                            self._flush(c)
            with self.lock:
                now = time.monotonic()
                due = [t for t in self.timers if t[0] <= now]
                self.timers = [t for t in self.timers if t[0] > now]
                for _, c, data in due:
                    if not c.closed and not c.half_closed:
                        self._write(c, data, unsolicited=True)
        with self.lock:
            for c in list(self.conns.values()):
                self._close(c)
        self.sel.close()
        self.lsock.close()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            self.last_io = time.monotonic()
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _PodConn(s, self.next_id)
            self.next_id += 1
            self.accepted += 1
            self.conns[c.id] = c
            self.sel.register(s, selectors.EVENT_READ, c)

    def _record(self, c):
        """The connection's record for the current case (created on first use)."""
        if self.script is None:
            return None
        if c.case_no != self.case_no:
            c.case_no = self.case_no
            c.rec = PodConnRecord(c.id, reused=c.h.their_state is h11.IDLE and c.rec is not None)
            self.records[c.id] = c.rec
        return c.rec

    def _read(self, c):
        try:
            data = c.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self.last_io = time.monotonic()
        rec = self._record(c)
        if not data:
            if rec:
                rec.eof = True
                if c.cur is not None and rec is not None:
                    c.cur.aborted = True
            self._close(c)
            return
        if rec is None:
            # Bytes outside any case (late arrivals): keep them in a throw-away record.
            rec = PodConnRecord(c.id, reused=True)
            c.rec = rec
        if c.half_closed:
            rec.discarded += data
            return
        rec.recv += data
        if c.switched:
            rec.tunnel_in += data
            return
        if c.broken:
            return
        c.h.receive_data(data)
        self._events(c, rec)

    def _events(self, c, rec):
        while True:
            try:
                ev = c.h.next_event()
            except h11.RemoteProtocolError as e:
                rec.error = "%s (after %d bytes on pod connection %d)" % (e, len(rec.recv), c.id)
                c.broken = True
                if c.cur is not None:
                    c.cur.aborted = True
                # As a strict server would: 400 and close (the case fails on rec.error anyway).
                self._write(c, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            unsolicited=True)
                c.closing = True
                if not c.out:
                    self._half_close(c)
                return
            t = type(ev)
            if t is h11.Request:
                r = PodRequest()
                r.method, r.target, r.version = ev.method, ev.target, ev.http_version
                r.headers = list(ev.headers.raw_items())
                r.raw_lines = c.lines.pop() if c.lines else []
                r.seq = self.seq
                r.conn_id = c.id
                self.seq += 1
                c.cur = r
                c.continue_sent = False
                rec.requests.append(r)
                if self.script is not None and self.script.send_continue(r):
                    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
                    r.response += cont
                    c.continue_sent = True
                    self._write(c, cont)
            elif t is h11.Data:
                c.cur.body += ev.data
            elif t is h11.EndOfMessage:
                r = c.cur
                r.trailers = list(ev.headers.raw_items())
                if ev.headers:
                    r.trailer_lines = c.lines.pop() if c.lines else []
                r.complete = True
                c.cur = None
                self._respond(c, rec, r)
                if c.closed or c.half_closed or c.switched or c.broken:
                    return
            elif t is h11.ConnectionClosed:
                return
            else:
                return

    def _respond(self, c, rec, r):
        act = self.script.respond(r) if self.script is not None else None
        if act is None:
            act = PodAction(b"HTTP/1.1 500 No Script\r\nContent-Length: 0\r\n\r\n")
        r.action = act
        r.response += act.data
        # Tell h11 our side is done so it parses the next request (or switches).
        try:
            if act.switch and r.proposes_upgrade():
                c.h.send(h11.InformationalResponse(status_code=101, headers=[("Upgrade", r.upgrade_value())]))
                c.switched = True
                rec.switched = True
                rest = c.h.trailing_data[0]
                rec.tunnel_in += rest
                rec.tunnel_out += act.tunnel_extra
            else:
                c.h.send(h11.Response(status_code=405 if r.method == b"CONNECT" else 200,
                                      headers=[("Content-Length", "0")]))
                c.h.send(h11.EndOfMessage())
                if c.h.our_state is h11.DONE and c.h.their_state is h11.DONE:
                    c.h.start_next_cycle()
        except h11.LocalProtocolError as e:
            rec.error = "pod state: %s" % e
            c.broken = True
        self._write(c, act.data)
        for delay, data in act.later:
            self.timers.append((time.monotonic() + delay, c, data))
            if c.switched:
                rec.tunnel_out += data
            else:
                r.response += data  # part of this response (or garbage after it)
        if act.close:
            c.closing = True
            if not c.out:
                self._half_close(c)

    def _write(self, c, data, unsolicited=False):
        if not data or c.closed:
            return
        if c.rec is not None:
            c.rec.sent += data
            if unsolicited and not c.switched:
                c.rec.unsolicited += data
        c.out += data
        self._flush(c)

    def _flush(self, c):
        while c.out:
            try:
                n = c.sock.send(c.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(c)
                return
            del c.out[:n]
        try:
            self.sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c)
        except (KeyError, ValueError, OSError):
            pass
        if not c.out and c.closing and not c.half_closed:
            self._half_close(c)

    def _half_close(self, c):
        c.half_closed = True
        if c.rec is not None:
            c.rec.pod_closed = True
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(c)

    def _close(self, c):
        if c.closed:
            return
        c.closed = True
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        self.conns.pop(c.id, None)


# --------------------------------------------------------------------------- client


class ClientResult:
    def __init__(self):
        self.sent = bytearray()
        self.recv = bytearray()
        self.eof = False
        self.reset = False
        self.timed_out = False
        self.connect_error = None
        self.duration = 0.0


def run_client(port, segments, stream, expected_final, quiet=1.0, grace=0.12, cap=25.0):
    """Send the segments to the router, feeding what comes back into `stream`
    (h11parse.ResponseStream). Segments: dicts {data, delay, wait}."""
    res = ClientResult()
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        res.connect_error = str(e)
        return res
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    last = [time.monotonic()]

    def pump(timeout, outbuf=None):
        """Read (and write outbuf) for up to `timeout` seconds; False once the peer closed."""
        end = time.monotonic() + timeout
        while True:
            if res.eof:
                return False
            if outbuf:
                try:
                    n = s.send(outbuf)
                    res.sent += outbuf[:n]
                    del outbuf[:n]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    res.reset = True
                    res.eof = True
                    stream.feed_eof()
                    return False
            left = end - time.monotonic()
            if left <= 0 and not outbuf:
                return True
            ev = sel.select(min(max(left, 0), 0.05) if not outbuf else 0.005)
            if ev:
                try:
                    data = s.recv(262144)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                    res.reset = True
                if data:
                    res.recv += data
                    stream.feed(data)
                    last[0] = time.monotonic()
                else:
                    res.eof = True
                    stream.feed_eof()
                    return False
            if outbuf is not None and not outbuf:
                return True
            if time.monotonic() - t0 > cap:
                res.timed_out = True
                return False

    try:
        for i, seg in enumerate(segments):
            wait = seg.get("wait")
            if wait == "interim":
                end = time.monotonic() + 1.0
                while time.monotonic() < end and stream.interim_seen == 0 and not stream.resps and pump(0.01):
                    pass
            elif wait == "switch":
                need = seg.get("need", 0)
                end = time.monotonic() + 1.5
                while (time.monotonic() < end and not res.eof and stream.error is None
                       and not (stream.switched and len(stream.tunnel) >= need)
                       and not (stream.resps and stream.resps[-1].complete and not stream.switched)
                       and pump(0.01)):
                    pass
            if seg.get("delay"):
                pump(seg["delay"])
            if res.eof:
                break
            buf = bytearray(seg["data"])
            while buf and not res.eof and not res.timed_out:
                pump(0.05, buf)
        # Wait for the answers.
        last[0] = time.monotonic()
        while not res.eof and not res.timed_out:
            if stream.error is not None:
                break
            if stream.switched:
                if time.monotonic() - last[0] > 0.4:
                    break
            elif stream.done_count() >= expected_final or stream.must_close:
                pump(grace)
                break
            if time.monotonic() - last[0] > quiet:
                res.timed_out = True
                break
            pump(0.02)
    finally:
        try:
            s.close()
        except OSError:
            pass
        sel.close()
    res.duration = time.monotonic() - t0
    return res
