"""Verdict of one case: the client's messages (as h11 parses what it sent) against what the
pod received, and the pod's responses against what the client received.

PASS = every request is either rejected (a local 4xx, or 501/505, or a close for a request
h11 itself rejects; nothing of it reached the pod) or forwarded as the same message
(method, target, version, headers except the documented additions/removals of SPEC §3.3,
body, trailers), and every response the pod sent reaches the client as the same message
(or, when h11 cannot parse it, is replaced by a local 502/504 or a close), in order, with
nothing extra on either side. SPEC §3.5 rejections are required where the SPEC says so.
"""
import ipaddress
import re

from h11parse import ResponseStream, comma_tokens, header_names, parse_requests, values

MUST_REMOVE_REQ = {b"connection", b"keep-alive", b"proxy-connection", b"upgrade"}
MAY_REMOVE_REQ = {b"te", b"trailer", b"proxy-authorization"}
MUST_REMOVE_RESP = {b"connection", b"keep-alive", b"proxy-connection", b"upgrade"}
MAY_REMOVE_RESP = {b"te", b"trailer"}
FRAMING = {b"content-length", b"transfer-encoding"}
ROUTER_REQ = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"}
ROUTER_RID = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{12}$")
REJECT_STATUS = set(range(400, 500)) | {501, 505}


class Fail(Exception):
    pass


def esc(b, n=80):
    if b is None:
        return "None"
    b = bytes(b)
    s = repr(b[:n])[2:-1]
    return s + ("…(%d bytes)" % len(b) if len(b) > n else "")


def lower_pairs(headers, drop=()):
    return [(n.lower(), v) for n, v in headers if n.lower() not in drop]


def first_diff(a, b, label_a, label_b):
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x != y:
            if x is None:
                return "header only at %s: %s: %s" % (label_b, y[0].decode("latin-1"), esc(y[1], 60))
            if y is None:
                return "header only at %s: %s: %s" % (label_a, x[0].decode("latin-1"), esc(x[1], 60))
            xs = set(a)
            ys = set(b)
            if x not in ys:
                return "header only at %s: %s: %s" % (label_a, x[0].decode("latin-1"), esc(x[1], 60))
            if y not in xs:
                return "header only at %s: %s: %s" % (label_b, y[0].decode("latin-1"), esc(y[1], 60))
            return "header order differs at %s" % x[0].decode("latin-1")
    return None


def is_ip(v):
    try:
        ipaddress.ip_address(v.decode("latin-1").strip())
        return True
    except ValueError:
        return False


def rid_ok(v):
    return 1 <= len(v) <= 128 and all(0x21 <= c <= 0x7E for c in v)


# ------------------------------------------------------------------ requests


def compare_request(i, m, p, body=True):
    """m: the client's message (h11), p: what the pod received. Raises Fail."""
    tag = "request #%d (%s)" % (i, m.short())
    if p.method != m.method:
        raise Fail("%s: pod got method %s" % (tag, esc(p.method)))
    if p.target != m.target:
        raise Fail("%s: pod got target %s" % (tag, esc(p.target)))
    if not (p.version == m.version or (m.version == b"1.0" and p.version == b"1.1")):
        raise Fail("%s: client spoke HTTP/%s, pod got HTTP/%s" % (tag, m.version.decode(), p.version.decode()))
    nominated = set(comma_tokens(m.headers, b"connection"))
    c_eff = [(n, v) for n, v in m.headers if n.lower() not in MUST_REMOVE_REQ and n.lower() not in nominated]
    # Upgrade offer: the router may forward it (as Connection: Upgrade + the same Upgrade) or drop it.
    p_up = values(p.headers, b"upgrade")
    p_conn = set(comma_tokens(p.headers, b"connection"))
    if p_up:
        if not (b"upgrade" in nominated and values(m.headers, b"upgrade") == p_up):
            raise Fail("%s: pod got Upgrade: %s the client did not offer" % (tag, esc(p_up[0])))
        if len(p_up) != 1:
            raise Fail("%s: pod got %d Upgrade lines" % (tag, len(p_up)))
    if p_conn - ({b"upgrade"} if p_up else set()):
        raise Fail("%s: pod got Connection: %s" % (tag, esc(b", ".join(sorted(p_conn)))))
    for n in header_names(p.raw_lines[1:]):
        if n in (b"keep-alive", b"proxy-connection"):
            raise Fail("%s: hop-by-hop %s reached the pod" % (tag, n.decode()))
        if n in nominated and n not in (b"upgrade", b"connection") and n not in ROUTER_REQ:
            raise Fail("%s: %s (named in Connection) reached the pod" % (tag, n.decode("latin-1")))
    # Framing: exactly one of Content-Length / Transfer-Encoding (or none), from the parsed message.
    cl, te = p.framing_lines()
    if cl + te > 1:
        raise Fail("%s: pod got %d Content-Length and %d Transfer-Encoding lines" % (tag, cl, te))
    if body and bytes(p.body) != bytes(m.body):
        raise Fail("%s: body differs: client %s, pod %s" % (tag, esc(m.body), esc(p.body)))
    if p.trailers and lower_pairs(p.trailers) != lower_pairs(m.trailers):
        raise Fail("%s: trailers differ: client %s, pod %s" % (tag, m.trailers[:3], p.trailers[:3]))
    # The router's own headers: present, intact, exactly once.
    ph = p.headers

    def one(name):
        v = values(ph, name)
        if len(v) != 1:
            raise Fail("%s: pod got %d %s lines (want exactly 1)" % (tag, len(v), name.decode()))
        return v[0]

    xff_c = [v for v in values(c_eff, b"x-forwarded-for") if v.strip()]
    xff = one(b"x-forwarded-for")
    if xff_c:
        prefix = b", ".join(xff_c) + b", "
        if not xff.startswith(prefix) or not is_ip(xff[len(prefix):]):
            raise Fail("%s: X-Forwarded-For %s does not extend the client's %s" % (tag, esc(xff), esc(prefix[:-2])))
    elif not is_ip(xff):
        raise Fail("%s: X-Forwarded-For %s is not the peer address" % (tag, esc(xff)))
    xfp_c = values(c_eff, b"x-forwarded-proto")
    xfp = one(b"x-forwarded-proto")
    if (len(xfp_c) == 1 and xfp != xfp_c[0]) or (not xfp_c and xfp != b"http") or (xfp_c and xfp not in xfp_c):
        raise Fail("%s: X-Forwarded-Proto %s (client sent %s)" % (tag, esc(xfp), xfp_c))
    xfh_c = values(c_eff, b"x-forwarded-host")
    host_c = values(c_eff, b"host")
    if xfh_c or host_c:
        xfh = one(b"x-forwarded-host")
        want = xfh_c if xfh_c else host_c
        if (len(want) == 1 and xfh != want[0]) or xfh not in want:
            raise Fail("%s: X-Forwarded-Host %s (client Host %s, X-Forwarded-Host %s)" % (tag, esc(xfh), host_c, xfh_c))
    rid_c = values(c_eff, b"x-request-id")
    rid = one(b"x-request-id")
    if len(rid_c) == 1 and rid_ok(rid_c[0]):
        if rid != rid_c[0]:
            raise Fail("%s: X-Request-Id %s replaced a valid client id %s" % (tag, esc(rid), esc(rid_c[0])))
    elif not (ROUTER_RID.match(rid) or rid in rid_c):
        raise Fail("%s: X-Request-Id %s is neither the client's nor the router's" % (tag, esc(rid)))
    drop = MUST_REMOVE_REQ | MAY_REMOVE_REQ | FRAMING | ROUTER_REQ
    if not host_c and m.version == b"1.0":
        # HTTP/1.0 without Host, forwarded as HTTP/1.1: the router may supply one Host.
        if len(values(ph, b"host")) > 1:
            raise Fail("%s: pod got %d Host lines" % (tag, len(values(ph, b"host"))))
        drop = drop | {b"host"}
    a = lower_pairs(c_eff, drop)
    b = lower_pairs(ph, drop)
    d = first_diff(a, b, "client", "pod")
    if d:
        raise Fail("%s: %s" % (tag, d))


# ------------------------------------------------------------------ responses


def parse_pod_response(p):
    """The pod's response to request p as h11 reads it: (Msg or None, error, stream)."""
    meta = (p.method, p.upgrade_value() if (p.proposes_upgrade() and b"upgrade" in comma_tokens(p.headers, b"connection")) else None)
    st = ResponseStream([meta])
    st.feed(p.response)
    if p.action is not None and p.action.close and not (p.action.switch and st.switched):
        st.feed_eof()
    if st.error:
        return None, st.error, st
    if not st.resps or not st.resps[0].complete:
        return None, "incomplete response", st
    r = st.resps[0]
    if r.status == 101 and not values(r.headers, b"upgrade"):
        return None, "101 without Upgrade", st
    return r, None, st


def compare_response(i, m, s, r, pod_name):
    """m: client's request, s: pod's response (h11), r: what the client received."""
    tag = "response #%d (%s)" % (i, s.short())
    if r.status != s.status or r.reason != s.reason:
        raise Fail("%s: client got %d %s" % (tag, r.status, esc(r.reason)))
    if m.version == b"1.0":
        # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client (the router must drop the pod's).
        if r.interims:
            raise Fail("%s: %d 1xx response(s) sent to an HTTP/1.0 client" % (tag, len(r.interims)))
    elif [x[0] for x in r.interims] != [x[0] for x in s.interims]:
        raise Fail("%s: interim responses differ: pod %s, client %s" % (
            tag, summarize_codes([x[0] for x in s.interims]), summarize_codes([x[0] for x in r.interims])))
    ppr = values(r.headers, b"x-pod-router-pod")
    if ppr != [pod_name.encode()]:
        raise Fail("%s: X-Pod-Router-Pod lines %s (want exactly one: %s)" % (tag, ppr, pod_name))
    c_conn = set(comma_tokens(r.headers, b"connection"))
    allowed = {b"close", b"keep-alive"} | ({b"upgrade"} if r.status == 101 else set())
    if c_conn - allowed:
        raise Fail("%s: client got Connection: %s" % (tag, esc(b", ".join(sorted(c_conn)))))
    s_nom = set(comma_tokens(s.headers, b"connection"))
    for n in header_names(r.raw_lines[1:]):
        if n in (b"keep-alive", b"proxy-connection"):
            raise Fail("%s: hop-by-hop %s reached the client" % (tag, n.decode()))
        if n in s_nom and n not in (b"connection", b"upgrade"):
            raise Fail("%s: %s (named in the pod's Connection) reached the client" % (tag, n.decode("latin-1")))
    r_up = values(r.headers, b"upgrade")
    if r.status == 101:
        if r_up != values(s.headers, b"upgrade") or len(r_up) != 1:
            raise Fail("%s: 101 with Upgrade %s (pod sent %s)" % (tag, r_up, values(s.headers, b"upgrade")))
    elif r_up:
        raise Fail("%s: Upgrade reached the client on a %d" % (tag, r.status))
    cl, te = r.framing_lines()
    if cl + te > 1:
        raise Fail("%s: client got %d Content-Length and %d Transfer-Encoding lines" % (tag, cl, te))
    if m.version == b"1.0" and te:
        raise Fail("%s: chunked response sent to an HTTP/1.0 client" % tag)
    if bytes(r.body) != bytes(s.body):
        raise Fail("%s: body differs: pod %s, client %s" % (tag, esc(s.body), esc(r.body)))
    if r.trailers and lower_pairs(r.trailers) != lower_pairs(s.trailers):
        raise Fail("%s: trailers differ" % tag)
    drop = MUST_REMOVE_RESP | MAY_REMOVE_RESP | FRAMING | {b"x-pod-router-pod"} | s_nom
    a = lower_pairs(s.headers, drop)
    b = [(n, v) for n, v in lower_pairs(r.headers, drop)
         if not (n == b"set-cookie" and v.startswith(b"pr_affinity=") and (n, v) not in a)]
    d = first_diff(a, b, "pod", "client")
    if d:
        raise Fail("%s: %s" % (tag, d))


def summarize_codes(codes):
    if not codes:
        return "none"
    out = []
    for c in codes:
        if out and out[-1][0] == c:
            out[-1][1] += 1
        else:
            out.append([c, 1])
    return ",".join("%dx%d" % (c, n) if n > 1 else str(c) for c, n in out)


# ------------------------------------------------------------------ the verdict


class Outcome:
    def __init__(self, client_bytes, pod_records, stream, cres):
        self.client_bytes = client_bytes
        self.pod_records = pod_records
        self.stream = stream
        self.cres = cres
        self.router_exit = None
        self.san_reports = []
        self.pod_name = ""


def judge(case, o):
    """Returns None (pass) or a short reason."""
    try:
        _judge(case, o)
    except Fail as e:
        return str(e)
    return None


def _judge(case, o):
    if o.router_exit:
        raise Fail("router %s" % o.router_exit)
    if o.san_reports:
        raise Fail("sanitizer report: %s" % o.san_reports[0])
    if o.cres.connect_error:
        raise Fail("router did not accept the connection: %s" % o.cres.connect_error)
    ref = parse_requests(o.cres.sent)
    pod_reqs = sorted([r for rec in o.pod_records for r in rec.requests], key=lambda r: r.seq)
    # A request the pod read and closed on without answering may be resent whole on a new
    # connection (SPEC §3.5): the unanswered copy does not count.
    pod_reqs = [p for k, p in enumerate(pod_reqs)
                if not (p.complete and p.action is not None and p.action.close and not p.response
                        and any(q.method == p.method and q.target == p.target and bytes(q.body) == bytes(p.body)
                                for q in pod_reqs[k + 1:]))]
    sw = [r for rec in o.pod_records if rec.switched for r in rec.requests
          if r.action is not None and r.action.switch]
    if sw:
        ref = parse_requests(o.cres.sent, switch_at=pod_reqs.index(sw[0]))
    msgs = ref.msgs
    nvalid = len(msgs)
    herr = " (h11: %s)" % ref.error if ref.error else ""
    client_reqs = list(msgs)
    if ref.error is not None or ref.partial is not None or ref.leftover:
        client_reqs.append(ref.partial)  # None when even its head is malformed / incomplete
    n_total = len(client_reqs)
    reject_at = case.reject_at
    st = o.stream
    resps = st.resps

    for rec in o.pod_records:
        if rec.error:
            raise Fail("pod could not parse what the router forwarded: %s" % rec.error)

    # ---- which client request did each pod request come from (in order)?
    def rejected_locally(i):
        r = resps[i] if i < len(resps) else None
        return r is not None and not values(r.headers, b"x-pod-router-pod") and r.status in REJECT_STATUS

    assign = [None] * n_total
    j = 0
    for i in range(n_total):
        if j >= len(pod_reqs):
            break
        m, p = client_reqs[i], pod_reqs[j]
        if m is not None and p.method == m.method and p.target == m.target and not (p.complete and rejected_locally(i)):
            assign[i] = p
            j += 1
    if j < len(pod_reqs):
        p = pod_reqs[j]
        raise Fail("pod received %s, which the client did not send as a valid request "
                   "(client: %d valid request(s)%s; pod: %d)" % (p.short(), nvalid, herr, len(pod_reqs)))

    # ---- pod side: forwarded requests are the client's, whole (or aborted mid-body)
    aborted = None
    for i, p in enumerate(assign):
        if p is None:
            continue
        m = client_reqs[i]
        if reject_at is not None and i >= reject_at:
            raise Fail("SPEC §3.5: request #%d must be rejected with 400 and nothing forwarded; the pod received %s" % (
                i, p.short()))
        if i < nvalid and p.complete:
            compare_request(i, m, p)
            continue
        if i >= nvalid and p.complete:
            raise Fail("request #%d is malformed%s but reached the pod complete" % (i, herr))
        # Incomplete at the pod: only as an abort (the router closed the pod connection) of a
        # body the router refused, with the same head and a prefix of the client's body.
        compare_request(i, m, p, body=False)
        if not bytes(m.body).startswith(bytes(p.body)):
            raise Fail("request #%d: the pod received body bytes the client did not send" % i)
        if not p.aborted:
            raise Fail("request #%d (%s): the pod received its head and %d of %s body bytes, and the connection stayed open" % (
                i, m.short(), len(p.body), len(m.body) if i < nvalid else "?"))
        aborted = i
        break

    # ---- client side
    if st.error and o.cres.eof and resps and not resps[-1].complete:
        # The pod closed in the middle of its response: relaying the part and closing is
        # all the router can do (the client sees the truncation as h11 does).
        k = len(resps) - 1
        p = assign[k] if k < len(assign) else None
        if p is not None:
            s_, err, pst = parse_pod_response(p)
            part = pst.resps[0] if pst.resps else None
            if err and part is not None and not part.complete and values(resps[k].headers, b"x-pod-router-pod"):
                if resps[k].status != part.status or not bytes(part.body).startswith(bytes(resps[k].body)):
                    raise Fail("response #%d: the pod's truncated response reached the client altered" % k)
                return
    if st.error:
        raise Fail("client could not parse the response stream (h11: %s; %d bytes)" % (st.error, len(o.cres.recv)))
    if st.extra:
        raise Fail("client received %d unexpected bytes after the last response: %s" % (len(st.extra), esc(st.extra, 60)))
    if len(resps) > n_total:
        raise Fail("client received %d responses for %d requests" % (len(resps), n_total))
    closed = o.cres.eof or st.must_close
    for i in range(n_total):
        r = resps[i] if i < len(resps) else None
        m = client_reqs[i]
        p = assign[i]
        valid = i < nvalid
        mandated = reject_at is not None and i == reject_at
        what = m.short() if m is not None else "malformed request"
        if r is not None and not r.complete:
            raise Fail("response #%d incomplete: client got %d body bytes and then %s" % (
                i, len(r.body), "a close" if o.cres.eof else "nothing"))
        if r is None:
            last = resps[-1] if resps else None
            # Closing is fine after a response that announced it, or after the router's own
            # error answer; after an ordinary response it drops the pipelined requests.
            signalled = last is not None and (
                b"close" in comma_tokens(last.headers, b"connection")
                or not values(last.headers, b"x-pod-router-pod"))
            if p is not None and p.complete:
                s, err, _ = parse_pod_response(p)
                if err and closed:
                    return  # an invalid pod response refused by closing
                raise Fail("request #%d: the pod answered %s but the client got %s" % (
                    i, s.short() if s else err, "a close" if closed else "nothing in %.1fs" % o.cres.duration))
            if not closed:
                if mandated:
                    raise Fail("SPEC §3.5: request #%d must be rejected with 400; no answer within %.1fs" % (
                        i, o.cres.duration))
                if not valid and ref.error is None:
                    return  # the client itself never finished this request
                raise Fail("request #%d (%s): no answer and no close within %.1fs%s" % (
                    i, what, o.cres.duration, herr if not valid else ""))
            if mandated:
                raise Fail("SPEC §3.5: request #%d must get 400 bad_request; the connection was closed without one" % i)
            if valid and not signalled and aborted != i:
                raise Fail("request #%d (%s) dropped: connection closed without a response" % (i, what))
            return
        local = not values(r.headers, b"x-pod-router-pod")
        if p is not None and p.complete:
            s, err, _ = parse_pod_response(p)
            if s is not None and not (local and case.pod_may_refuse):
                if local:
                    raise Fail("request #%d: the router answered %d itself though the pod answered %s" % (
                        i, r.status, s.short()))
                compare_response(i, m, s, r, o.pod_name)
            elif s is not None or err:
                if not local:
                    raise Fail("request #%d: the router relayed a response h11 rejects (%s) as %d" % (i, err, r.status))
                if r.status not in (502, 504):
                    raise Fail("request #%d: pod response %s answered %d, want 502" % (
                        i, "refused" if s is not None else "invalid (%s)" % err, r.status))
        else:
            if not local:
                raise Fail("request #%d (%s): client got a pod response (%d) for a request the pod never received "
                           "complete (desync)" % (i, what, r.status))
            if r.status not in REJECT_STATUS and not (r.status == 502 and case.unforwarded_502_ok):
                raise Fail("request #%d (%s): the router answered %d without forwarding it" % (i, what, r.status))
            if mandated:
                if r.status != 400:
                    raise Fail("SPEC §3.5: request #%d must get 400, got %d" % (i, r.status))
                if not closed:
                    raise Fail("SPEC §3.5: request #%d got 400 but the connection stayed open" % i)
            if aborted == i:
                if i + 1 < len(resps):
                    raise Fail("request #%d was aborted mid-body but the connection went on" % i)
                break
        if r.status == 101 or st.switched and i == len(resps) - 1:
            break
    # ---- tunnels
    for rec in o.pod_records:
        if not rec.switched:
            continue
        sw_req = [p for p in rec.requests if p.action is not None and p.action.switch]
        if sw_req and parse_pod_response(sw_req[-1])[1]:
            continue  # an invalid 101 (judged above): refusing it is right, no tunnel expected
        if not st.switched:
            raise Fail("tunnel: the pod switched protocols but the client never got the 101")
        want_in = ref.tunnel if ref.tunnel is not None else b""
        if not rec.pod_closed and bytes(rec.tunnel_in) != bytes(want_in):
            raise Fail("tunnel: pod received %d bytes %s, client sent %d %s after its upgrade request" % (
                len(rec.tunnel_in), esc(rec.tunnel_in, 40), len(want_in), esc(want_in, 40)))
        if bytes(st.tunnel) != bytes(rec.tunnel_out):
            raise Fail("tunnel: client received %d of the %d bytes the pod sent after its 101" % (
                len(st.tunnel), len(rec.tunnel_out)))
    if st.switched and not any(rec.switched for rec in o.pod_records):
        raise Fail("tunnel: the client got a 101 but the pod never switched")
