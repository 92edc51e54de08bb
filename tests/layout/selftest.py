#!/usr/bin/env python3
"""Self-test of check.py on fixtures/: the checker must report a long function, an include
cycle, a call cycle and a stale exception, and must accept them once listed.
Prints one "ok ..." / "FAIL ..." line per case."""
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import check  # noqa: E402

fix = os.path.join(here, 'fixtures')
failed = 0


def case(label, ok):
    global failed
    print(('ok ' if ok else 'FAIL ') + label)
    if not ok:
        failed += 1


def run(build, exceptions_text, extra=()):
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as ex:
        ex.write(exceptions_text)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rc = check.main(['--root', fix, '--dirs', 'src', '--build', build,
                             '--exceptions', ex.name, *extra])
    finally:
        os.unlink(ex.name)
    return rc, out.getvalue()


tmp = tempfile.mkdtemp(prefix='layout-selftest-')
try:
    objdir = os.path.join(tmp, 'build', 'src')
    os.makedirs(objdir)
    cc = os.environ.get('CC', 'cc')
    for c in ('calls_a.c', 'calls_b.c', 'calls_c.c', 'long.c'):
        subprocess.run([cc, '-c', '-I', os.path.join(fix, 'src'), os.path.join(fix, 'src', c),
                        '-o', os.path.join(objdir, c + '.o')], check=True)
    build = os.path.join(tmp, 'build')

    fns = {n: b - a + 1 for n, a, b in check.functions(os.path.join(fix, 'src', 'long.c'))}
    case('parser finds exactly the two functions, skips struct and initializer',
         sorted(fns) == ['fixture_exact', 'fixture_long'])
    case('parser counts 81 and 80 lines (braces in comments/strings ignored)',
         fns.get('fixture_long') == 81 and fns.get('fixture_exact') == 80)

    rc, out = run(build, '')
    case('with no exceptions the check fails', rc == 1)
    case('long function reported', 'FAIL func-size src/long.c fixture_long: 81 lines' in out)
    case('80-line function not reported', 'fixture_exact' not in out)
    case('include cycle reported', 'FAIL include-cycle src/cyc_a.h+src/cyc_b.h' in out)
    case('call cycle reported (nm)', 'FAIL call-cycle src/calls_a.c+src/calls_b.c -' in out
         and 'calls_a.c->calls_b.c (fixture_b)' in out)
    case('calls down and function-pointer tables are no cycle', 'calls_c.c' not in out)
    rc, out = run(build, '', ['--file-max', '100'])
    case('file size reported over a lowered limit',
         rc == 1 and 'FAIL file-size src/long.c -: 173 lines (max 100)' in out)

    listed = ('func-size src/long.c fixture_long fixture\n'
              'include-cycle src/cyc_a.h+src/cyc_b.h - fixture\n'
              'call-cycle src/calls_a.c+src/calls_b.c - fixture\n')
    rc, out = run(build, listed)
    case('listed violations pass', rc == 0)

    rc, out = run(build, listed + 'func-size src/long.c fixture_exact no longer too long\n')
    case('stale exception (function short enough) fails', rc == 1 and 'no longer applies' in out)
    rc, out = run(build, listed.replace('calls_a.c+src/calls_b.c', 'calls_a.c+src/calls_b.c+src/calls_c.c'))
    case('changed cycle no longer matches its exception', rc == 1 and 'no longer applies' in out
         and 'FAIL call-cycle src/calls_a.c+src/calls_b.c' in out)

    os.unlink(os.path.join(objdir, 'calls_b.c.o'))
    rc, out = run(build, listed)
    case('a missing object file fails (no silent pass without a build)',
         rc == 1 and 'no object file' in out)
finally:
    shutil.rmtree(tmp)

sys.exit(1 if failed else 0)
