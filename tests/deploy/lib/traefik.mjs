// Minimal schema of the Traefik CRDs used by deploy/k8s (IngressRoute,
// traefik.io/v1alpha1, Traefik v3), a parser/evaluator of Traefik v3 rule
// expressions, and the router Traefik would pick for a request.
import { walkFields, objectMetaNode } from './k8s-models.mjs';

const scalar = { kind: 'scalar' };
const arrayOf = (of) => ({ kind: 'array', of });
const objectOf = (fields, index = null) => ({
    kind: 'object',
    shape: { props: new Map(Object.entries(fields)), index },
});

const objectRef = objectOf({ name: scalar, namespace: scalar });

// Field list of IngressRoute (subset of the CRD's openAPIV3Schema that a
// route may use; anything else is reported as unknown).
const service = objectOf({
    kind: scalar, name: scalar, namespace: scalar, port: scalar, scheme: scalar,
    passHostHeader: scalar, weight: scalar, serversTransport: scalar,
    nativeLB: scalar, nodePortLB: scalar, strategy: scalar,
    responseForwarding: objectOf({ flushInterval: scalar }),
    sticky: objectOf({
        cookie: objectOf({ name: scalar, secure: scalar, httpOnly: scalar, sameSite: scalar, maxAge: scalar, path: scalar }),
    }),
    healthCheck: objectOf({
        path: scalar, interval: scalar, timeout: scalar, scheme: scalar, mode: scalar,
        hostname: scalar, port: scalar, followRedirects: scalar, status: scalar, method: scalar,
        headers: objectOf({}, scalar),
    }),
});

const INGRESS_ROUTE = objectOf({
    apiVersion: scalar,
    kind: scalar,
    metadata: null, // filled lazily (ObjectMeta from kubernetes-models)
    spec: objectOf({
        entryPoints: arrayOf(scalar),
        routes: arrayOf(objectOf({
            kind: scalar, match: scalar, priority: scalar, syntax: scalar, observability: objectOf({
                accessLogs: scalar, metrics: scalar, tracing: scalar,
            }),
            middlewares: arrayOf(objectRef),
            services: arrayOf(service),
        })),
        tls: objectOf({
            certResolver: scalar, secretName: scalar, options: objectRef, store: objectRef,
            domains: arrayOf(objectOf({ main: scalar, sans: arrayOf(scalar) })),
        }),
    }),
});

export const CRD_KINDS = new Set(['traefik.io/v1alpha1/IngressRoute']);

export function isCrd(obj) {
    return CRD_KINDS.has(`${obj.apiVersion}/${obj.kind}`);
}

function ingressRouteNode() {
    if (!INGRESS_ROUTE.shape.props.get('metadata')) INGRESS_ROUTE.shape.props.set('metadata', objectMetaNode());
    return INGRESS_ROUTE;
}

export function crdUnknownFields(obj) {
    const out = [];
    walkFields(obj, ingressRouteNode(), '', out);
    return out;
}

const isInt = (v) => Number.isInteger(v);

// Value checks of the minimal schema. Returns messages.
export function validateCrd(obj) {
    const errs = [];
    const meta = obj.metadata || {};
    if (typeof meta.name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(meta.name)) errs.push('metadata.name: missing or not a DNS name');
    if (typeof meta.namespace !== 'string' || meta.namespace === '') errs.push('metadata.namespace: required');
    const spec = obj.spec;
    if (!spec || typeof spec !== 'object') return [...errs, 'spec: required'];
    if (!Array.isArray(spec.entryPoints) || spec.entryPoints.length === 0 ||
        !spec.entryPoints.every((e) => typeof e === 'string' && e)) errs.push('spec.entryPoints: non-empty list of names required');
    if (!Array.isArray(spec.routes) || spec.routes.length === 0) errs.push('spec.routes: non-empty list required');
    (spec.routes || []).forEach((r, i) => {
        const at = `spec.routes[${i}]`;
        if (r.kind !== 'Rule') errs.push(`${at}.kind: must be Rule`);
        if (typeof r.match !== 'string' || !r.match.trim()) errs.push(`${at}.match: required`);
        else {
            try { parseRule(r.match); } catch (e) { errs.push(`${at}.match: ${e.message}`); }
        }
        if (r.priority !== undefined && (!isInt(r.priority) || r.priority < 0)) errs.push(`${at}.priority: non-negative integer`);
        if (!Array.isArray(r.services) || r.services.length === 0) errs.push(`${at}.services: non-empty list required`);
        (r.services || []).forEach((s, j) => {
            if (typeof s.name !== 'string' || !s.name) errs.push(`${at}.services[${j}].name: required`);
            if (s.kind !== undefined && !['Service', 'TraefikService'].includes(s.kind)) errs.push(`${at}.services[${j}].kind: Service or TraefikService`);
            if (!(isInt(s.port) && s.port > 0 && s.port < 65536) && !(typeof s.port === 'string' && s.port)) errs.push(`${at}.services[${j}].port: port number or name required`);
        });
    });
    if (spec.tls !== undefined) {
        if (!spec.tls || typeof spec.tls !== 'object') errs.push('spec.tls: object');
        else if (spec.tls.certResolver !== undefined && (typeof spec.tls.certResolver !== 'string' || !spec.tls.certResolver)) errs.push('spec.tls.certResolver: non-empty string');
    }
    return errs;
}

// ---- Traefik v3 rule expressions ------------------------------------------
// Grammar: expr := or; or := and ('||' and)*; and := unary ('&&' unary)*;
// unary := '!' unary | '(' expr ')' | Matcher '(' `arg` ')'.
// Traefik v3 matchers take exactly one argument (v2's multi-argument forms
// and Headers/HostHeader are gone).
const MATCHERS = new Set(['Host', 'HostRegexp', 'Path', 'PathPrefix', 'PathRegexp', 'Method',
    'Header', 'HeaderRegexp', 'Query', 'QueryRegexp', 'ClientIP']);
const TWO_ARG = new Set(['Header', 'HeaderRegexp', 'Query', 'QueryRegexp']);

function tokenize(src) {
    const toks = [];
    let i = 0;
    while (i < src.length) {
        const c = src[i];
        if (/\s/.test(c)) { i++; continue; }
        if (src.startsWith('&&', i) || src.startsWith('||', i)) { toks.push({ t: src.slice(i, i + 2) }); i += 2; continue; }
        if ('()!,'.includes(c)) { toks.push({ t: c }); i++; continue; }
        if (c === '`' || c === '"') {
            const end = src.indexOf(c, i + 1);
            if (end < 0) throw new Error(`unterminated string at ${i}`);
            toks.push({ t: 'str', v: src.slice(i + 1, end) });
            i = end + 1;
            continue;
        }
        const m = /^[A-Za-z]+/.exec(src.slice(i));
        if (!m) throw new Error(`unexpected '${c}' at ${i}`);
        toks.push({ t: 'id', v: m[0] });
        i += m[0].length;
    }
    return toks;
}

export function parseRule(src) {
    const toks = tokenize(src);
    let p = 0;
    const peek = () => toks[p] && toks[p].t;
    const expect = (t) => {
        if (peek() !== t) throw new Error(`expected '${t}' at token ${p}`);
        return toks[p++];
    };
    function unary() {
        if (peek() === '!') { p++; return { op: 'not', a: unary() }; }
        if (peek() === '(') { p++; const e = or(); expect(')'); return e; }
        const id = expect('id').v;
        if (!MATCHERS.has(id)) throw new Error(`unknown matcher ${id} (Traefik v3)`);
        expect('(');
        const args = [expect('str').v];
        while (peek() === ',') { p++; args.push(expect('str').v); }
        expect(')');
        const want = TWO_ARG.has(id) ? 2 : 1;
        if (args.length !== want) throw new Error(`${id} takes ${want} argument(s) in Traefik v3`);
        if (id.endsWith('Regexp')) {
            try { new RegExp(args[args.length - 1]); } catch (e) { throw new Error(`${id}: bad regexp: ${e.message}`); }
        }
        return { op: 'm', id, args };
    }
    function and() {
        let e = unary();
        while (peek() === '&&') { p++; e = { op: 'and', a: e, b: unary() }; }
        return e;
    }
    function or() {
        let e = and();
        while (peek() === '||') { p++; e = { op: 'or', a: e, b: and() }; }
        return e;
    }
    const e = or();
    if (p !== toks.length) throw new Error(`trailing tokens after position ${p}`);
    return e;
}

// Evaluates a parsed rule against { host, path, method }.
export function matches(ast, req) {
    switch (ast.op) {
    case 'not': return !matches(ast.a, req);
    case 'and': return matches(ast.a, req) && matches(ast.b, req);
    case 'or': return matches(ast.a, req) || matches(ast.b, req);
    default: break;
    }
    const [arg] = ast.args;
    switch (ast.id) {
    case 'Host': return req.host.toLowerCase() === arg.toLowerCase();
    case 'HostRegexp': return new RegExp(arg).test(req.host);
    case 'Path': return req.path === arg;
    case 'PathPrefix': return req.path.startsWith(arg);
    case 'PathRegexp': return new RegExp(arg).test(req.path);
    case 'Method': return (req.method || 'GET') === arg;
    default: return false;
    }
}

// Traefik's default priority is the length of the rule.
export function priorityOf(route) {
    return Number.isInteger(route.priority) && route.priority > 0 ? route.priority : route.match.length;
}

// The route (and its first service) Traefik would choose among `routes`
// (list of { route, ingressRoute }) for a request, or null.
export function pickRoute(entries, req) {
    const hits = entries
        .filter(({ route }) => matches(parseRule(route.match), req))
        .sort((x, y) => priorityOf(y.route) - priorityOf(x.route));
    if (hits.length === 0) return null;
    if (hits.length > 1 && priorityOf(hits[0].route) === priorityOf(hits[1].route)) {
        const a = hits[0].route.services[0].name;
        const b = hits[1].route.services[0].name;
        if (a !== b) throw new Error(`ambiguous routes for ${req.path}: equal priority, ${a} vs ${b}`);
    }
    return hits[0];
}
