"""Generated cases: client mutation families and hostile pod responses.

A case is the bytes a client sends (in one or more writes), the pod's script, and where
SPEC v1.1 §3.4/§3.5 requires a rejection (reject_at: index of the request that must get
400 bad_request + close with nothing forwarded)."""
import re

from h11parse import comma_tokens, values
from harness import PodAction

HOST = b"conf.test"


class PodScript:
    """How the capture pod answers: responder(req, seq) -> PodAction."""

    def __init__(self, responder=None, cont=True, label="normal"):
        self.responder = responder or normal_responder
        self.cont = cont
        self.label = label

    def respond(self, req):
        return self.responder(req, req.seq)

    def send_continue(self, req):
        return self.cont and b"100-continue" in [v.strip().lower() for v in values(req.headers, b"expect")]


class Case:
    def __init__(self, family, name, segments, pod=None, reject_at=None, note="", pod_may_refuse=False,
                 unforwarded_502_ok=False):
        self.family = family
        # The pod's response is valid for h11 but ambiguous or over a limit (RFC 9110 §8.6,
        # RFC 9112 §6.3): a local 502 is as good as relaying it.
        self.pod_may_refuse = pod_may_refuse
        # The pod closes connections without announcing it: SPEC §3.5 lets the router either
        # resend a request whole on a fresh connection or not retry it (502).
        self.unforwarded_502_ok = unforwarded_502_ok
        self.name = family + "." + re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
        self.segments = segments
        self.pod = pod or PodScript()
        self.reject_at = reject_at
        self.note = note
        self.weight = sum(len(s["data"]) for s in segments)

    def client_bytes(self):
        return b"".join(s["data"] for s in self.segments)


def seg(data, delay=0.0, wait=None, need=0):
    return {"data": data, "delay": delay, "wait": wait, "need": need}


# ---------------------------------------------------------------- pod responses


def body_for(req, seq):
    t = bytes(req.target[:100])
    return b"pod#%d %s %s\n" % (seq, bytes(req.method), t)


def response(status=b"200 OK", headers=b"", body=b"", head=False, version=b"HTTP/1.1"):
    h = version + b" " + status + b"\r\nContent-Type: text/plain\r\n" + headers
    h += b"Content-Length: %d\r\n\r\n" % len(body)
    return h + (b"" if head else body)


def wants_upgrade(req):
    return req.proposes_upgrade() and b"upgrade" in comma_tokens(req.headers, b"connection")


def switch_action(req, extra=b"", later=None, close=False, with_upgrade=True):
    up = req.upgrade_value() or b"websocket"
    head = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
    if with_upgrade:
        head += b"Upgrade: " + up + b"\r\n"
    head += b"X-Pod-Seq: 0\r\n\r\n"
    act = PodAction(head + extra, switch=True, later=later or [], close=close)
    act.tunnel_extra = extra
    return act


def normal_responder(req, seq):
    if req.method == b"CONNECT":
        return PodAction(response(b"405 Method Not Allowed", body=b"no CONNECT here\n"))
    if wants_upgrade(req):
        return switch_action(req, extra=b"pod-hello")
    return PodAction(response(headers=b"X-Pod-Seq: %d\r\n" % seq, body=body_for(req, seq),
                              head=req.method == b"HEAD"))


# ---------------------------------------------------------------- client requests


def req(method=b"GET", target=b"/", headers=None, body=b"", version=b"HTTP/1.1", host=HOST, cl=None):
    """A request; headers are raw lines (bytes, without CRLF). cl=True adds Content-Length."""
    lines = [method + b" " + target + b" " + version]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += headers or []
    if cl or (cl is None and body):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*parts, trailer=b"", ext=b""):
    out = b""
    for p in parts:
        out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    return out + b"0\r\n" + trailer + b"\r\n"


SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: conf.test\r\nX-Smuggled: yes\r\n\r\n"
NEXT = req(b"GET", b"/next", [b"X-Order: 2"])


def one(family, name, data, **kw):
    return Case(family, name, [seg(data)], **kw)


# ---------------------------------------------------------------- families


def fam_cl_te():
    f = "cl-te"
    out = []
    body = b"hello"
    cl_vals = {
        "plain": b"Content-Length: 5",
        "lower": b"content-length: 5",
        "upper": b"CONTENT-LENGTH: 5",
        "nospace": b"Content-Length:5",
        "ows": b"Content-Length: \t5 \t",
        "leading-zeros": b"Content-Length: 0005",
        "plus": b"Content-Length: +5",
        "minus": b"Content-Length: -5",
        "hex": b"Content-Length: 0x5",
        "decimal": b"Content-Length: 5.0",
        "exp": b"Content-Length: 5e0",
        "space-inside": b"Content-Length: 5 5",
        "comma-same": b"Content-Length: 5, 5",
        "comma-diff": b"Content-Length: 5, 6",
        "comma-trailing": b"Content-Length: 5,",
        "empty": b"Content-Length: ",
        "huge": b"Content-Length: 99999999999999999999999",
        "u64-overflow": b"Content-Length: 18446744073709551621",
        "vt": b"Content-Length: 5\x0b",
        "letters": b"Content-Length: five",
    }
    for name, line in cl_vals.items():
        out.append(one(f, "cl-" + name, req(b"POST", b"/cl", [line], body, cl=False) + NEXT))
    dup = {
        "dup-same": [b"Content-Length: 5", b"Content-Length: 5"],
        "dup-diff": [b"Content-Length: 5", b"Content-Length: 6"],
        "dup-diff-rev": [b"Content-Length: 6", b"Content-Length: 5"],
        "dup-zero": [b"Content-Length: 0", b"Content-Length: 5"],
        "dup-case": [b"Content-Length: 5", b"content-LENGTH: 6"],
    }
    for name, lines in dup.items():
        out.append(one(f, "cl-" + name, req(b"POST", b"/cl", lines, body + b"X", cl=False) + NEXT))
    # The body looks like a request: a desync makes the pod see it.
    out.append(one(f, "cl-body-is-request", req(b"POST", b"/cl", [], SMUGGLE)))
    out.append(one(f, "cl-short-then-request", req(b"POST", b"/cl", [b"Content-Length: 5"], b"hello" + SMUGGLE, cl=False)))
    te_vals = {
        "chunked": b"chunked",
        "Chunked": b"Chunked",
        "CHUNKED": b"CHUNKED",
        "lead-space": b" chunked",
        "lead-tab": b"\tchunked",
        "trail-space": b"chunked ",
        "gzip-chunked": b"gzip, chunked",
        "chunked-gzip": b"chunked, gzip",
        "chunked-chunked": b"chunked, chunked",
        "identity-chunked": b"identity, chunked",
        "identity": b"identity",
        "x-chunked": b"xchunked",
        "chunked-x": b"chunkedx",
        "quoted": b"\"chunked\"",
        "params": b"chunked;q=1",
        "comma-lead": b", chunked",
        "vt": b"chunked\x0b",
        "empty": b"",
    }
    cbody = chunked(b"hello", b" world")
    for name, v in te_vals.items():
        out.append(one(f, "te-" + name, req(b"POST", b"/te", [b"Transfer-Encoding: " + v], cbody, cl=False) + NEXT))
    # Two Transfer-Encoding lines.
    for name, (a, b) in {"two-chunked": (b"chunked", b"chunked"), "gzip-then-chunked": (b"gzip", b"chunked"),
                         "chunked-then-gzip": (b"chunked", b"gzip")}.items():
        out.append(one(f, "te-" + name, req(b"POST", b"/te", [b"Transfer-Encoding: " + a, b"Transfer-Encoding: " + b],
                                             cbody, cl=False) + NEXT))
    # TE + CL: SPEC §3.4 rejects both.
    smug_chunked = chunked(b"hello") + SMUGGLE
    tecl = {
        "cl-then-te": ([b"Content-Length: 4", b"Transfer-Encoding: chunked"], cbody),
        "te-then-cl": ([b"Transfer-Encoding: chunked", b"Content-Length: 4"], cbody),
        "cl0-te": ([b"Content-Length: 0", b"Transfer-Encoding: chunked"], cbody),
        "cl-exact-te": ([b"Content-Length: %d" % len(cbody), b"Transfer-Encoding: chunked"], cbody),
        "cl-te-smuggle": ([b"Content-Length: %d" % len(chunked(b"hello")), b"Transfer-Encoding: chunked"], smug_chunked),
        "te-space-cl": ([b"Transfer-Encoding:  chunked", b"Content-Length: 3"], cbody),
        "te-Chunked-cl": ([b"Transfer-Encoding: Chunked", b"Content-Length: 3"], cbody),
        "te-gzip-chunked-cl": ([b"Transfer-Encoding: gzip, chunked", b"Content-Length: 3"], cbody),
    }
    for name, (lines, b) in tecl.items():
        out.append(one(f, "tecl-" + name, req(b"POST", b"/tecl", lines, b, cl=False) + NEXT, reject_at=0))
    # Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: faulty framing).
    out.append(one(f, "te-http10", req(b"POST", b"/te10", [b"Transfer-Encoding: chunked"], cbody, version=b"HTTP/1.0", cl=False)))
    # A look-alike field name must not frame anything.
    out.append(one(f, "te-underscore", req(b"POST", b"/te", [b"Transfer_Encoding: chunked", b"Content-Length: 5"], b"hello", cl=False) + NEXT))
    out.append(one(f, "cl-underscore", req(b"POST", b"/cl", [b"Content_Length: 5"], b"", cl=False) + NEXT))
    # GET/HEAD/DELETE with bodies.
    out.append(one(f, "get-with-body", req(b"GET", b"/gb", [], b"body!") + NEXT))
    out.append(one(f, "delete-with-chunked", req(b"DELETE", b"/d", [b"Transfer-Encoding: chunked"], cbody, cl=False) + NEXT))
    out.append(one(f, "post-no-framing", req(b"POST", b"/nf", [], b"", cl=False) + NEXT))
    out.append(one(f, "post-cl0", req(b"POST", b"/z", [b"Content-Length: 0"], b"", cl=False) + NEXT))
    out.append(one(f, "post-big-cl", req(b"POST", b"/big", [], b"B" * 70000) + NEXT))
    out.append(one(f, "post-big-chunked", req(b"POST", b"/bigc", [b"Transfer-Encoding: chunked"],
                                              chunked(*([b"C" * 8000] * 9)), cl=False) + NEXT))
    return out


def fam_connection():
    f = "connection"
    out = []
    body = b"GET /evil HTTP/1.1\r\nHost: conf.test\r\n\r\n"
    mand = {
        "content-length": [b"Connection: Content-Length"],
        "close-content-length": [b"Connection: close, content-length"],
        "CONTENT-LENGTH": [b"Connection: CONTENT-LENGTH"],
        "comma-content-length": [b"Connection: ,content-length"],
        "second-line-cl": [b"Connection: keep-alive", b"Connection: Content-Length"],
        "transfer-encoding": [b"Connection: Transfer-Encoding"],
        "host": [b"Connection: Host"],
        "keepalive-host": [b"Connection: keep-alive, Host"],
    }
    for name, lines in mand.items():
        if "transfer" in name:
            b = req(b"POST", b"/c", lines + [b"Transfer-Encoding: chunked"], chunked(body), cl=False)
        else:
            b = req(b"POST", b"/c", lines + [b"Content-Length: %d" % len(body)], body, cl=False)
        out.append(one(f, name, b + NEXT, reject_at=0))
    ok = {
        "close": ([b"Connection: close"], False),
        "keep-alive": ([b"Connection: keep-alive"], True),
        "x-custom": ([b"Connection: X-Secret", b"X-Secret: s3cr3t", b"X-Public: yes"], True),
        "x-custom-case": ([b"Connection: x-SECRET", b"X-Secret: s3cr3t"], True),
        "two-lines": ([b"Connection: X-A", b"Connection: X-B", b"X-A: a", b"X-B: b", b"X-C: c"], True),
        "keep-alive-header": ([b"Connection: keep-alive, Keep-Alive", b"Keep-Alive: timeout=5"], True),
        "keep-alive-unnamed": ([b"Keep-Alive: timeout=5"], True),
        "proxy-connection": ([b"Proxy-Connection: keep-alive"], True),
        "te-trailers": ([b"Connection: TE", b"TE: trailers"], True),
        "upgrade-only-token": ([b"Connection: Upgrade"], True),
        "x-forwarded-for": ([b"Connection: X-Forwarded-For", b"X-Forwarded-For: 203.0.113.9"], True),
        "x-request-id": ([b"Connection: X-Request-Id", b"X-Request-Id: mine-123"], True),
        "x-forwarded-host": ([b"Connection: X-Forwarded-Host", b"X-Forwarded-Host: spoof.example"], True),
        "empty": ([b"Connection: "], True),
        "commas": ([b"Connection: ,,, ,"], True),
    }
    for name, (lines, pipe) in ok.items():
        b = req(b"POST", b"/c", lines, b"hello")
        out.append(one(f, name, b + (NEXT if pipe else b"")))
    return out


def fam_obs_fold():
    f = "obs-fold"
    out = []
    cases = {
        "custom-space": [b"X-Folded: a", b" b"],
        "custom-tab": [b"X-Folded: a", b"\tb"],
        "custom-multi": [b"X-Folded: a", b" b", b"\t c"],
        "custom-empty-cont": [b"X-Folded: a", b" "],
        "xfh-space": [b"X-Forwarded-Host: a.example", b" b.example"],
        "xfh-tab": [b"X-Forwarded-Host: a.example", b"\tb.example"],
        "host": [b"X-A: 1", b" Host: other.example"],
        "cl-fold": [b"Content-Length: 5", b" 0"],
        "te-fold": [b"Transfer-Encoding: gzip", b" chunked"],
        "first-line": [b" X-Folded: first"],
        "xff": [b"X-Forwarded-For: 198.51.100.1", b" 198.51.100.2"],
        "xrid": [b"X-Request-Id: abc", b"\tdef"],
    }
    for name, lines in cases.items():
        out.append(one(f, name, req(b"POST", b"/fold", lines, b"hello") + NEXT, reject_at=0))
    for name, cont in (("upgrade-space", b" h2c"), ("upgrade-tab", b"\th2c")):
        b = req(b"GET", b"/ws", [b"Connection: Upgrade", b"Upgrade: websocket", cont,
                                 b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="])
        out.append(one(f, name, b, reject_at=0))
    # After a valid request on the same connection: the first is answered, the second rejected.
    out.append(one(f, "second-request", req(b"GET", b"/ok") + req(b"GET", b"/fold", [b"X-F: a", b" b"]), reject_at=1))
    return out


def fam_whitespace():
    f = "whitespace"
    out = []
    bad = {
        "space-before-colon-host": b"GET /w HTTP/1.1\r\nHost : conf.test\r\n\r\n",
        "space-before-colon-cl": b"POST /w HTTP/1.1\r\nHost: conf.test\r\nContent-Length : 5\r\n\r\nhello",
        "space-before-colon-te": b"POST /w HTTP/1.1\r\nHost: conf.test\r\nTransfer-Encoding : chunked\r\n\r\n" + chunked(b"hello"),
        "tab-before-colon": b"GET /w HTTP/1.1\r\nHost: conf.test\r\nX-A\t: 1\r\n\r\n",
        "empty-name": b"GET /w HTTP/1.1\r\nHost: conf.test\r\n: value\r\n\r\n",
        "name-with-space": b"GET /w HTTP/1.1\r\nHost: conf.test\r\nX Foo: bar\r\n\r\n",
        "no-colon": b"GET /w HTTP/1.1\r\nHost: conf.test\r\nJustAName\r\n\r\n",
        "name-slash": b"GET /w HTTP/1.1\r\nHost: conf.test\r\nX/Y: 1\r\n\r\n",
        "name-paren": b"GET /w HTTP/1.1\r\nHost: conf.test\r\nX(Y): 1\r\n\r\n",
        "name-utf8": b"GET /w HTTP/1.1\r\nHost: conf.test\r\nX-\xc3\xa9: 1\r\n\r\n",
        "double-space-request-line": b"GET  /w HTTP/1.1\r\nHost: conf.test\r\n\r\n",
        "tab-request-line": b"GET\t/w\tHTTP/1.1\r\nHost: conf.test\r\n\r\n",
        "trailing-space-version": b"GET /w HTTP/1.1 \r\nHost: conf.test\r\n\r\n",
        "leading-space-method": b" GET /w HTTP/1.1\r\nHost: conf.test\r\n\r\n",
        "space-in-target": b"GET /a b HTTP/1.1\r\nHost: conf.test\r\n\r\n",
        "bare-lf-all": b"GET /w HTTP/1.1\nHost: conf.test\nX-A: 1\n\n",
        "bare-lf-one": b"GET /w HTTP/1.1\r\nHost: conf.test\nX-A: 1\r\n\r\n",
        "bare-cr-line-end": b"GET /w HTTP/1.1\rHost: conf.test\r\n\r\n",
        "lf-before-body": b"POST /w HTTP/1.1\r\nHost: conf.test\r\nContent-Length: 5\r\n\nhello",
    }
    for name, data in bad.items():
        out.append(one(f, name, data + NEXT))
    good = {
        "value-ows": [b"X-Ows: \t padded \t "],
        "value-empty": [b"X-Empty:"],
        "value-spaces-only": [b"X-Spaces:    "],
        "value-internal-tabs": [b"X-Tabs: a\t\tb"],
        "name-case": [b"x-lower: 1", b"X-UPPER: 2", b"X-MiXeD: 3"],
        "name-tchars": [b"X-!#$%&'*+.^_`|~: tchars"],
        "long-value-10k": [b"X-Long: " + b"v" * 10000],
        "many-headers": [b"X-H%03d: %d" % (i, i) for i in range(90)],
        "dup-custom": [b"X-Dup: 1", b"X-Dup: 2", b"x-dup: 3"],
        "obs-text": [b"X-Obs: caf\xe9 \xff"],
        "value-quotes": [b"X-Q: \"quoted, with comma\""],
    }
    for name, lines in good.items():
        out.append(one(f, name, req(b"POST", b"/w", lines, b"hello") + NEXT))
    return out


def fam_ctl():
    f = "ctl"
    out = []
    # CR and NUL inside a name or value: SPEC §3.5 requires 400 + close.
    mand = {
        "cr-in-value": b"X-A: a\rb",
        "cr-in-value-end": b"X-A: ab\r",
        "nul-in-value": b"X-A: a\x00b",
        "nul-value-end": b"X-A: ab\x00",
        "nul-in-name": b"X-\x00A: 1",
        "cr-in-name": b"X-\rA: 1",
        "cr-starts-line": b"X-A: a\r\n\rX-B: b",
        "cr-in-xfh": b"X-Forwarded-Host: a\rb",
        "nul-in-cl": b"Content-Length: 5\x00",
    }
    for name, line in mand.items():
        out.append(one(f, name, req(b"POST", b"/ctl", [line], b"hello", cl=b"Content-Length" not in line) + NEXT,
                       reject_at=0))
    other = {
        "lf-in-value": b"X-A: a\nX-Injected: b",
        "lf-in-name": b"X-\nA: 1",
        "soh-in-value": b"X-A: a\x01b",
        "del-in-value": b"X-A: a\x7fb",
        "esc-in-value": b"X-A: \x1b[31mred",
        "vt-in-value": b"X-A: a\x0bb",
        "ff-in-value": b"X-A: a\x0cb",
        "high-bit-name": b"X-\xffA: 1",
    }
    for name, line in other.items():
        out.append(one(f, name, req(b"POST", b"/ctl", [line], b"hello") + NEXT))
    targets = {
        "nul-in-target": b"/a\x00b",
        "cr-in-target": b"/a\rb",
        "del-in-target": b"/a\x7fb",
        "utf8-target": b"/caf\xc3\xa9",
        "fragment": b"/a#frag",
        "absolute-form": b"http://other.example/abs",
        "asterisk": b"*",
        "authority": b"conf.test:80",
        "long-target-8k": b"/" + b"t" * 8000,
        "backslash": b"/a\\b",
        "dotdot": b"/../../etc/passwd",
        "encoded-crlf": b"/a%0d%0aX-Injected:%20b",
    }
    for name, t in targets.items():
        method = b"OPTIONS" if t == b"*" else b"GET"
        out.append(one(f, name, req(method, t) + NEXT))
    return out


def fam_chunked():
    f = "chunked"
    out = []
    te = [b"Transfer-Encoding: chunked"]

    def post(name, body, segs=None, **kw):
        if segs:
            out.append(Case(f, name, segs, **kw))
        else:
            out.append(one(f, name, req(b"POST", b"/ch", te, body, cl=False) + NEXT, **kw))

    post("simple", chunked(b"hello", b"world"))
    post("one-byte-chunks", chunked(*[bytes([c]) for c in b"abcdefghij"]))
    post("upper-hex", b"A\r\n0123456789\r\n0\r\n\r\n")
    post("leading-zeros", b"0005\r\nhello\r\n0000\r\n\r\n")
    post("many-zeros", b"00000000000000000005\r\nhello\r\n0\r\n\r\n")
    post("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n")
    post("size-negative", b"-5\r\nhello\r\n0\r\n\r\n")
    post("size-plus", b"+5\r\nhello\r\n0\r\n\r\n")
    post("size-overflow", b"ffffffffffffffffffff5\r\nhello\r\n0\r\n\r\n")
    post("size-u64-wrap", b"10000000000000005\r\nhello\r\n0\r\n\r\n")
    post("size-trailing-space", b"5 \r\nhello\r\n0\r\n\r\n")
    post("size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n")
    post("size-tab", b"5\t\r\nhello\r\n0\r\n\r\n")
    post("size-empty", b"\r\nhello\r\n0\r\n\r\n")
    post("size-letters", b"g\r\nhello\r\n0\r\n\r\n")
    post("ext-simple", b"5;name=value\r\nhello\r\n0\r\n\r\n")
    post("ext-quoted", b"5;name=\"quoted;value\"\r\nhello\r\n0;last\r\n\r\n")
    post("ext-bare", b"5;\r\nhello\r\n0\r\n\r\n")
    post("ext-space", b"5 ;ext\r\nhello\r\n0\r\n\r\n")
    post("ext-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n")
    post("ext-lf", b"5;a\nb\r\nhello\r\n0\r\n\r\n")
    post("ext-nul", b"5;a\x00b\r\nhello\r\n0\r\n\r\n")
    post("ext-4k", b"5;" + b"e" * 4000 + b"\r\nhello\r\n0\r\n\r\n")
    post("data-longer-than-size", b"5\r\nhelloXX\r\n0\r\n\r\n")
    post("data-shorter-than-size", b"7\r\nhello\r\n0\r\n\r\n")
    post("missing-crlf-after-data", b"5\r\nhello0\r\n\r\n")
    post("lf-only", b"5\nhello\n0\n\n")
    post("lf-after-data", b"5\r\nhello\n0\r\n\r\n")
    post("cr-only-after-size", b"5\rhello\r\n0\r\n\r\n")
    post("last-chunk-no-final-crlf-then-request", b"5\r\nhello\r\n0\r\n" + NEXT)
    post("zero-then-body-request", b"0\r\n\r\n" + SMUGGLE)
    post("trailer-simple", chunked(b"hello", trailer=b"X-Trailer: t1\r\n"))
    post("trailer-many", chunked(b"hello", trailer=b"".join(b"X-T%02d: %d\r\n" % (i, i) for i in range(60))))
    post("trailer-content-length", chunked(b"hello", trailer=b"Content-Length: 999\r\n"))
    post("trailer-transfer-encoding", chunked(b"hello", trailer=b"Transfer-Encoding: chunked\r\n"))
    post("trailer-host", chunked(b"hello", trailer=b"Host: evil.example\r\n"))
    post("trailer-obs-fold", chunked(b"hello", trailer=b"X-T: a\r\n b\r\n"))
    post("trailer-nul", chunked(b"hello", trailer=b"X-T: a\x00b\r\n"))
    post("trailer-space-colon", chunked(b"hello", trailer=b"X-T : a\r\n"))
    post("trailer-no-colon", chunked(b"hello", trailer=b"garbage-line\r\n"))
    post("trailer-looks-like-request", chunked(b"hello", trailer=b"GET /t HTTP/1.1\r\nHost: x\r\n"))
    big = b"X-Big: " + b"b" * 20000 + b"\r\n"
    post("trailer-20k-one-write", chunked(b"hello", trailer=big))
    head = req(b"POST", b"/ch", te, b"", cl=False)
    body = chunked(b"hello", trailer=big)
    # The trailer arrives in later reads (the head and first chunk first).
    post("trailer-20k-split", None, segs=[seg(head + b"5\r\nhello\r\n0\r\n"), seg(big[:7000], delay=0.03),
                                         seg(big[7000:14000], delay=0.03), seg(big[14000:] + b"\r\n" + NEXT, delay=0.03)])
    post("trailer-20k-late", None, segs=[seg(head + body[:20]), seg(body[20:] + NEXT, delay=0.05)])
    many = b"X-M: " + b"m" * 200 + b"\r\n"
    post("trailer-100x200", chunked(b"hello", trailer=many * 100))
    return out


def fam_version():
    f = "version"
    out = []
    out.append(one(f, "http09", b"GET /x\r\n", reject_at=0))
    out.append(one(f, "http09-blank", b"GET /x\r\n\r\n", reject_at=0))
    out.append(one(f, "http09-then-request", b"GET /x\r\n" + NEXT, reject_at=0))
    out.append(one(f, "no-version-headers", b"GET /x\r\nHost: conf.test\r\n\r\n", reject_at=0))
    variants = {
        "1.0": b"HTTP/1.0", "1.1": b"HTTP/1.1", "2.0": b"HTTP/2.0", "1.2": b"HTTP/1.2", "0.9": b"HTTP/0.9",
        "3.0": b"HTTP/3.0", "9.9": b"HTTP/9.9", "lower": b"http/1.1", "1.1.1": b"HTTP/1.1.1", "11": b"HTTP/11",
        "1.01": b"HTTP/1.01", "space": b"HTTP/ 1.1", "junk": b"FOO/1.1", "HTTPS": b"HTTPS/1.1", "bare": b"HTTP",
        "1": b"HTTP/1", "minus": b"HTTP/-1.1",
    }
    for name, v in variants.items():
        out.append(one(f, "v-" + name, req(b"GET", b"/v", [b"X-V: 1"], version=v)))
    out.append(one(f, "1.0-no-host", req(b"GET", b"/v10", [], version=b"HTTP/1.0", host=None)))
    out.append(one(f, "1.0-post", req(b"POST", b"/v10", [], b"hello", version=b"HTTP/1.0")))
    out.append(one(f, "1.0-keepalive", req(b"GET", b"/v10", [b"Connection: keep-alive"], version=b"HTTP/1.0")))
    out.append(one(f, "1.0-then-1.1", req(b"GET", b"/v10", [], version=b"HTTP/1.0") + NEXT))
    out.append(one(f, "h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
    for name, m in {"lower-get": b"get", "unknown": b"FOO", "nul-method": b"G\x00ET", "long-method": b"X" * 300,
                    "trace": b"TRACE", "options": b"OPTIONS", "patch": b"PATCH", "head": b"HEAD",
                    "propfind": b"PROPFIND", "method-tchars": b"M-E_T.H~"}.items():
        out.append(one(f, "method-" + name, req(m, b"/m", [b"X-M: 1"]) + NEXT))
    out.append(one(f, "connect", req(b"CONNECT", b"conf.test:443", [])))
    return out


def fam_host():
    f = "host"
    out = []
    out.append(one(f, "none", req(b"GET", b"/h", [b"X-A: 1"], host=None), reject_at=0))
    out.append(one(f, "two-same", req(b"GET", b"/h", [b"Host: conf.test"]), reject_at=0))
    out.append(one(f, "two-different", req(b"GET", b"/h", [b"Host: evil.example"]), reject_at=0))
    out.append(one(f, "two-case", req(b"GET", b"/h", [b"host: evil.example"]), reject_at=0))
    out.append(one(f, "none-post", req(b"POST", b"/h", [], b"hello", host=None) + NEXT, reject_at=0))
    out.append(one(f, "none-second", NEXT + req(b"GET", b"/h2", [], host=None), reject_at=1))
    for name, h in {"empty": b"", "port": b"conf.test:8080", "ipv4": b"192.0.2.1", "ipv6": b"[::1]:3001",
                    "userinfo": b"user@conf.test", "space": b"conf test", "trailing-dot": b"conf.test.",
                    "long": b"h" * 2000 + b".test", "utf8": b"caf\xc3\xa9.test"}.items():
        out.append(one(f, name, req(b"GET", b"/h", [], host=h) + NEXT))
    out.append(one(f, "absolute-form-mismatch", req(b"GET", b"http://other.example/h", []) + NEXT))
    return out


def fam_expect():
    f = "expect"
    out = []
    h = [b"Expect: 100-continue"]
    head = req(b"POST", b"/e", h + [b"Content-Length: 5"], b"", cl=False)
    out.append(Case(f, "wait-for-100", [seg(head), seg(b"hello" + NEXT, wait="interim")]))
    out.append(one(f, "all-at-once", head + b"hello" + NEXT))
    out.append(Case(f, "pod-no-100", [seg(head), seg(b"hello" + NEXT, wait="interim")], pod=PodScript(cont=False)))
    out.append(one(f, "get-no-body", req(b"GET", b"/e", h) + NEXT))
    out.append(one(f, "chunked", req(b"POST", b"/e", h + [b"Transfer-Encoding: chunked"], chunked(b"hello"), cl=False) + NEXT))
    out.append(one(f, "unknown-expectation", req(b"POST", b"/e", [b"Expect: 200-ok"], b"hello") + NEXT))
    out.append(one(f, "case", req(b"POST", b"/e", [b"Expect: 100-Continue"], b"hello") + NEXT))
    out.append(one(f, "http10", req(b"POST", b"/e", h, b"hello", version=b"HTTP/1.0")))
    return out


WS = [b"Connection: Upgrade", b"Upgrade: websocket", b"Sec-WebSocket-Version: 13",
      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
FRAME = b"\x81\x05hello"


def fam_upgrade():
    f = "upgrade"
    out = []
    ws = req(b"GET", b"/socket.io/?EIO=4&transport=websocket", WS)
    out.append(Case(f, "websocket", [seg(ws), seg(FRAME, wait="switch", need=9)]))
    out.append(Case(f, "websocket-early-bytes", [seg(ws + FRAME), seg(b"\x81\x03bye", wait="switch", need=9)]))
    out.append(Case(f, "websocket-request-looking-bytes", [seg(ws), seg(SMUGGLE, wait="switch", need=9)]))
    out.append(Case(f, "post-cl-body", [seg(req(b"POST", b"/up", WS, b"hello")), seg(FRAME, wait="switch", need=9)]))
    out.append(Case(f, "post-chunked-body", [seg(req(b"POST", b"/up", WS + [b"Transfer-Encoding: chunked"], chunked(b"hello"), cl=False)),
                                             seg(FRAME, wait="switch", need=9)]))
    out.append(Case(f, "post-body-and-early-bytes", [seg(req(b"POST", b"/up", WS, b"hello") + FRAME),
                                                     seg(FRAME, wait="switch", need=9)]))
    refuse = PodScript(lambda r, s: PodAction(response(b"200 OK", b"X-Refused: 1\r\n", body_for(r, s))), label="refuse-upgrade")
    out.append(one(f, "refused-then-get", ws + NEXT, pod=refuse))
    out.append(one(f, "refused-then-bytes", ws + SMUGGLE, pod=refuse))
    out.append(one(f, "h2c-refused", req(b"GET", b"/h2c", [b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c",
                                                        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]) + NEXT, pod=refuse))
    out.append(one(f, "upgrade-without-connection", req(b"GET", b"/u", [b"Upgrade: websocket"]) + NEXT))
    out.append(one(f, "connection-without-upgrade", req(b"GET", b"/u", [b"Connection: Upgrade"]) + NEXT))
    out.append(Case(f, "two-upgrade-values", [seg(req(b"GET", b"/u", [b"Connection: Upgrade", b"Upgrade: websocket, h2c"])),
                                              seg(FRAME, wait="switch", need=9)]))
    out.append(Case(f, "after-get", [seg(NEXT + ws), seg(FRAME, wait="switch", need=9)]))
    return out


def fam_forwarded():
    f = "forwarded"
    out = []
    cases = {
        "xff-one": [b"X-Forwarded-For: 203.0.113.7"],
        "xff-list": [b"X-Forwarded-For: 203.0.113.7, 198.51.100.3"],
        "xff-two-lines": [b"X-Forwarded-For: 203.0.113.7", b"X-Forwarded-For: 198.51.100.3"],
        "xff-empty": [b"X-Forwarded-For: "],
        "xff-junk": [b"X-Forwarded-For: not-an-ip"],
        "xfp-https": [b"X-Forwarded-Proto: https"],
        "xfp-two": [b"X-Forwarded-Proto: https", b"X-Forwarded-Proto: http"],
        "xfh": [b"X-Forwarded-Host: front.example"],
        "xfh-two": [b"X-Forwarded-Host: a.example", b"X-Forwarded-Host: b.example"],
        "rid-valid": [b"X-Request-Id: client-rid-42"],
        "rid-space": [b"X-Request-Id: has space"],
        "rid-empty": [b"X-Request-Id: "],
        "rid-long": [b"X-Request-Id: " + b"r" * 200],
        "rid-two": [b"X-Request-Id: a1", b"X-Request-Id: b2"],
        "pod-header-spoof": [b"X-Pod-Router-Pod: backend-9"],
        "lowercase-names": [b"x-forwarded-for: 203.0.113.8", b"x-forwarded-proto: https", b"x-request-id: low-1"],
    }
    for name, lines in cases.items():
        out.append(one(f, name, req(b"GET", b"/fw", lines) + NEXT))
    hop = {
        "keep-alive": [b"Keep-Alive: timeout=5"],
        "proxy-connection": [b"Proxy-Connection: keep-alive"],
        "te": [b"TE: trailers"],
        "trailer": [b"Trailer: X-T"],
        "proxy-authorization": [b"Proxy-Authorization: Basic Zm9vOmJhcg=="],
        "upgrade-no-conn": [b"Upgrade: foo/1"],
    }
    for name, lines in hop.items():
        out.append(one(f, "hop-" + name, req(b"GET", b"/hop", lines) + NEXT))
    return out


def fam_pipeline():
    f = "pipeline"
    out = []

    def gets(n, pad=0, prefix=b"/p"):
        return b"".join(req(b"GET", b"%s/%04d" % (prefix, i), [b"X-Pad: " + b"p" * pad] if pad else []) for i in range(n))

    out.append(one(f, "depth-2", gets(2)))
    out.append(one(f, "depth-10", gets(10)))
    out.append(one(f, "depth-100", gets(100)))
    out.append(one(f, "get-post-get", NEXT + req(b"POST", b"/pp", [], b"hello") + NEXT))
    out.append(one(f, "post-chunked-get", req(b"POST", b"/pp", [b"Transfer-Encoding: chunked"], chunked(b"hello"), cl=False) + NEXT))
    out.append(one(f, "head-get", req(b"HEAD", b"/head") + NEXT))
    g700 = gets(700, pad=57)
    out.append(one(f, "700-gets-one-write", g700, note="%d bytes" % len(g700)))
    sid = b"".join(req(b"GET", b"/?sid=!") for _ in range(3000))
    out.append(one(f, "3000-local-answers", sid, note="%d bytes" % len(sid)))
    mixed = b"".join(req(b"GET", b"/?sid=!") if i % 2 else req(b"GET", b"/mix/%d" % i) for i in range(200))
    out.append(one(f, "200-mixed-local-proxied", mixed))
    out.append(one(f, "bad-second", NEXT + b"GARBAGE\r\n\r\n" + NEXT))
    out.append(one(f, "close-then-more", req(b"GET", b"/last", [b"Connection: close"]) + NEXT + NEXT))
    out.append(one(f, "http10-then-more", req(b"GET", b"/v10", [], version=b"HTTP/1.0") + NEXT))
    big_then = req(b"POST", b"/big", [], b"B" * 100000) + NEXT
    out.append(one(f, "big-body-then-get", big_then))
    out.append(Case(f, "get-then-get-delayed", [seg(NEXT), seg(NEXT, delay=0.05)]))
    g2000 = gets(2000, pad=200, prefix=b"/q")
    out.append(one(f, "2000-proxied-one-write", g2000, note="%d bytes" % len(g2000)))
    g2k = b"".join(req(b"GET", b"/k%d" % i, [b"X-Fill: " + b"k" * (2048 - len(req(b"GET", b"/k%d" % i, [b"X-Fill: "])))])
                   for i in range(30))
    out.append(one(f, "30-heads-of-2048-one-write", g2k, note="%d bytes" % len(g2k)))
    posts = b"".join(req(b"POST", b"/cp/%d" % i, [b"Transfer-Encoding: chunked"],
                         chunked(b"x" * i, b"y", trailer=b"X-N: %d\r\n" % i), cl=False) for i in range(50))
    out.append(one(f, "50-chunked-posts-trailers", posts))
    # Heads around --max-header-bytes (16384): accepted whole or refused with 431. The small
    # sizes end just before, at and after the read batch's 2 KiB buffer (and twice it): a read
    # that fills the buffer is finished by libuv's own read (src/stream.c).
    for size in (2047, 2048, 2049, 4096, 4097, 16300, 16384, 16385, 17000, 60000):
        base = req(b"GET", b"/size", [b"X-Fill: "])
        fill = size - len(base)
        out.append(one(f, "head-%d" % size, req(b"GET", b"/size", [b"X-Fill: " + b"f" * fill]) + NEXT))
    out.append(one(f, "headers-300", req(b"GET", b"/many", [b"X-M%03d: v" % i for i in range(300)]) + NEXT))
    body = b"0123456789" * 30
    post = req(b"POST", b"/slow-body", [], body)
    hl = len(post) - len(body)
    out.append(Case(f, "slow-cl-body", [seg(post[:hl + 10])] + [seg(post[hl + k:hl + k + 70], delay=0.02)
                                                               for k in range(10, len(body), 70)] + [seg(NEXT, delay=0.02)]))
    cbody = chunked(*[b"c%02d" % k * 10 for k in range(8)], trailer=b"X-T: done\r\n")
    cpost = req(b"POST", b"/slow-chunked", [b"Transfer-Encoding: chunked"], cbody, cl=False)
    hl = len(cpost) - len(cbody)
    out.append(Case(f, "slow-chunked-body", [seg(cpost[:hl])] + [seg(cpost[hl + k:hl + k + 37], delay=0.02)
                                                                for k in range(0, len(cbody), 37)] + [seg(NEXT, delay=0.02)]))
    return out


def fam_split():
    """Every byte boundary of a few requests: each split point is a case (two writes)."""
    f = "split"
    out = []
    bases = {
        "post-cl": req(b"POST", b"/s", [b"X-S: 1"], b"hello"),
        "post-chunked": req(b"POST", b"/s", [b"Transfer-Encoding: chunked"], b"5;e=1\r\nhello\r\n0\r\nX-T: t\r\n\r\n", cl=False),
        "two-gets": req(b"GET", b"/a") + req(b"GET", b"/b"),
        "conn-cl-smuggle": req(b"POST", b"/c", [b"Connection: Content-Length"],
                               b"GET /evil HTTP/1.1\r\nHost: x\r\n\r\n"),
    }
    for bname, data in bases.items():
        mand = 0 if bname == "conn-cl-smuggle" else None
        for k in range(1, len(data)):
            out.append(Case(f, "%s@%03d" % (bname, k), [seg(data[:k]), seg(data[k:], delay=0.015)], reject_at=mand))
    # A WebSocket upgrade split every 5 bytes, tunnel bytes after the 101.
    ws = req(b"GET", b"/socket.io/?EIO=4&transport=websocket", WS)
    for k in range(1, len(ws), 5):
        out.append(Case(f, "ws-upgrade@%03d" % k, [seg(ws[:k]), seg(ws[k:], delay=0.015), seg(FRAME, wait="switch", need=9)]))
    # The pod's answer split at every byte: interim, head, chunks, trailer.
    resp = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
            b"5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
    for k in range(1, len(resp)):
        sc = PodScript(lambda r, s, k=k: PodAction(resp[:k], later=[(0.015, resp[k:])]) if s == 0 else normal_responder(r, s),
                       label="split-response")
        out.append(Case(f, "pod-response@%03d" % k, [seg(req(b"GET", b"/sr") + NEXT)], pod=sc))
    return out


# ---------------------------------------------------------------- hostile pods


def fam_pod():
    f = "pod"
    out = []
    get = req(b"GET", b"/r")

    def pod(name, responder, data=None, segs=None, **kw):
        sc = PodScript(responder, label=name)
        if segs:
            out.append(Case(f, name, segs, pod=sc, **kw))
        else:
            out.append(one(f, name, data if data is not None else get + NEXT, pod=sc, **kw))

    def fixed(raw, close=False, later=None):
        """The scripted response for the first request; constant responses answer later
        requests normally, so that left-over bytes cannot pass for a later response."""
        def respond(r, s):
            if callable(raw):
                return PodAction(raw(r, s), close=close, later=later)
            if s > 0:
                return normal_responder(r, s)
            return PodAction(raw, close=close, later=later)
        return respond

    pod("normal", None)
    pod("chunked", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello", body_for(r, s))))
    pod("chunked-ext-trailer", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                                     + chunked(body_for(r, s), ext=b";x=1", trailer=b"X-Sum: 42\r\n")))
    pod("chunked-to-http10", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello", body_for(r, s))),
        data=req(b"GET", b"/r10", version=b"HTTP/1.0"))
    pod("chunked-to-http10-keepalive", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello", body_for(r, s))),
        data=req(b"GET", b"/r10", [b"Connection: keep-alive"], version=b"HTTP/1.0"))
    pod("cl-to-http10", None, data=req(b"GET", b"/r10", version=b"HTTP/1.0"))
    pod("close-delimited", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\n\r\n" + body_for(r, s), close=True))
    pod("http10-response", fixed(lambda r, s: b"HTTP/1.0 200 OK\r\n\r\n" + body_for(r, s), close=True))
    pod("no-reason", fixed(lambda r, s: b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"))
    # RFC 9110 15: valid status codes are 100..599; the router may refuse others with 502.
    pod("status-999", fixed(b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok"), pod_may_refuse=True)
    # The router may cap interim responses (PR_MAX_INTERIM = 16 in src/server.h): storms over a
    # small bound may be refused with 502; within it they must all be relayed.
    for n, code in ((10, 100), (16, 103), (200, 102), (2000, 100)):
        pod("1xx-storm-%dx%d" % (n, code), fixed(lambda r, s, n=n, code=code: b"HTTP/1.1 %d Interim\r\n\r\n" % code * n
                                                 + response(body=body_for(r, s))), pod_may_refuse=n > 16)
    pod("103-early-hints", fixed(lambda r, s: b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" * 5
                                 + response(body=body_for(r, s))))
    pod("1xx-split-writes", lambda r, s: PodAction(b"HTTP/1.1 100 Continue\r\n\r\n", later=[
        (0.02, b"HTTP/1.1 102 Processing\r\n\r\n"), (0.04, response(body=body_for(r, s)))]))
    pod("1xx-to-http10", fixed(lambda r, s: b"HTTP/1.1 100 Continue\r\n\r\n" + response(body=body_for(r, s))),
        data=req(b"POST", b"/r10", [], b"hello", version=b"HTTP/1.0"))
    pod("dup-cl-same", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"), pod_may_refuse=True)
    pod("dup-cl-diff", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 12\r\n\r\nokHTTP/1.1 2"))
    pod("cl-comma", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 12\r\n\r\nokHTTP/1.1 2"))
    pod("cl-and-te", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), pod_may_refuse=True)
    pod("te-chunked-gzip", fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
    pod("cl-negative", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok"))
    pod("cl-plus", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"))
    pod("obs-fold-header", fixed(b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok"), pod_may_refuse=True)
    pod("nul-in-header", fixed(b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 2\r\n\r\nok"))
    pod("cr-in-header", fixed(b"HTTP/1.1 200 OK\r\nX-Cr: a\rb\r\nContent-Length: 2\r\n\r\nok"))
    pod("space-before-colon", fixed(b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"))
    pod("bad-status-line", fixed(b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"))
    pod("not-http", fixed(b"SSH-2.0-OpenSSH_9.2\r\n"), )
    pod("huge-head-128k", fixed(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%05d: %s\r\n" % (i, b"h" * 100) for i in range(1200))
                                + b"Content-Length: 2\r\n\r\nok"), pod_may_refuse=True)
    pod("hop-by-hop", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
                            b"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"))
    pod("spoofed-pod-header", fixed(b"HTTP/1.1 200 OK\r\nX-Pod-Router-Pod: backend-9\r\nContent-Length: 2\r\n\r\nok"))
    pod("set-cookie", fixed(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok"))
    pod("204-with-body", fixed(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"))
    pod("304-with-body", fixed(b"HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"))
    pod("head-with-body", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"), data=req(b"HEAD", b"/r") + NEXT)
    # Bytes after a complete response: never forwarded, never taken as the next response.
    smug = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
    pod("garbage-after-body", fixed(lambda r, s: response(body=body_for(r, s)) + smug))
    pod("garbage-after-chunked", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       + chunked(body_for(r, s)) + smug))
    pod("garbage-later", lambda r, s: PodAction(response(body=body_for(r, s)), later=[(0.01, smug)]),
        segs=[seg(get), seg(NEXT, delay=0.08)])
    pod("body-longer-than-cl", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-BYTES"))
    # The pod closes after each response without saying so (stale pooled connections).
    closer = lambda r, s: PodAction(response(body=body_for(r, s)), close=True)
    pod("close-each-get-get", closer, unforwarded_502_ok=True, data=req(b"GET", b"/c1") + req(b"GET", b"/c2"))
    pod("close-each-get-post", closer, unforwarded_502_ok=True, data=req(b"GET", b"/c1") + req(b"POST", b"/c2", [], b"hello body"))
    pod("close-each-get-chunked", closer, unforwarded_502_ok=True, data=req(b"GET", b"/c1") + req(b"POST", b"/c2", [b"Transfer-Encoding: chunked"],
                                                                          chunked(b"hello"), cl=False))
    pod("close-each-3-gets", closer, unforwarded_502_ok=True, data=req(b"GET", b"/c1") + req(b"GET", b"/c2") + req(b"GET", b"/c3"))
    pod("close-each-delayed-post", closer, unforwarded_502_ok=True, segs=[seg(req(b"GET", b"/c1")),
                                                seg(req(b"POST", b"/c2", [], b"hello body"), delay=0.05)])
    pod("conn-close-header", lambda r, s: PodAction(response(headers=b"Connection: close\r\n", body=body_for(r, s)), close=True),
        data=req(b"GET", b"/c1") + req(b"POST", b"/c2", [], b"hello body") + req(b"GET", b"/c3"))
    # Streaming and timing: slow, large and truncated responses.
    pod("slow-response-then-pipelined", lambda r, s: PodAction(b"", later=[(0.25 if s == 0 else 0.0, response(body=body_for(r, s)))]),
        data=req(b"GET", b"/slow") + req(b"GET", b"/fast"))
    pod("chunked-slow-chunks", lambda r, s: PodAction(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", later=[
        (0.02 * (k + 1), b"5\r\nchunk\r\n") for k in range(5)] + [(0.15, b"0\r\n\r\n")]))
    pod("big-body-1mb", fixed(lambda r, s: response(body=(body_for(r, s) * 70000)[:1048576])))
    pod("big-chunked-1mb", fixed(lambda r, s: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 + chunked(*([b"z" * 16384] * 64))))
    pod("truncated-cl-body", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part", close=True))
    pod("truncated-chunked-body", fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly-part", close=True))
    pod("truncated-head", fixed(b"HTTP/1.1 200 OK\r\nContent-Len", close=True))
    pod("close-without-response", fixed(b"", close=True))
    # Upgrades.
    ws = req(b"GET", b"/socket.io/?EIO=4&transport=websocket", WS)
    big = bytes(range(256)) * 160  # 40 KiB
    pod("101-no-upgrade-header", lambda r, s: switch_action(r, extra=b"", with_upgrade=False),
        segs=[seg(ws), seg(FRAME, wait="switch")])
    pod("101-to-plain-get", fixed(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw-bytes"),
        segs=[seg(get), seg(FRAME, wait="switch")])
    pod("101-then-40k-one-write", lambda r, s: switch_action(r, extra=big), segs=[seg(ws), seg(FRAME, wait="switch", need=len(big))])
    pod("101-then-40k-later", lambda r, s: switch_action(r, later=[(0.02, big)]), segs=[seg(ws), seg(FRAME, wait="switch", need=len(big))])
    pod("101-40k-and-close", lambda r, s: switch_action(r, extra=big, close=True), segs=[seg(ws), seg(b"", wait="switch", need=len(big))])
    pod("101-http-looking-bytes", lambda r, s: switch_action(r, extra=smug), segs=[seg(ws), seg(FRAME, wait="switch", need=len(smug))])
    def interim_then_switch(r, s):
        a = switch_action(r, extra=b"x")
        a.data = b"HTTP/1.1 100 Continue\r\n\r\n" + a.data
        return a

    pod("1xx-then-101", interim_then_switch, segs=[seg(ws), seg(FRAME, wait="switch", need=1)])
    pod("upgrade-refused-400", fixed(lambda r, s: response(b"400 Bad Request", body=b"no\n")), data=ws + NEXT)
    return out


FAMILIES = [fam_cl_te, fam_connection, fam_obs_fold, fam_whitespace, fam_ctl, fam_chunked, fam_version,
            fam_host, fam_expect, fam_upgrade, fam_forwarded, fam_pipeline, fam_split, fam_pod]


def all_cases():
    out = []
    for fam in FAMILIES:
        out += fam()
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit("duplicate case names: %s" % sorted(dup))
    return out
