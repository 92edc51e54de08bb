// Checks of docker/ without a Docker engine.
//   node docker.mjs static REPO_ROOT          Dockerfiles, .dockerignore, compose.yaml
//   node docker.mjs runtime-libs REPO_ROOT BIN every shared library BIN needs
//                                               comes from the runtime stage
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';
import { Report, collector } from './lib/report.mjs';

const [mode, rootArg, binArg] = process.argv.slice(2);
const root = path.resolve(rootArg || '../..');
const report = new Report();

const BUILD_DEPS = ['meson', 'ninja-build', 'pkg-config', 'gcc', 'libuv1-dev', 'libhiredis-dev', 'libcjson-dev',
    'libssl-dev', 'node-llhttp'];
const RUNTIME_LIBS = ['libuv1', 'libhiredis0.14', 'libcjson1', 'libssl3', 'ca-certificates'];
// Packages every debian:bookworm-slim image already has.
const BASE_IMAGE_PACKAGES = new Set(['libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g']);

// Dockerfile -> [{ op, args, stage }] with continuations joined, comments dropped.
export function parseDockerfile(text) {
    const out = [];
    let buf = '';
    let stage = -1;
    for (const raw of text.split('\n')) {
        const line = raw.replace(/\r$/, '');
        if (!buf && /^\s*#/.test(line)) continue;
        if (buf && /^\s*#/.test(line)) continue;
        if (/\\\s*$/.test(line)) {
            buf += line.replace(/\\\s*$/, ' ');
            continue;
        }
        buf += line;
        const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buf);
        buf = '';
        if (!m) continue;
        const op = m[1].toUpperCase();
        if (op === 'FROM') stage++;
        out.push({ op, args: m[2].trim(), stage });
    }
    return out;
}

function aptPackages(runArgs) {
    const pkgs = [];
    for (const m of runArgs.matchAll(/apt-get\s+install\s+([^&;|]*)/g)) {
        for (const w of m[1].split(/\s+/)) if (w && !w.startsWith('-')) pkgs.push(w);
    }
    return pkgs;
}

function checkMainDockerfile() {
    const { problems, expect } = collector();
    const file = path.join(root, 'docker', 'Dockerfile');
    if (!expect(fs.existsSync(file), 'docker/Dockerfile missing')) return problems;
    const ins = parseDockerfile(fs.readFileSync(file, 'utf8'));
    const froms = ins.filter((i) => i.op === 'FROM');
    expect(froms.length === 2, `two stages, found ${froms.length}`);
    expect(froms[0] && /^debian:bookworm(@sha256:[0-9a-f]{64})?\s+AS\s+build$/i.test(froms[0].args), `build stage FROM debian:bookworm AS build (${froms[0] && froms[0].args})`);
    const last = froms.length - 1;
    expect(froms[last] && /^debian:bookworm-slim(@sha256:[0-9a-f]{64})?(\s+AS\s+\w+)?$/i.test(froms[last].args), `runtime stage FROM debian:bookworm-slim (${froms[last] && froms[last].args})`);
    const runs = (stage) => ins.filter((i) => i.stage === stage && i.op === 'RUN').map((i) => i.args).join(' && ');
    const buildPkgs = aptPackages(runs(0));
    for (const p of BUILD_DEPS) expect(buildPkgs.includes(p), `build stage installs ${p}`);
    expect(/(^|\s|&&\s*)(sh\s+)?\.?\/?docker\/build\.sh\s+\S+/.test(runs(0)), 'build stage runs docker/build.sh DESTDIR');
    const runtimePkgs = aptPackages(runs(last));
    expect(JSON.stringify([...runtimePkgs].sort()) === JSON.stringify([...RUNTIME_LIBS].sort()),
        `runtime stage installs exactly ${RUNTIME_LIBS.join(' ')} (has ${runtimePkgs.join(' ')})`);
    for (const s of [0, last]) {
        const r = runs(s);
        expect(/--no-install-recommends/.test(r), `stage ${s}: apt-get install --no-install-recommends`);
        expect(/rm -rf \/var\/lib\/apt\/lists/.test(r), `stage ${s}: apt lists removed`);
    }
    expect(/useradd[^&]*--uid 10001/.test(runs(last)), 'runtime stage creates a user with uid 10001');
    const users = ins.filter((i) => i.op === 'USER' && i.stage === last);
    expect(users.length && /^10001(:10001)?$/.test(users[users.length - 1].args), 'runtime stage runs as USER 10001');
    expect(!ins.some((i) => i.op === 'HEALTHCHECK'), 'no HEALTHCHECK (Kubernetes probes /healthz and /readyz)');
    expect(!ins.some((i) => i.op === 'ADD'), 'COPY, not ADD');
    const ep = ins.filter((i) => i.op === 'ENTRYPOINT').pop();
    expect(ep && ep.args === '["pod-router"]', 'ENTRYPOINT ["pod-router"] (exec form)');
    const exposed = ins.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => p.replace(/\/tcp$/, ''));
    expect(exposed.includes('3001') && exposed.includes('3002') && exposed.length === 2, `EXPOSE 3001 3002 (has ${exposed.join(' ')})`);
    const copies = ins.filter((i) => i.op === 'COPY');
    for (const c of copies.filter((x) => x.stage === last)) {
        expect(/^--from=build\s+\S*\/bin\/pod-router\s+\S+$/.test(c.args), `runtime stage copies only the binary from the build stage (${c.args})`);
    }
    for (const c of copies.filter((x) => x.stage === 0)) {
        const parts = c.args.split(/\s+/).filter((w) => !w.startsWith('--'));
        for (const src of parts.slice(0, -1)) expect(fs.existsSync(path.join(root, src)), `COPY source ${src} missing from the repository`);
    }
    return problems;
}

// The paths the build stage copies, for run.sh's staged host build.
function buildContext() {
    const ins = parseDockerfile(fs.readFileSync(path.join(root, 'docker', 'Dockerfile'), 'utf8'));
    return ins.filter((i) => i.stage === 0 && i.op === 'COPY')
        .flatMap((i) => i.args.split(/\s+/).filter((w) => !w.startsWith('--')).slice(0, -1));
}

function checkBackendDockerfile() {
    const { problems, expect } = collector();
    const file = path.join(root, 'docker', 'Dockerfile.backend-example');
    if (!expect(fs.existsSync(file), 'docker/Dockerfile.backend-example missing')) return problems;
    const ins = parseDockerfile(fs.readFileSync(file, 'utf8'));
    const from = ins.find((i) => i.op === 'FROM');
    expect(from && /^node:20-bookworm-slim(@sha256:[0-9a-f]{64})?$/.test(from.args), `FROM node:20-bookworm-slim (${from && from.args})`);
    const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args).join(' && ');
    expect(/npm ci\b[^&]*--omit=dev/.test(runs), 'npm ci --omit=dev');
    const user = ins.filter((i) => i.op === 'USER').pop();
    expect(user && /^[1-9][0-9]*(:[0-9]+)?$/.test(user.args),
        `runs as a numeric non-root USER (runAsNonRoot cannot verify a user name): ${user && user.args}`);
    expect(!ins.some((i) => i.op === 'ADD'), 'COPY, not ADD');
    for (const c of ins.filter((i) => i.op === 'COPY')) {
        const parts = c.args.split(/\s+/).filter((w) => !w.startsWith('--'));
        for (const src of parts.slice(0, -1)) expect(fs.existsSync(path.join(root, src)), `COPY source ${src} missing`);
    }
    const cmd = ins.filter((i) => i.op === 'CMD').pop();
    const script = cmd && (/"([^"]+\.js)"/.exec(cmd.args) || [])[1];
    expect(script && fs.existsSync(path.join(root, 'examples', 'backend', script)), `CMD runs an existing examples/backend script (${script})`);
    return problems;
}

// Minimal .dockerignore semantics: patterns relative to the context root,
// `**/` prefixes, trailing `/`, `*` within a segment.
function ignored(patterns, rel) {
    let res = false;
    for (let p of patterns) {
        const neg = p.startsWith('!');
        if (neg) p = p.slice(1);
        p = p.replace(/^\//, '').replace(/\/$/, '');
        const re = new RegExp(`^${p.split('/').map((seg) => (seg === '**' ? '(?:.*/)?' : `${seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}/`)).join('').replace(/\/$/, '')}(/.*)?$`.replace('(?:.*/)?/', '(?:.*/)?'));
        if (re.test(rel)) res = !neg;
    }
    return res;
}

function checkDockerignore() {
    const { problems, expect } = collector();
    const file = path.join(root, '.dockerignore');
    if (!expect(fs.existsSync(file), '.dockerignore missing')) return problems;
    const pats = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['.git', 'node_modules', 'examples/backend/node_modules', 'build', 'build-asan', 'tests/deploy/node_modules']) {
        expect(ignored(pats, p), `${p} is excluded from the build context`);
    }
    for (const p of [...buildContext(), 'examples/backend/package.json', 'examples/backend/package-lock.json', 'examples/backend/server.js', 'docker/build.sh']) {
        expect(!ignored(pats, p.replace(/\/$/, '')), `${p} (needed by a Dockerfile) is excluded by .dockerignore`);
    }
    return problems;
}

function checkCompose() {
    const { problems, expect } = collector();
    const file = path.join(root, 'docker', 'compose.yaml');
    if (!expect(fs.existsSync(file), 'docker/compose.yaml missing')) return problems;
    const doc = YAML.parse(fs.readFileSync(file, 'utf8'), { merge: true });
    const svcs = doc.services || {};
    const vols = new Set(Object.keys(doc.volumes || {}));
    const nets = new Set(Object.keys(doc.networks || {}));
    const argv = (s) => [...(Array.isArray(s.entrypoint) ? s.entrypoint : []), ...(Array.isArray(s.command) ? s.command : String(s.command || '').split(/\s+/))];
    for (const [name, s] of Object.entries(svcs)) {
        expect(s.image || s.build, `${name}: image or build`);
        if (s.build) {
            const ctx = path.resolve(path.dirname(file), s.build.context || '.');
            expect(fs.existsSync(path.join(ctx, s.build.dockerfile || 'Dockerfile')), `${name}: dockerfile ${s.build.dockerfile} not found from context ${s.build.context}`);
        }
        const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on || {});
        for (const d of deps) expect(svcs[d], `${name}: depends_on unknown service ${d}`);
        for (const v of s.volumes || []) {
            const src = typeof v === 'string' ? v.split(':')[0] : v.source;
            if (src && !src.startsWith('.') && !src.startsWith('/')) expect(vols.has(src), `${name}: volume ${src} not declared`);
        }
        for (const n of Object.keys(s.networks || {})) expect(nets.has(n), `${name}: network ${n} not declared`);
    }
    const redis = svcs.redis;
    expect(redis && argv(redis).join(' ').includes('--appendonly yes'), 'redis with --appendonly yes');
    const routers = Object.entries(svcs).filter(([, s]) => argv(s)[0] === 'serve');
    expect(routers.length === 2, `two pod-router services (serve), found ${routers.length}`);
    for (const [name, s] of routers) {
        const a = argv(s);
        expect(a[a.indexOf('--store') + 1] === 'redis://redis:6379', `${name}: --store redis://redis:6379`);
        const tokenFile = a[a.indexOf('--token-file') + 1];
        expect(a.includes('--token-file') && (s.volumes || []).some((v) => tokenFile.startsWith(String(v).split(':')[1])),
            `${name}: --token-file on a mounted volume (remote registration needs a token)`);
    }
    const backends = Object.entries(svcs).filter(([, s]) => s.environment && s.environment.POD_NAME);
    expect(backends.length === 3, `three example pods, found ${backends.length}`);
    const routerNames = new Set(routers.map(([n]) => n));
    for (const [name, s] of backends) {
        const e = s.environment;
        for (const k of ['PORT', 'HOST', 'POD_NAME', 'ROUTER_ADMIN_URL', 'POD_ADDRESS', 'HEARTBEAT_MS']) expect(e[k] !== undefined, `${name}: env ${k}`);
        const u = /^http:\/\/([^:/]+):3002$/.exec(e.ROUTER_ADMIN_URL || '');
        expect(u && routerNames.has(u[1]), `${name}: ROUTER_ADMIN_URL ${e.ROUTER_ADMIN_URL} is a router's admin port`);
        expect(e.HOST === '0.0.0.0', `${name}: HOST 0.0.0.0 (the example listens on 127.0.0.1 by default)`);
        const ip = (e.POD_ADDRESS || '').split(':')[0];
        const own = Object.values(s.networks || {}).map((n) => n && n.ipv4_address);
        expect(own.includes(ip) || ip === name, `${name}: POD_ADDRESS ${e.POD_ADDRESS} is this container's address`);
        expect(e.POD_ADDRESS && e.POD_ADDRESS.endsWith(`:${e.PORT}`), `${name}: POD_ADDRESS port matches PORT`);
        expect(e.ROUTER_TOKEN_FILE, `${name}: ROUTER_TOKEN_FILE (routers require the token)`);
    }
    return problems;
}

if (mode === 'static') {
    report.check('docker/Dockerfile: bookworm build stage running docker/build.sh; slim non-root runtime with only runtime libs', checkMainDockerfile);
    report.check('docker/Dockerfile.backend-example: node:20-bookworm-slim, npm ci --omit=dev, non-root', checkBackendDockerfile);
    report.check('.dockerignore keeps local state out and what the Dockerfiles copy in', checkDockerignore);
    report.check('docker/compose.yaml: redis (AOF), two routers on it, three registering example pods', checkCompose);
} else if (mode === 'build-context') {
    process.stdout.write(buildContext().join('\n') + '\n');
    process.exit(0);
} else if (mode === 'runtime-libs') {
    report.check('runtime stage provides every shared library of the built binary', () => {
        const { problems, expect } = collector();
        const bin = path.resolve(binArg);
        const ldd = execFileSync('ldd', [bin], { encoding: 'utf8' });
        const pkgs = new Set();
        for (const line of ldd.split('\n')) {
            const m = /^\s*(\S+)\s+=>\s+(\S+)/.exec(line);
            if (!m) continue;
            expect(m[2] !== 'not', `${m[1]} not found`);
            if (m[2] === 'not') continue;
            let owner = '';
            for (const p of [m[2], fs.realpathSync(m[2])]) {
                try {
                    owner = execFileSync('dpkg', ['-S', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(':')[0];
                    break;
                } catch { /* try the resolved path */ }
            }
            expect(owner, `${m[1]}: no Debian package owns ${m[2]}`);
            if (owner) pkgs.add(owner.replace(/:.*$/, ''));
        }
        for (const p of pkgs) {
            expect(RUNTIME_LIBS.includes(p) || BASE_IMAGE_PACKAGES.has(p), `the binary needs package ${p}, which the runtime stage does not install`);
        }
        console.log(`#   needs: ${[...pkgs].sort().join(' ')}`);
        return problems;
    });
} else {
    console.error('usage: node docker.mjs static|build-context|runtime-libs REPO_ROOT [BINARY]');
    process.exit(2);
}

console.log(`# docker: ${report.passed} ok, ${report.failed} not ok`);
process.exit(report.failed ? 1 : 0);
