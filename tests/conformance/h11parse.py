"""Strict re-parsing of HTTP/1.x byte streams with h11 (the independent parser).

Two directions:
  parse_requests(data)          what a client sent / what the pod received
  ResponseStream(metas)         what a client received / what the pod sent (incremental)

Both keep the raw head lines of every message (h11 merges duplicate Content-Length
lines and unfolds obs-fold; the framing checks need the lines as they were on the wire).
"""
import h11

MAX_EVENT = 4 * 1024 * 1024


def _capture_lines(conn):
    """Record the raw line blocks h11 extracts (heads and trailers)."""
    buf = conn._receive_buffer  # h11 0.14 (Debian python3-h11): one buffer per connection
    orig = buf.maybe_extract_lines
    store = []

    def wrapped():
        r = orig()
        if r is not None:
            store.append([bytes(x) for x in r])
        return r

    buf.maybe_extract_lines = wrapped
    return store


def header_names(raw_lines):
    """Lower-case field names of raw header lines (continuation lines skipped)."""
    out = []
    for line in raw_lines:
        if not line or line[:1] in (b" ", b"\t"):
            continue
        out.append(line.split(b":", 1)[0].strip().lower())
    return out


def comma_tokens(headers, name):
    """Comma-separated tokens of every field `name` (lower-case, stripped)."""
    out = []
    for n, v in headers:
        if n.lower() == name:
            for t in v.split(b","):
                t = t.strip().lower()
                if t:
                    out.append(t)
    return out


def values(headers, name):
    return [v for n, v in headers if n.lower() == name]


class Msg:
    """One parsed request or response."""

    def __init__(self):
        self.method = b""
        self.target = b""
        self.version = b""
        self.status = 0
        self.reason = b""
        self.headers = []  # [(raw name, value)] as h11 reports them
        self.raw_lines = []  # request/status line + header lines as received
        self.body = bytearray()
        self.trailers = []
        self.trailer_lines = []
        self.complete = False
        self.interims = []  # responses only: [(status, reason, headers)]

    def names(self):
        return header_names(self.raw_lines[1:])

    def framing_lines(self):
        n = self.names()
        return n.count(b"content-length"), n.count(b"transfer-encoding")

    def upgrade_value(self):
        v = values(self.headers, b"upgrade")
        return v[0] if v else None

    def proposes_upgrade(self):
        return self.upgrade_value() is not None

    def short(self):
        if self.method:
            return "%s %s HTTP/%s" % (
                self.method.decode("latin-1"),
                self.target[:60].decode("latin-1"),
                self.version.decode("latin-1"),
            )
        return "%d %s" % (self.status, self.reason.decode("latin-1"))


class RequestParse:
    def __init__(self):
        self.msgs = []  # complete requests
        self.partial = None  # last request if incomplete (head parsed, body not complete)
        self.error = None  # h11 error text at request index len(msgs)
        self.error_in_head = False
        self.after_close = b""  # bytes after a request that ends the connection
        self.tunnel = None  # bytes after the upgrade request (switch_at given)
        self.leftover = b""  # unparsed bytes (incomplete head)


def parse_requests(data, switch_at=None, eof=False):
    """Parse a client byte stream as a server would. Each request is answered with a
    synthetic response (101 for request `switch_at` when it proposes an upgrade)."""
    res = RequestParse()
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_EVENT)
    lines = _capture_lines(conn)
    conn.receive_data(bytes(data))
    if eof:
        conn.receive_data(b"")
    cur = None
    while True:
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError as e:
            res.error = str(e) or type(e).__name__
            res.error_in_head = cur is None
            if cur is not None:
                res.partial = cur
            return res
        t = type(ev)
        if t is h11.Request:
            cur = Msg()
            cur.method, cur.target, cur.version = ev.method, ev.target, ev.http_version
            cur.headers = list(ev.headers.raw_items())
            cur.raw_lines = lines.pop() if lines else []
        elif t is h11.Data:
            cur.body += ev.data
        elif t is h11.EndOfMessage:
            cur.trailers = list(ev.headers.raw_items())
            if ev.headers:
                cur.trailer_lines = lines.pop() if lines else []
            cur.complete = True
            res.msgs.append(cur)
            idx = len(res.msgs) - 1
            msg, cur = cur, None
            if switch_at == idx and msg.proposes_upgrade():
                conn.send(h11.InformationalResponse(status_code=101, headers=[("Upgrade", msg.upgrade_value())]))
                res.tunnel = conn.trailing_data[0]
                return res
            if msg.method == b"CONNECT":
                conn.send(h11.Response(status_code=405, headers=[("Content-Length", "0")]))
            else:
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            else:
                res.after_close = conn.trailing_data[0]
                return res
        elif ev is h11.NEED_DATA or ev is h11.PAUSED:
            if cur is not None:
                res.partial = cur
            res.leftover = conn.trailing_data[0]
            return res
        elif t is h11.ConnectionClosed:
            return res
        else:
            res.error = "unexpected event %r" % (ev,)
            return res


class ResponseStream:
    """Incremental parse of a response stream for a known list of requests.
    metas: [(method bytes, upgrade value or None)] in order."""

    def __init__(self, metas):
        self.metas = list(metas)
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_EVENT)
        self.lines = _capture_lines(self.conn)
        self.resps = []  # complete or in-progress Msg objects (final responses)
        self.cur = None
        self.pending_interims = []
        self.error = None
        self.eof = False
        self.closed_by_peer = False  # h11 saw the close at a message boundary
        self.switched = False
        self.tunnel = bytearray()
        self.extra = b""  # bytes beyond the last expected response
        self.must_close = False  # a response ended the connection (Connection: close etc.)
        self.nbytes = 0
        self.idx = 0
        self.interim_seen = 0
        self._send_next()

    def _send_next(self):
        if self.idx >= len(self.metas):
            return False
        method, upgrade = self.metas[self.idx]
        hdrs = [("Host", "x")]
        if upgrade is not None:
            hdrs += [("Connection", "upgrade"), ("Upgrade", upgrade)]
        self.conn.send(h11.Request(method=method, target="/", headers=hdrs))
        self.conn.send(h11.EndOfMessage())
        return True

    def done_count(self):
        return sum(1 for r in self.resps if r.complete)

    def feed(self, data):
        if self.error or self.eof:
            if data:
                self.extra += bytes(data)
            return
        self.nbytes += len(data)
        if self.switched:
            self.tunnel += data
            return
        if self.idx >= len(self.metas) or self.must_close:
            self.extra += bytes(data)
            return
        self.conn.receive_data(bytes(data))
        self._pump()

    def feed_eof(self):
        if self.eof:
            return
        self.eof = True
        if self.switched or self.error or self.idx >= len(self.metas) or self.must_close:
            return
        self.conn.receive_data(b"")
        self._pump()

    def _pump(self):
        while True:
            try:
                ev = self.conn.next_event()
            except (h11.RemoteProtocolError, h11.LocalProtocolError) as e:
                self.error = str(e) or type(e).__name__
                return
            t = type(ev)
            if t is h11.InformationalResponse:
                self.interim_seen += 1
                raw = self.lines.pop() if self.lines else []
                self.pending_interims.append((ev.status_code, ev.reason, list(ev.headers.raw_items()), raw))
                if ev.status_code == 101:
                    m = Msg()
                    m.status, m.reason, m.version = 101, ev.reason, ev.http_version
                    m.headers = list(ev.headers.raw_items())
                    m.raw_lines = raw
                    m.interims = self.pending_interims[:-1]
                    m.complete = True
                    self.pending_interims = []
                    self.resps.append(m)
                    self.switched = True
                    self.tunnel += self.conn.trailing_data[0]
                    return
            elif t is h11.Response:
                m = Msg()
                m.status, m.reason, m.version = ev.status_code, ev.reason, ev.http_version
                m.headers = list(ev.headers.raw_items())
                m.raw_lines = self.lines.pop() if self.lines else []
                m.interims = self.pending_interims
                self.pending_interims = []
                self.cur = m
                self.resps.append(m)
            elif t is h11.Data:
                self.cur.body += ev.data
            elif t is h11.EndOfMessage:
                self.cur.trailers = list(ev.headers.raw_items())
                if ev.headers:
                    self.cur.trailer_lines = self.lines.pop() if self.lines else []
                self.cur.complete = True
                self.cur = None
                self.idx += 1
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                    if not self._send_next():
                        self.extra += self.conn.trailing_data[0]
                        return
                elif self.conn.their_state is h11.SWITCHED_PROTOCOL:
                    # CONNECT accepted with a 2xx
                    self.switched = True
                    self.tunnel += self.conn.trailing_data[0]
                    return
                else:
                    self.must_close = True
                    self.extra += self.conn.trailing_data[0]
                    return
            elif t is h11.ConnectionClosed:
                self.closed_by_peer = True
                return
            else:  # NEED_DATA / PAUSED
                return
