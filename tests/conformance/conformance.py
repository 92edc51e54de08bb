#!/usr/bin/env python3
"""Differential HTTP conformance suite for pod-router (SPEC v1.1 §3.3-§3.5).

Every case sends raw client bytes through the real router to a capture pod; h11 (an
independent strict parser) re-parses what the client sent, what the pod received, what the
pod answered and what the client received, and the two sides must agree (see judge.py).

  conformance.py --bin build/src/pod-router --out test-output/conformance/release
  conformance.py --export-corpus tests/fuzz/corpus      (seed corpora, no router)
  conformance.py --list

The last line of a run is "N passed, N failed".
"""
import argparse
import base64
import hashlib
import json
import os
import queue
import re
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cases import all_cases  # noqa: E402
from h11parse import ResponseStream, parse_requests  # noqa: E402
from harness import PodRequest, PodServer, Router, run_client  # noqa: E402
from judge import Outcome, esc, judge  # noqa: E402


def b64(b):
    return base64.b64encode(bytes(b)).decode()


def expected_answers(data):
    ref = parse_requests(data)
    metas = [(m.method, m.upgrade_value() if m.proposes_upgrade() else None) for m in ref.msgs]
    if ref.error is not None or ref.partial is not None or ref.leftover:
        metas.append((ref.partial.method if ref.partial is not None else b"GET", None))
    return metas


class Worker(threading.Thread):
    def __init__(self, idx, args, q, results, lock):
        super().__init__(daemon=True, name="worker-%d" % idx)
        self.idx = idx
        self.args = args
        self.q = q
        self.results = results
        self.lock = lock
        self.pod_name = "cap-%d" % idx
        self.pod = PodServer(self.pod_name)
        self.router = Router(args.bin, args.out, "w%d" % idx, args.san_dir)
        self.attributed = set()
        self.error = None

    def run(self):
        try:
            self.pod.start()
            self.router.start(self.pod_name, self.pod.port)
            while True:
                try:
                    case = self.q.get_nowait()
                except queue.Empty:
                    break
                res = self.run_case(case)
                with self.lock:
                    self.results.append(res)
        except Exception as e:  # a harness failure must be visible, not a silent pass
            import traceback
            self.error = "%s\n%s" % (e, traceback.format_exc())
        finally:
            status = self.router.stop()
            reports = [r for r in self.router.san_reports() if r not in self.attributed]
            if reports or status:
                with self.lock:
                    self.results.append({
                        "name": "shutdown.%s" % self.pod_name, "family": "shutdown", "ok": False,
                        "reason": "router %s" % (status or "sanitizer report at exit: %s" % summary_of(reports[0])),
                    })
                self.attributed.update(reports)
            self.pod.stop()

    def run_case(self, case):
        args = self.args
        pid = self.router.proc.pid
        self.pod.begin_case(case.pod)
        metas = expected_answers(case.client_bytes())
        stream = ResponseStream(metas)
        t0 = time.monotonic()
        cres = run_client(self.router.port, case.segments, stream, len(metas), quiet=args.quiet, grace=args.grace)
        time.sleep(args.settle)
        records = self.pod.end_case()
        o = Outcome(cres.sent, records, stream, cres)
        o.pod_name = self.pod_name
        if not self.router.alive():
            time.sleep(0.2)  # let a sanitizer finish its report
            o.router_exit = self.router.exit_status()
        reports = [r for r in self.router.san_reports() if r not in self.attributed]
        if reports:
            # The sanitizer is still writing (and then exits): this case is the culprit, so
            # wait for the exit here rather than blame the next case for it.
            self.router.wait_exit(10)
            self.attributed.update(reports)
            o.san_reports = [summary_of(r) for r in reports]
        reason = judge(case, o)
        if not self.router.alive():
            self.router.stop()
            self.router.start(self.pod_name, self.pod.port)
        return {
            "name": case.name, "family": case.family, "ok": reason is None, "reason": reason,
            "seconds": round(time.monotonic() - t0, 3), "worker": self.idx, "started": round(t0, 3),
            "reject_at": case.reject_at, "note": case.note, "pod_script": case.pod.label,
            "client_sent": b64(cres.sent), "client_received": b64(cres.recv),
            "client_eof": cres.eof, "client_timed_out": cres.timed_out,
            "router_exit": o.router_exit, "sanitizer": o.san_reports, "router_pid": pid,
            "pod_connections": [{
                "id": r.conn_id, "reused": r.reused, "received": b64(r.recv), "sent": b64(r.sent),
                "requests": len(r.requests), "error": r.error, "router_closed": r.eof, "pod_closed": r.pod_closed,
                "switched": r.switched, "tunnel_in": len(r.tunnel_in), "tunnel_out": len(r.tunnel_out),
                "discarded_after_pod_close": b64(r.discarded),
            } for r in records],
        }


def summary_of(path):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("latin-1")
    except OSError:
        return os.path.basename(path)
    m = re.search(r"SUMMARY: (.*)", text) or re.search(r"(runtime error: .*)", text) or re.search(r"ERROR: (.*)", text)
    return "%s (%s)" % (m.group(1).strip()[:160] if m else "report", os.path.basename(path))


def dump_failure(outdir, res):
    path = os.path.join(outdir, "fail", res["name"] + ".txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("case: %s\nreason: %s\n\n" % (res["name"], res["reason"]))

        def block(title, data):
            f.write("---- %s (%d bytes)\n" % (title, len(data)))
            lines = bytes(data[:20000]).split(b"\n")
            for k, line in enumerate(lines):
                if k < len(lines) - 1:
                    line += b"\n"
                if line:
                    f.write(repr(line)[2:-1] + "\n")
            if len(data) > 20000:
                f.write("… %d more bytes\n" % (len(data) - 20000))
            f.write("\n")

        if "client_sent" in res:
            block("client sent", base64.b64decode(res["client_sent"]))
            block("client received%s" % (" then EOF" if res["client_eof"] else ""), base64.b64decode(res["client_received"]))
            for c in res["pod_connections"]:
                block("pod connection %d received (reused=%s, router closed=%s)" % (c["id"], c["reused"], c["router_closed"]),
                      base64.b64decode(c["received"]))
                block("pod connection %d sent" % c["id"], base64.b64decode(c["sent"]))


SEED_MAX = 96 * 1024


def export_corpus(cases, root):
    """One seed file per case: client input in proxy_client/, pod responses in proxy_pod/."""
    cdir = os.path.join(root, "proxy_client")
    pdir = os.path.join(root, "proxy_pod")
    for d in (cdir, pdir):
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(".bin"):
                    os.unlink(os.path.join(d, f))
        os.makedirs(d, exist_ok=True)
    seen = set()
    total = files = 0
    for c in cases:
        data = c.client_bytes()
        ref = parse_requests(data)
        pod = bytearray()
        for i, m in enumerate(ref.msgs[:20]):  # a seed needs no more than a few answers
            p = PodRequest()
            for k in ("method", "target", "version", "headers", "raw_lines", "body", "trailers"):
                setattr(p, k, getattr(m, k))
            p.seq = i
            p.complete = True
            if c.pod.send_continue(p):
                pod += b"HTTP/1.1 100 Continue\r\n\r\n"
            act = c.pod.respond(p)
            pod += act.data
            for _, later in act.later:
                pod += later
            if act.close:
                break
        for d, blob in ((cdir, data), (pdir, bytes(pod))):
            blob = blob[:SEED_MAX]  # a seed needs the start of a big body, not all of it
            if not blob:
                continue
            h = hashlib.sha1(blob).hexdigest()
            if (d, h) in seen:
                continue  # the same bytes under another name (e.g. split points)
            seen.add((d, h))
            with open(os.path.join(d, c.name + ".bin"), "wb") as f:
                f.write(blob)
            total += len(blob)
            files += 1
    print("exported %d files, %d bytes, to %s" % (files, total, root))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", help="pod-router binary")
    ap.add_argument("--out", default="test-output/conformance/release", help="output directory")
    ap.add_argument("--san-dir", help="directory of ASAN/UBSAN log_path reports (sanitizer build)")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("CONFORMANCE_JOBS", "4")))
    ap.add_argument("--filter", help="only cases whose name matches this regex")
    ap.add_argument("--quiet", type=float, default=2.0, help="seconds without progress before a case counts as unanswered")
    ap.add_argument("--grace", type=float, default=0.12, help="seconds to wait for unexpected extra bytes")
    ap.add_argument("--settle", type=float, default=0.03)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--export-corpus", metavar="DIR")
    args = ap.parse_args()

    cases = all_cases()
    if args.filter:
        cases = [c for c in cases if re.search(args.filter, c.name)]
    if args.list:
        for c in cases:
            print(c.name, "(reject_at=%s)" % c.reject_at if c.reject_at is not None else "")
        print("%d cases" % len(cases))
        return 0
    if args.export_corpus:
        export_corpus(cases, args.export_corpus)
        return 0
    if not args.bin or not os.access(args.bin, os.X_OK):
        print("conformance: no router binary at %r" % args.bin)
        print("0 passed, 1 failed")
        return 1
    out = args.out
    os.makedirs(out, exist_ok=True)
    shutil.rmtree(os.path.join(out, "fail"), ignore_errors=True)
    os.makedirs(os.path.join(out, "fail"), exist_ok=True)
    for f in os.listdir(out):
        if f.startswith("router-") and f.endswith(".log"):
            os.unlink(os.path.join(out, f))

    t0 = time.monotonic()
    q = queue.Queue()
    for c in sorted(cases, key=lambda c: -c.weight):
        q.put(c)
    results = []
    lock = threading.Lock()
    workers = [Worker(i, args, q, results, lock) for i in range(max(1, args.jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - t0

    harness_errors = [w.error for w in workers if w.error]
    done = {r["name"] for r in results}
    for c in cases:
        if c.name not in done:
            results.append({"name": c.name, "family": c.family, "ok": False, "reason": "not run (harness error)"})
    if args.san_dir and os.path.isdir(args.san_dir):
        known = set()
        for w in workers:
            known |= w.attributed
        for f in sorted(os.listdir(args.san_dir)):
            p = os.path.join(args.san_dir, f)
            if p not in known:
                results.append({"name": "sanitizer." + f, "family": "shutdown", "ok": False,
                                "reason": "sanitizer report from a router: %s" % summary_of(p)})

    order = {c.name: i for i, c in enumerate(cases)}
    results.sort(key=lambda r: order.get(r["name"], len(order)))
    with open(os.path.join(out, "cases.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    fams = {}
    for r in results:
        p, n = fams.get(r["family"], (0, 0))
        fams[r["family"]] = (p + r["ok"], n + (not r["ok"]))
        if not r["ok"]:
            print("FAIL %-10s %s: %s" % (r["family"], r["name"], r["reason"]))
            dump_failure(out, r)
    for e in harness_errors:
        print("HARNESS ERROR: %s" % e)
    print()
    print("per family:")
    for fam, (p, n) in fams.items():
        print("  %-12s %4d passed, %4d failed" % (fam, p, n))
    passed = sum(1 for r in results if r["ok"])
    failed = len(results) - passed + len(harness_errors)
    slow = sorted((r for r in results if "seconds" in r), key=lambda r: -r["seconds"])[:3]
    print("%d cases in %.1f s with %d workers (slowest: %s); details in %s" % (
        len(cases), elapsed, len(workers), ", ".join("%s %.1fs" % (r["name"], r["seconds"]) for r in slow), out))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
