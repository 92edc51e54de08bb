// RBAC sufficiency of the CI identity: every kubectl call of the deploy job
// of deploy-application.yml, and every object it applies, against the rules
// bound to ServiceAccount github-actions in the target namespace.
//   node rbac.mjs REPO_ROOT production=FILE development=FILE
// Prints the table of required (group, resource, verb) per command.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { Report, collector } from './lib/report.mjs';
import { loadRender } from './lib/objects.mjs';
import { grantedRules, rulesGrant } from './lib/stack.mjs';

const [rootArg, ...renderArgs] = process.argv.slice(2);
const root = path.resolve(rootArg || '../..');
const report = new Report();
const NAMESPACES = { production: 'hyperstudy', development: 'hyperstudy-dev' };

// kind -> [group, plural, namespaced]
const KINDS = {
    Deployment: ['apps', 'deployments', true], StatefulSet: ['apps', 'statefulsets', true],
    Service: ['', 'services', true], ConfigMap: ['', 'configmaps', true], Secret: ['', 'secrets', true],
    ServiceAccount: ['', 'serviceaccounts', true], Pod: ['', 'pods', true],
    PersistentVolumeClaim: ['', 'persistentvolumeclaims', true],
    HorizontalPodAutoscaler: ['autoscaling', 'horizontalpodautoscalers', true],
    PodDisruptionBudget: ['policy', 'poddisruptionbudgets', true],
    NetworkPolicy: ['networking.k8s.io', 'networkpolicies', true],
    IngressRoute: ['traefik.io', 'ingressroutes', true], Certificate: ['cert-manager.io', 'certificates', true],
    Role: ['rbac.authorization.k8s.io', 'roles', true], RoleBinding: ['rbac.authorization.k8s.io', 'rolebindings', true],
    Namespace: ['', 'namespaces', false], ClusterRole: ['rbac.authorization.k8s.io', 'clusterroles', false],
    ClusterRoleBinding: ['rbac.authorization.k8s.io', 'clusterrolebindings', false], ClusterIssuer: ['cert-manager.io', 'clusterissuers', false],
};
const SHORT = {
    deployment: 'Deployment', deploy: 'Deployment', deployments: 'Deployment', statefulset: 'StatefulSet', sts: 'StatefulSet',
    hpa: 'HorizontalPodAutoscaler', horizontalpodautoscaler: 'HorizontalPodAutoscaler', secret: 'Secret', secrets: 'Secret',
    pods: 'Pod', pod: 'Pod', svc: 'Service', service: 'Service', configmap: 'ConfigMap',
};

// The kubectl commands of the deploy job, one per line (continuations joined).
function kubectlCommands(wf) {
    const out = [];
    for (const step of wf.jobs.deploy.steps || []) {
        if (typeof step.run !== 'string') continue;
        const text = step.run.replace(/\\\n\s*/g, ' ');
        // A shell helper `NAME() { kubectl ... get "$1" ...; }` is expanded at its call sites.
        const helpers = [...text.matchAll(/^\s*([a-z_]+)\(\)\s*\{\s*kubectl[^}]*\bget "\$1"/gm)].map((m) => m[1]);
        for (const line of text.split('\n')) {
            if (helpers.some((h) => new RegExp(`^\\s*${h}\\(\\)`).test(line))) continue;
            for (const m of line.matchAll(/kubectl\s+([^|;&]*)/g)) out.push({ step: step.name, cmd: m[1].trim(), line: line.trim() });
            for (const h of helpers) {
                for (const m of line.matchAll(new RegExp(`\\b${h}\\s+([a-z]+/[a-z0-9-]+)`, 'g'))) {
                    out.push({ step: step.name, cmd: `get ${m[1]}`, line: line.trim() });
                }
            }
        }
    }
    return out;
}

// (group, resource, verb) needed by one kubectl command, given the objects
// `apply` would send.
function needsOf({ cmd, line }, appObjects) {
    const args = cmd.replace(/-n\s+"?\$NS"?\s*/, '').split(/\s+/);
    const verb = args[0];
    const need = [];
    const res = (kind, verbs, sub) => {
        const k = KINDS[kind];
        for (const v of verbs) need.push([k[0], k[1] + (sub ? `/${sub}` : ''), v, k[2]]);
    };
    const target = (s) => SHORT[(s || '').split('/')[0].replace(/,.*/, '')];
    if (verb === 'config' || verb === 'kustomize' || verb === 'version' || (verb === 'get' && args[1] === '--raw')) return need;
    if (verb === 'apply') {
        if (/create secret generic/.test(line)) res('Secret', ['get', 'create', 'patch']);
        else for (const o of appObjects) res(o.kind, ['get', 'create', 'patch']);
        return need;
    }
    if (verb === 'create' && args[1] === 'secret') return need; // --dry-run=client: no API call
    if (verb === 'get') {
        const kinds = args[1].includes(',') && !args[1].includes('/') ? args[1].split(',') : [args[1]];
        for (const k of kinds) {
            const kind = target(k);
            if (!kind) throw new Error(`unknown resource in: kubectl ${cmd}`);
            res(kind, k.includes('/') || args.length > 2 && !args[2].startsWith('-') ? ['get'] : ['list']);
        }
        return need;
    }
    if (verb === 'rollout') {
        const kind = target(args[2]);
        if (args[1] === 'status') { res(kind, ['get', 'list', 'watch']); res('Deployment', []); need.push(['apps', 'replicasets', 'list', true]); }
        if (args[1] === 'undo') { res(kind, ['get', 'patch']); need.push(['apps', 'replicasets', 'list', true]); }
        if (args[1] === 'restart') res(kind, ['get', 'patch']);
        return need;
    }
    if (verb === 'scale') { res(target(args[1]), ['get']); res(target(args[1]), ['get', 'patch'], 'scale'); return need; }
    if (verb === 'patch') { res(target(args[1]), ['get', 'patch']); return need; }
    if (verb === 'set') { res(target(args[2]), ['get', 'patch']); return need; }
    if (verb === 'delete') { res(target(args[1]), ['delete']); return need; }
    throw new Error(`no RBAC table entry for: kubectl ${cmd}`);
}

const wf = YAML.parse(fs.readFileSync(path.join(root, '.github/workflows/deploy-application.yml'), 'utf8'));
const commands = kubectlCommands(wf);
const renders = new Map(renderArgs.map((a) => [a.split('=')[0], a.slice(a.indexOf('=') + 1)]));

report.check('rbac: the deploy job\'s kubectl commands are all in the RBAC table', () => {
    const problems = [];
    for (const c of commands) {
        try { needsOf(c, []); } catch (e) { problems.push(e.message); }
    }
    return commands.length >= 5 ? problems : [...problems, `only ${commands.length} kubectl commands found`];
});

for (const [env, ns] of Object.entries(NAMESPACES)) {
    if (!renders.has(env)) continue;
    const objs = loadRender(renders.get(env));
    // What `apply -l 'hyperstudy/layer!=infrastructure'` sends.
    const selector = /apply -l '?hyperstudy\/layer!=infrastructure'?/.test(commands.map((c) => c.cmd).join('\n'));
    const appObjects = objs.filter((o) => !selector || ((o.metadata.labels || {})['hyperstudy/layer'] !== 'infrastructure'));
    report.check(`rbac (${env}): ServiceAccount github-actions may run every kubectl command of deploy-application in ${ns}`, () => {
        const { problems, expect } = collector();
        const rules = grantedRules(objs, ns, 'github-actions', ns);
        expect(rules.length > 0, `no rules bound to ${ns}/github-actions`);
        const table = new Map();
        for (const c of commands) {
            for (const [g, r, v, namespaced] of needsOf(c, appObjects)) {
                const key = `${g || 'core'}/${r} ${v}${namespaced ? '' : ' (cluster-scoped)'}`;
                if (!table.has(key)) table.set(key, { g, r, v, namespaced, by: new Set() });
                table.get(key).by.add(c.step);
            }
        }
        for (const [key, n] of [...table].sort()) {
            const ok = n.namespaced && rulesGrant(rules, n.g, n.r, n.v);
            if (!ok) console.log(`#     MISSING  ${key.padEnd(52)} ${[...n.by].join('; ')}`);
            expect(ok, `${key} is needed by "${[...n.by].join('", "')}" but ${n.namespaced ? 'not granted' : 'cluster-scoped: the namespaced identity cannot apply it'}`);
        }
        console.log(`#   ${table.size} (resource, verb) requirements of ${commands.length} kubectl commands, ${table.size - problems.length} granted`);
        return problems;
    });
}

console.log(`# rbac: ${report.passed} ok, ${report.failed} not ok`);
process.exit(report.failed ? 1 : 0);
