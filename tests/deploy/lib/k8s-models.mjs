// Kubernetes object checks backed by the `kubernetes-models` package:
//  - validateObject(): the model class of the object's apiVersion/kind and
//    its validate() (JSON-schema validation generated from the Kubernetes
//    OpenAPI spec);
//  - unknownFields(): the schema validation above accepts unknown keys (the
//    OpenAPI schemas do not set additionalProperties: false), so a typo such
//    as `imagePullPolcy` would pass. This walks the object against the field
//    lists of the model's TypeScript declarations (*.d.ts), which list every
//    field of every type, and reports each key that is not one of them.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const MODELS_DIR = path.dirname(require.resolve('kubernetes-models'));

function packageDir(name) {
    // Works whether npm hoisted the package or nested it.
    const candidates = [
        path.join(MODELS_DIR, 'node_modules', name),
        path.join(MODELS_DIR, '..', name),
        path.join(MODELS_DIR, '..', '..', name),
    ];
    for (const c of candidates) {
        if (fs.existsSync(path.join(c, 'package.json'))) return c;
    }
    throw new Error(`cannot find package ${name} near ${MODELS_DIR}`);
}

// CRD groups -> the @kubernetes-models package generated from their CRDs.
const CRD_PACKAGES = new Map([
    ['traefik.io', '@kubernetes-models/traefik'],
    ['cert-manager.io', '@kubernetes-models/cert-manager'],
    ['acme.cert-manager.io', '@kubernetes-models/cert-manager'],
]);

function modelDir(apiVersion) {
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
    const pkg = CRD_PACKAGES.get(group);
    return pkg ? path.dirname(require.resolve(`${pkg}/package.json`)) : MODELS_DIR;
}

export function isCrdModel(apiVersion) {
    return typeof apiVersion === 'string' && CRD_PACKAGES.has(apiVersion.split('/')[0]);
}

function modelFile(apiVersion, kind) {
    return path.join(modelDir(apiVersion), apiVersion, `${kind}.d.ts`);
}

export function hasModel(apiVersion, kind) {
    return typeof apiVersion === 'string' && typeof kind === 'string' &&
        !apiVersion.includes('..') && fs.existsSync(modelFile(apiVersion, kind));
}

// Schema validation through the model class. Returns a list of messages.
export function validateObject(obj) {
    const { apiVersion, kind } = obj;
    if (!hasModel(apiVersion, kind)) return [`no kubernetes-models class for ${apiVersion} ${kind}`];
    const mod = require(path.join(modelDir(apiVersion), apiVersion, `${kind}.js`));
    const Model = mod[kind];
    if (typeof Model !== 'function') return [`kubernetes-models ${apiVersion}/${kind} exports no ${kind}`];
    try {
        new Model(obj).validate();
        return [];
    } catch (e) {
        const details = Array.isArray(e.details) && e.details.length
            ? e.details.map((d) => `${d.instancePath || '/'} ${d.message}${d.params ? ' ' + JSON.stringify(d.params) : ''}`)
            : [String(e.message || e)];
        return details;
    }
}

// ---- field lists from the .d.ts declarations ------------------------------

function stripComments(src) {
    return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

// Index of the bracket closing the one opened at `open`.
function matching(src, open) {
    const pairs = { '{': '}', '<': '>', '(': ')', '[': ']' };
    const stack = [];
    for (let i = open; i < src.length; i++) {
        const c = src[i];
        if (c === '"') {
            i = src.indexOf('"', i + 1);
            if (i < 0) break;
            continue;
        }
        if (pairs[c]) stack.push(pairs[c]);
        else if (c === stack[stack.length - 1]) {
            stack.pop();
            if (stack.length === 0) return i;
        }
    }
    throw new Error('unbalanced declaration');
}

// Splits the body of an interface / object literal type into members.
function parseMembers(body) {
    const props = new Map();
    let index = null;
    let i = 0;
    while (i < body.length) {
        while (i < body.length && /[\s;,]/.test(body[i])) i++;
        if (i >= body.length) break;
        let name;
        let isIndex = false;
        if (body[i] === '"') {
            const end = body.indexOf('"', i + 1);
            name = body.slice(i + 1, end);
            i = end + 1;
        } else if (body[i] === '[') {
            const end = matching(body, i);
            isIndex = true;
            i = end + 1;
        } else {
            const m = /^[A-Za-z_$][\w$]*/.exec(body.slice(i));
            if (!m) throw new Error(`cannot parse member at: ${body.slice(i, i + 40)}`);
            name = m[0];
            i += name.length;
        }
        while (body[i] === '?' || /\s/.test(body[i])) i++;
        if (body[i] !== ':') {
            // A method or constructor signature: skip to the end of it.
            let depth = 0;
            while (i < body.length && !(depth === 0 && body[i] === ';')) {
                if ('{<(['.includes(body[i])) depth++;
                else if ('}>)]'.includes(body[i])) depth--;
                i++;
            }
            continue;
        }
        i++;
        const start = i;
        let depth = 0;
        while (i < body.length) {
            const c = body[i];
            if (c === '"') {
                i = body.indexOf('"', i + 1) + 1;
                continue;
            }
            if ('{<(['.includes(c)) depth++;
            else if ('}>)]'.includes(c)) depth--;
            else if (c === ';' && depth === 0) break;
            i++;
        }
        const type = body.slice(start, i).trim();
        if (isIndex) index = type;
        else props.set(name, type);
    }
    return { props, index };
}

const shapeCache = new Map();

function resolveImport(fromFile, spec) {
    let base;
    if (spec.startsWith('.')) base = path.resolve(path.dirname(fromFile), spec);
    else {
        const parts = spec.split('/');
        const pkg = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
        const rest = parts.slice(spec.startsWith('@') ? 2 : 1).join('/');
        base = path.join(pkg === 'kubernetes-models' ? MODELS_DIR : packageDir(pkg), rest);
    }
    for (const cand of [`${base}.d.ts`, path.join(base, 'index.d.ts')]) {
        if (fs.existsSync(cand)) return cand;
    }
    return null;
}

// The shape of the first interface declared in `file`: { props: Map(name ->
// type node), index: type node | null }, or null when the file declares a
// type alias (Quantity, IntOrString, ...) that is not an object.
function shapeOf(file) {
    if (shapeCache.has(file)) return shapeCache.get(file);
    shapeCache.set(file, null); // breaks reference cycles (JSONSchemaProps)
    const src = stripComments(fs.readFileSync(file, 'utf8'));
    const imports = new Map();
    for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
        for (const raw of m[1].split(',')) {
            const parts = raw.trim().split(/\s+as\s+/);
            const local = (parts[1] || parts[0]).trim();
            if (local) imports.set(local, { file: file, spec: m[2] });
        }
    }
    const im = /export\s+interface\s+(\w+)[^{]*\{/.exec(src);
    let shape = null;
    if (im) {
        const open = im.index + im[0].length - 1;
        const body = src.slice(open + 1, matching(src, open));
        const { props, index } = parseMembers(body);
        const ctx = { file, imports };
        shape = { props: new Map(), index: index ? typeNode(index, ctx) : null };
        for (const [k, t] of props) shape.props.set(k, typeNode(t, ctx));
    }
    shapeCache.set(file, shape);
    return shape;
}

// Type expression -> { kind: 'scalar' } | { kind: 'array', of } |
// { kind: 'object', shape } | { kind: 'ref', file }.
function typeNode(expr, ctx) {
    const t = expr.trim();
    const arr = /^Array<([\s\S]*)>$/.exec(t);
    if (arr && matching(t, t.indexOf('<')) === t.length - 1) return { kind: 'array', of: typeNode(arr[1], ctx) };
    if (t.startsWith('{') && matching(t, 0) === t.length - 1) {
        const { props, index } = parseMembers(t.slice(1, -1));
        const shape = { props: new Map(), index: index ? typeNode(index, ctx) : null };
        for (const [k, v] of props) shape.props.set(k, typeNode(v, ctx));
        return { kind: 'object', shape };
    }
    if (/^[A-Za-z_$][\w$]*$/.test(t) && ctx.imports.has(t)) {
        const { file, spec } = ctx.imports.get(t);
        const target = resolveImport(file, spec);
        if (target) return { kind: 'ref', file: target };
    }
    return { kind: 'scalar' };
}

function shapeFor(node) {
    if (node.kind === 'object') return node.shape;
    if (node.kind === 'ref') return shapeOf(node.file);
    return null;
}

function isPlainObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Walks `value` against a type node; pushes "path: unknown field" messages.
export function walkFields(value, node, where, out) {
    if (!node) return;
    if (node.kind === 'array') {
        if (Array.isArray(value)) value.forEach((v, i) => walkFields(v, node.of, `${where}[${i}]`, out));
        return;
    }
    const shape = shapeFor(node);
    if (!shape || !isPlainObject(value)) return;
    // An empty interface (RawExtension, JSON, ...) is open by definition.
    if (shape.props.size === 0 && !shape.index) return;
    for (const [k, v] of Object.entries(value)) {
        if (shape.props.has(k)) walkFields(v, shape.props.get(k), `${where}.${k}`, out);
        else if (shape.index) walkFields(v, shape.index, `${where}.${k}`, out);
        else out.push(`${where}.${k}: unknown field`);
    }
}

export function modelNode(apiVersion, kind) {
    return { kind: 'ref', file: modelFile(apiVersion, kind) };
}

// Unknown fields of a built-in object, as "kind/name .path: unknown field".
export function unknownFields(obj) {
    if (!hasModel(obj.apiVersion, obj.kind)) return [`no field list for ${obj.apiVersion} ${obj.kind}`];
    const out = [];
    walkFields(obj, modelNode(obj.apiVersion, obj.kind), '', out);
    return out;
}

// Type node of ObjectMeta, for the hand-written CRD schemas.
export function objectMetaNode() {
    return { kind: 'ref', file: resolveImport(modelFile('v1', 'Pod'), '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta') };
}
