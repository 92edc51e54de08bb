#!/usr/bin/env python3
"""Layout checker for src/ and include/ (issue 12, "Sizes" and "Done when").

Rules:
  func-size      no function longer than 80 lines (signature to closing brace, inclusive)
  file-size      no .c file longer than 800 lines
  include-cycle  no cycle in the #include "..." graph of src/ and include/
  call-cycle     no cycle in the file-level call graph

The call graph is derived from `nm` on the object files of a build directory (no ctags, no
parsing): file A calls file B when A's object has an undefined symbol that B's object defines
as code (nm type T). A reference to a function taken for a handler table in another file also
counts (it is a link-time dependency); a lower layer calling up *through* a table of function
pointers it owns does not show up as a symbol reference, which is what layering wants.

Known violations live in an exceptions file, one per line:
    func-size      <file> <function>   <reason...>
    file-size      <file> -            <reason...>
    include-cycle  <file+file+...> -   <reason...>
    call-cycle     <file+file+...> -   <reason...>
A cycle is named by its strongly connected component: the files joined by '+', sorted.
The check fails on a violation that is not listed AND on a listed exception that no longer
applies (the function is short enough now, the cycle changed or is gone), so the list can only
shrink.

Usage:
    check.py [--root DIR] [--build DIR] [--exceptions FILE] [--objects-from-dir]
Prints one line per check ("ok ..." / "FAIL ...") and exits 1 on any failure.
"""

import argparse
import os
import re
import subprocess
import sys

FUNC_MAX = 80
FILE_MAX = 800


# ---------------------------------------------------------------- C source scanning

def skip_comment(text, i, out):
    """Skip the /* comment */ starting at i, keeping its newlines in out; the offset after it."""
    k = text.find('*/', i + 2)
    k = len(text) if k < 0 else k + 2
    out.append('\n' * text.count('\n', i, k))
    return k


def strip_c(text):
    """Return text with comments, string and char literals blanked (newlines kept), and
    preprocessor lines (with continuations) blanked, so brace counting sees only code."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start:
            j = i
            while j < n and text[j] in ' \t':
                j += 1
            if j < n and text[j] == '#':
                # Preprocessor directive: blank it up to an unescaped newline.
                while j < n:
                    if text[j] == '\\' and j + 1 < n and text[j + 1] == '\n':
                        j += 2
                        out.append('\n')
                        continue
                    if text[j] == '\n':
                        break
                    # A comment inside a directive may span lines.
                    if text.startswith('/*', j):
                        j = skip_comment(text, j, out)
                        continue
                    j += 1
                i = j
                at_line_start = False
                continue
        at_line_start = False
        if text.startswith('/*', i):
            i = skip_comment(text, i, out)
            continue
        if text.startswith('//', i):
            k = text.find('\n', i)
            i = n if k < 0 else k
            continue
        if c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == '\\':
                    j += 1
                elif text[j] == '\n':
                    break
                j += 1
            out.append(c + c)
            i = j + 1
            continue
        if c == '\n':
            at_line_start = True
        out.append(c)
        i += 1
    return ''.join(out)


IDENT = re.compile(r'[A-Za-z_][A-Za-z_0-9]*')
KEYWORDS = {'if', 'for', 'while', 'switch', 'return', 'sizeof', 'do', 'else', '__attribute__',
            'defined', 'offsetof', 'alignof', '_Alignof', 'typeof', '__typeof__'}


def functions(path):
    """Yield (name, first_line, last_line) for every function definition in a C file.
    A definition is a '{' at brace depth 0 whose preceding code ends with ')' (possibly
    followed by attributes); its signature starts after the previous top-level ';', '}'
    or directive."""
    with open(path, encoding='utf-8', errors='replace') as f:
        text = strip_c(f.read())
    depth = 0
    line = 1
    stmt_start = None  # (offset, line) of the first code char since the last top-level end
    func = None  # (name, first_line) while inside a function body
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '\n':
            line += 1
        elif depth == 0 and c in ';}':
            stmt_start = None
        elif depth == 0 and not c.isspace() and stmt_start is None and c != '{':
            stmt_start = (i, line)
        if c == '{':
            if depth == 0 and stmt_start is not None:
                head = text[stmt_start[0]:i]
                name = func_name(head)
                if name:
                    func = (name, stmt_start[1])
            depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0:
                if func is not None:
                    yield func[0], func[1], line
                    func = None
                stmt_start = None
        i += 1


def func_name(head):
    """The function name of a definition head ('static int foo(int a)'), or None when the
    '{' opens something else (struct, enum, initializer)."""
    h = head.strip()
    if not h or '=' in h.split('(')[0]:
        return None
    # Drop trailing attributes: __attribute__((...)).
    while True:
        m = re.search(r'__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)\s*$', h)
        if not m:
            break
        h = h[:m.start()].rstrip()
    if not h.endswith(')'):
        return None
    # The name is the identifier right before the first '(' that follows an identifier
    # which is not a keyword (skips things like 'int (*f(void))(int)' only approximately).
    for m in re.finditer(r'([A-Za-z_][A-Za-z_0-9]*)\s*\(', h):
        if m.group(1) not in KEYWORDS:
            return m.group(1)
    return None


def count_lines(path):
    with open(path, 'rb') as f:
        return f.read().count(b'\n')


# ---------------------------------------------------------------- graphs

def sccs(nodes, edges):
    """Strongly connected components with more than one node (or a self loop)."""
    index = {}
    low = {}
    stack = []
    on = set()
    out = []
    counter = [0]

    def visit(v):
        # Iterative Tarjan to stay clear of the recursion limit.
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in edges.get(node, ()):
                    out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def include_graph(root, files):
    """Edges file -> included file, for quoted includes that resolve inside the tree."""
    edges = {}
    for rel in files:
        with open(os.path.join(root, rel), encoding='utf-8', errors='replace') as f:
            text = f.read()
        here = os.path.dirname(rel)
        for inc in INCLUDE.findall(text):
            for cand in (os.path.join(here, inc), os.path.join('include', inc),
                         os.path.join('src', inc)):
                cand = os.path.normpath(cand)
                if os.path.isfile(os.path.join(root, cand)):
                    edges.setdefault(rel, set()).add(cand)
                    break
    return edges


def nm_symbols(obj):
    """(defined code symbols, undefined symbols) of an object file."""
    res = subprocess.run(['nm', obj], capture_output=True, text=True, check=True)
    defined, undefined = set(), set()
    for ln in res.stdout.splitlines():
        parts = ln.split()
        if len(parts) == 2 and parts[0] == 'U':
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] == 'T':
            defined.add(parts[2])
    return defined, undefined


def call_graph(objects):
    """objects: {source file: object path}. Returns (edges, why) where why[(a, b)] lists
    a few of the symbols a's object takes from b's."""
    defs = {}
    undefs = {}
    owner = {}
    for src, obj in objects.items():
        d, u = nm_symbols(obj)
        defs[src], undefs[src] = d, u
        for s in d:
            owner[s] = src
    edges, why = {}, {}
    for src, u in undefs.items():
        for s in sorted(u):
            dst = owner.get(s)
            if dst and dst != src:
                edges.setdefault(src, set()).add(dst)
                why.setdefault((src, dst), []).append(s)
    return edges, why


# ---------------------------------------------------------------- exceptions

def load_exceptions(path):
    ex = {}
    if not path or not os.path.exists(path):
        return ex
    with open(path, encoding='utf-8') as f:
        for no, ln in enumerate(f, 1):
            ln = ln.strip()
            if not ln or ln.startswith('#'):
                continue
            parts = ln.split(None, 3)
            if len(parts) < 4:
                raise SystemExit(f'{path}:{no}: want "kind file what reason", got: {ln}')
            kind, fil, what = parts[0], parts[1], parts[2]
            if kind not in ('func-size', 'file-size', 'include-cycle', 'call-cycle'):
                raise SystemExit(f'{path}:{no}: unknown kind {kind}')
            ex[(kind, fil, what)] = no
    return ex


# ---------------------------------------------------------------- main

def tracked_sources(root, dirs):
    out = []
    for d in dirs:
        full = os.path.join(root, d)
        if not os.path.isdir(full):
            continue
        for dp, _, fns in os.walk(full):
            for fn in sorted(fns):
                if fn.endswith(('.c', '.h')):
                    out.append(os.path.relpath(os.path.join(dp, fn), root))
    return sorted(out)


def find_objects(root, build, c_files):
    """Map each .c file to its object in the meson build dir (any target)."""
    objs = {}
    index = {}
    bdir = os.path.join(root, build) if not os.path.isabs(build) else build
    for dp, _, fns in os.walk(bdir):
        for fn in fns:
            if fn.endswith('.c.o'):
                index.setdefault(fn[:-2], []).append(os.path.join(dp, fn))
    missing = []
    for c in c_files:
        # meson names objects after the source path relative to the target's directory.
        base = os.path.basename(c)
        cands = index.get(base, [])
        # Prefer the object of the same directory in the build tree (src/x.c -> build/src/...).
        pref = [p for p in cands
                if os.path.relpath(p, bdir).startswith(os.path.dirname(c) + os.sep)]
        pick = pref or cands
        if not pick:
            missing.append(c)
            continue
        objs[c] = max(pick, key=os.path.getmtime)
    return objs, missing


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', default='.')
    ap.add_argument('--dirs', default='src,include')
    ap.add_argument('--build', default='build')
    ap.add_argument('--exceptions', default=None)
    ap.add_argument('--func-max', type=int, default=FUNC_MAX)
    ap.add_argument('--file-max', type=int, default=FILE_MAX)
    args = ap.parse_args(argv)
    root = args.root
    files = tracked_sources(root, args.dirs.split(','))
    c_files = [f for f in files if f.endswith('.c')]
    ex = load_exceptions(args.exceptions)
    used = set()
    failures = 0
    results = []

    def verdict(kind, fil, what, detail):
        """A violation: fine when listed, a failure otherwise."""
        key = (kind, fil, what)
        if key in ex:
            used.add(key)
            results.append(('listed', f'{kind} {fil} {what}: {detail} (listed exception)'))
        else:
            results.append(('FAIL', f'{kind} {fil} {what}: {detail}'))

    def report(label, before):
        nonlocal failures
        bad = [r for r in results[before:] if r[0] == 'FAIL']
        for r in results[before:]:
            print(('  ' if r[0] == 'listed' else '  FAIL ') + r[1])
        if bad:
            failures += 1
            print(f'FAIL {label}: {len(bad)} violation(s) not in the exceptions list')
        else:
            print(f'ok {label}')

    # 1. function sizes
    mark = len(results)
    nfunc = 0
    for f in files:
        for name, a, b in functions(os.path.join(root, f)):
            nfunc += 1
            if b - a + 1 > args.func_max:
                verdict('func-size', f, name, f'{b - a + 1} lines (lines {a}-{b}, max '
                        f'{args.func_max})')
    report(f'function sizes ({nfunc} functions, max {args.func_max} lines)', mark)

    # 2. file sizes
    mark = len(results)
    for f in c_files:
        n = count_lines(os.path.join(root, f))
        if n > args.file_max:
            verdict('file-size', f, '-', f'{n} lines (max {args.file_max})')
    report(f'file sizes ({len(c_files)} .c files, max {args.file_max} lines)', mark)

    # 3. include cycles
    mark = len(results)
    inc = include_graph(root, files)
    for comp in sccs(files, inc):
        verdict('include-cycle', '+'.join(comp), '-', 'files include each other')
    report(f'include graph ({len(files)} files) has no cycle', mark)

    # 4. call cycles
    mark = len(results)
    objs, missing = find_objects(root, args.build, c_files)
    if missing:
        results.append(('FAIL', 'call graph: no object file in '
                        f'{args.build} for {", ".join(missing)} (build first)'))
    else:
        edges, why = call_graph(objs)
        for comp in sccs(c_files, edges):
            inner = []
            for a in comp:
                for b in sorted(edges.get(a, ())):
                    if b in comp:
                        syms = why[(a, b)]
                        more = f' +{len(syms) - 3}' if len(syms) > 3 else ''
                        inner.append(f'{os.path.basename(a)}->{os.path.basename(b)} '
                                     f'({", ".join(syms[:3])}{more})')
            verdict('call-cycle', '+'.join(comp), '-', 'call each other: ' + '; '.join(inner))
    report(f'file-level call graph ({len(objs)} objects, nm) has no cycle', mark)

    # 5. stale exceptions
    stale = sorted(set(ex) - used, key=lambda k: ex[k])
    for k in stale:
        print(f'  FAIL exceptions line {ex[k]}: "{" ".join(k)}" no longer applies; delete it'
              ' (or update it to the violation reported above)')
    if stale:
        failures += 1
        print(f'FAIL exceptions list: {len(stale)} stale entr{"y" if len(stale) == 1 else "ies"}')
    else:
        print(f'ok exceptions list ({len(ex)} entries, all still apply)')

    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
