// The pod-router arguments and POD_ROUTER_* variables written in the
// manifests and in docker/compose.yaml are flags of the built binary, with
// values of the right shape (its `serve --help` / `register --help` are the
// reference).
//   node flags.mjs BINARY COMPOSE_FILE RENDER...
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';
import { Report, collector } from './lib/report.mjs';
import { loadRender, workloads, podSpecOf, allContainers, idOf } from './lib/objects.mjs';

const [bin, composeFile, ...renderFiles] = process.argv.slice(2);
const report = new Report();

// "--flag METAVAR  help" + "default ...; env POD_ROUTER_X" -> Map(flag -> { metavar, env })
function helpFlags(sub) {
    const text = execFileSync(bin, [sub, '--help'], { encoding: 'utf8' });
    const flags = new Map();
    let last = null;
    for (const line of text.split('\n')) {
        const m = /^\s{2}--([a-z0-9-]+)(?:\s+([A-Z][A-Z:_]*))?\s{2,}/.exec(line) || /^\s{2}--([a-z0-9-]+)(?:\s+([A-Z][A-Z:_]*))?\s*$/.exec(line);
        if (m) {
            last = { name: m[1], metavar: m[2] || 'BOOL', env: null };
            flags.set(m[1], last);
            continue;
        }
        const e = /env (POD_ROUTER_[A-Z0-9_]+)/.exec(line);
        if (e && last) last.env = e[1];
    }
    return flags;
}

const SHAPES = {
    DURATION: /^\d+(ms|s|m|h)$/,
    N: /^\d+$/,
    BYTES: /^\d+$/,
    'HOST:PORT': /^(\$\([A-Z_]+\)|[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d+)$/,
    URL: /^(https?|redis|redis-sentinel):\/\/\S+$|^memory$/,
    LEVEL: /^(debug|info|warn|error)$/,
    FORMAT: /^(json|text)$/,
    BOOL: /^(true|false)$/,
};

function checkArgs(where, args, env, tables, problems) {
    const sub = args[0] === 'register' ? 'register' : 'serve';
    const flags = tables[sub];
    const rest = args[0] === 'register' || args[0] === 'serve' ? args.slice(1) : args;
    for (let i = 0; i < rest.length; i++) {
        const a = rest[i];
        if (!a.startsWith('--')) {
            problems.push(`${where}: stray argument "${a}"`);
            continue;
        }
        const [name, inline] = a.slice(2).split(/=(.*)/s);
        const f = flags.get(name);
        if (!f) {
            problems.push(`${where}: --${name} is not a \`pod-router ${sub}\` flag`);
            continue;
        }
        let value = inline;
        if (value === undefined && f.metavar !== 'BOOL') {
            value = rest[i + 1];
            i++;
        }
        if (value === undefined || value.startsWith('--')) {
            problems.push(`${where}: --${name} needs a value (${f.metavar})`);
            continue;
        }
        const shape = SHAPES[f.metavar];
        if (shape && !shape.test(value)) problems.push(`${where}: --${name} ${value} is not a ${f.metavar}`);
    }
    const envNames = new Set([...flags.values()].map((f) => f.env));
    for (const e of env) {
        if (e.name.startsWith('POD_ROUTER_') && !envNames.has(e.name)) problems.push(`${where}: ${e.name} is not a \`pod-router ${sub}\` variable`);
        const f = [...flags.values()].find((x) => x.env === e.name);
        if (f && typeof e.value === 'string' && SHAPES[f.metavar] && !SHAPES[f.metavar].test(e.value)) {
            problems.push(`${where}: ${e.name}=${e.value} is not a ${f.metavar}`);
        }
    }
}

report.check('pod-router arguments in deploy/k8s and docker/compose.yaml are flags of the built binary', () => {
    const { problems, expect } = collector();
    const tables = { serve: helpFlags('serve'), register: helpFlags('register') };
    expect(tables.serve.size > 5 && tables.register.size > 3, 'could not read the flag tables from --help');
    let seen = 0;
    for (const file of renderFiles) {
        for (const w of workloads(loadRender(file))) {
            for (const c of allContainers(podSpecOf(w))) {
                if (!/(^|\/)pod-router(:|$)/.test(c.image || '')) continue;
                seen++;
                checkArgs(`${file.replace(/.*\//, '')} ${idOf(w)} ${c.name}`, c.args || [], c.env || [], tables, problems);
            }
        }
    }
    const compose = YAML.parse(fs.readFileSync(composeFile, 'utf8'), { merge: true });
    for (const [name, s] of Object.entries(compose.services || {})) {
        if (!/^pod-router(:|$)/.test(s.image || '')) continue;
        seen++;
        const env = Object.entries(s.environment || {}).map(([k, v]) => ({ name: k, value: String(v) }));
        checkArgs(`compose ${name}`, s.command || [], env, tables, problems);
    }
    expect(seen >= 4, `only ${seen} pod-router containers found`);
    return problems;
});

process.exit(report.failed ? 1 : 0);
