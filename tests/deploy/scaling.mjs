// Checks of the room-aware scaling deployment (docs/scaling.md, issue 10):
// the KEDA ScaledObject of the backend, the router flags it depends on, the
// OnDelete update strategy, the rollout script and its workflow step.
//   node scaling.mjs REPO_ROOT NAME=FILE ...     (renders as for manifests.mjs)
// Prints one "ok - ..." / "not ok - ..." line per check; exits 1 when one failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';
import { Report } from './lib/report.mjs';
import { loadRender, find, findAll, container, argValue, durationSeconds } from './lib/objects.mjs';
import { validateObject, unknownFields } from './lib/k8s-models.mjs';
import { validateKeda, kedaUnknownFields, kedaHpa, isKeda } from './lib/keda.mjs';

const report = new Report();
const root = path.resolve(process.argv[2] || '../..');
const renders = new Map();
for (const arg of process.argv.slice(3)) {
    const i = arg.indexOf('=');
    if (i <= 0) {
        console.error(`usage: node scaling.mjs REPO_ROOT NAME=FILE ...  (got ${arg})`);
        process.exit(2);
    }
    renders.set(arg.slice(0, i), loadRender(arg.slice(i + 1)));
}
const NS = 'hyperstudy';
const METRIC = 'podrouter_backend_desired_replicas';

// ---- the checks, as functions of a render (so the self-tests can feed them broken copies)

function scaledObject(objs) {
    return findAll(objs, 'ScaledObject').find((o) => o.spec && o.spec.scaleTargetRef && o.spec.scaleTargetRef.name === 'backend');
}

function routerArgs(objs) {
    const d = find(objs, 'Deployment', 'pod-router', NS);
    const c = d && container(d, 'pod-router');
    return (c && c.args) || [];
}

function schemaCheck(objs) {
    const problems = [];
    const kedaObjs = objs.filter(isKeda);
    if (kedaObjs.length === 0) return ['no keda.sh objects rendered'];
    for (const o of kedaObjs) {
        for (const m of validateKeda(o)) problems.push(`${o.kind} ${o.metadata.name}: ${m}`);
        for (const m of kedaUnknownFields(o)) problems.push(`${o.kind} ${o.metadata.name} ${m}`);
        if (o.kind === 'ScaledObject') {
            const h = kedaHpa(o);
            for (const m of validateObject(h)) problems.push(`generated HPA ${h.metadata.name}: ${m}`);
            for (const m of unknownFields(h)) problems.push(`generated HPA ${h.metadata.name} ${m}`);
        }
    }
    return problems;
}

function triggerCheck(objs) {
    const problems = [];
    const so = scaledObject(objs);
    if (!so) return [`no ScaledObject targets StatefulSet backend in ${NS}`];
    const ref = so.spec.scaleTargetRef;
    if (so.metadata.namespace !== NS) problems.push(`ScaledObject in namespace ${so.metadata.namespace}, not ${NS}`);
    if (ref.apiVersion !== 'apps/v1' || ref.kind !== 'StatefulSet') problems.push(`scaleTargetRef ${JSON.stringify(ref)} is not apps/v1 StatefulSet backend`);
    if (so.spec.minReplicaCount !== 3 || so.spec.maxReplicaCount !== 12) {
        problems.push(`replica bounds ${so.spec.minReplicaCount}..${so.spec.maxReplicaCount}, the guide's are 3..12`);
    }
    const trig = so.spec.triggers || [];
    const prom = trig.filter((t) => t.type === 'prometheus');
    if (prom.length !== 1) problems.push(`${prom.length} prometheus triggers, want exactly 1`);
    for (const t of prom) {
        const md = t.metadata || {};
        if (t.metricType !== 'AverageValue') problems.push(`prometheus trigger metricType ${t.metricType}, want AverageValue`);
        if (Number(md.threshold) !== 1) problems.push(`prometheus trigger threshold ${md.threshold}, want "1" (one pod per desired replica)`);
        if (!new RegExp(`^\\s*max\\s*\\(\\s*${METRIC}\\s*(\\{[^}]*\\})?\\s*\\)\\s*$`).test(md.query || '')) {
            problems.push(`query ${JSON.stringify(md.query)} is not max(${METRIC}{...}) (replicas agree +-1; max is the safe one)`);
        }
        if (!/namespace="hyperstudy"/.test(md.query || '')) problems.push('query does not select namespace="hyperstudy" (a development stack must not drive production)');
        if (md.ignoreNullValues !== 'false') problems.push('ignoreNullValues must be "false": no data must be an error (no scale-down), not 0');
        let u;
        try {
            u = new URL(md.serverAddress);
        } catch {
            problems.push(`serverAddress ${md.serverAddress} is not a URL`);
        }
        if (u) {
            const mon = renders.get('monitoring');
            const [svcName, svcNs] = u.hostname.split('.');
            const svc = mon && find(mon, 'Service', svcName, svcNs);
            if (!svc) problems.push(`serverAddress names Service ${svcNs}/${svcName}, which deploy/monitoring does not render`);
            else if (!svc.spec.ports.some((p) => String(p.port) === u.port)) problems.push(`Service ${svcNs}/${svcName} has no port ${u.port}`);
        }
    }
    const res = (name) => trig.find((t) => t.type === name);
    for (const [name, want] of [['cpu', 60], ['memory', 70]]) {
        const t = res(name);
        if (!t) problems.push(`no ${name} trigger (the guide's ${want} % target)`);
        else if ((t.metricType || 'Utilization') !== 'Utilization' || Number((t.metadata || {}).value) !== want) {
            problems.push(`${name} trigger ${JSON.stringify(t)} is not Utilization ${want}`);
        }
    }
    if (so.spec.fallback) problems.push('fallback would set a fixed replica count while Prometheus is unreachable (it may remove pods holding rooms); rely on the HPA skipping scale-down instead');
    return problems;
}

function behaviourCheck(objs) {
    const problems = [];
    const so = scaledObject(objs);
    if (!so) return ['no ScaledObject for backend'];
    const cfg = (so.spec.advanced || {}).horizontalPodAutoscalerConfig || {};
    if (cfg.name !== 'backend-hpa') problems.push(`generated HPA is named ${cfg.name}, not backend-hpa (dashboards, alerts, the workflow use that name)`);
    if ((so.metadata.annotations || {})['scaledobject.keda.sh/transfer-hpa-ownership'] !== 'true') {
        problems.push('no scaledobject.keda.sh/transfer-hpa-ownership: "true" (KEDA refuses a target the existing backend-hpa already scales)');
    }
    const down = (cfg.behavior || {}).scaleDown;
    if (!down) return [...problems, 'no scaleDown behaviour'];
    const pols = down.policies || [];
    const onePod = pols.length > 0 && (down.selectPolicy === 'Min'
        ? pols.some((p) => p.type === 'Pods' && p.value === 1)
        : pols.every((p) => p.type === 'Pods' && p.value === 1));
    if (down.selectPolicy === 'Disabled') problems.push('scale-down disabled');
    else if (!onePod) problems.push(`scale-down policies ${JSON.stringify(pols)} (selectPolicy ${down.selectPolicy || 'Max'}) may remove more than one pod per period`);
    const active = durationSeconds(argValue(routerArgs(objs), '--room-active') || '2m');
    if (!(down.stabilizationWindowSeconds >= active)) {
        problems.push(`scale-down stabilizationWindowSeconds ${down.stabilizationWindowSeconds} < --room-active ${active} s`);
    }
    const plain = findAll(objs, 'HorizontalPodAutoscaler').filter((h) => h.spec.scaleTargetRef.kind === 'StatefulSet' && h.spec.scaleTargetRef.name === 'backend');
    if (plain.length) problems.push(`a plain HPA (${plain.map((h) => h.metadata.name)}) also scales backend: two owners fight`);
    return problems;
}

function routerCheck(objs) {
    const problems = [];
    const args = routerArgs(objs);
    if (args.length === 0) return ['pod-router Deployment has no args'];
    if (argValue(args, '--placement') !== 'pack') problems.push(`--placement ${argValue(args, '--placement')}, production uses pack`);
    const u = Number(argValue(args, '--pack-utilization') || '0.75');
    if (!(u > 0 && u <= 1)) problems.push(`--pack-utilization ${u} not in (0,1]`);
    const so = scaledObject(objs);
    const min = Number(argValue(args, '--min-replicas') || '3');
    const max = Number(argValue(args, '--max-replicas') || '12');
    if (so && (min !== so.spec.minReplicaCount || max !== so.spec.maxReplicaCount)) {
        problems.push(`router --min-replicas/--max-replicas ${min}/${max} differ from the ScaledObject's ${so.spec.minReplicaCount}/${so.spec.maxReplicaCount}`);
    }
    if (!(Number(argValue(args, '--headroom-pods') || '1') >= 1)) problems.push('--headroom-pods must be >= 1 (the pod a stale metric may still fill)');
    // The rollout's floor and drain-ahead decisions use the router's u and headroom: the
    // script's defaults (what the workflow runs it with) must be the overlay's flags.
    const text = fs.readFileSync(path.join(root, 'deploy/scripts/rollout-backend.sh'), 'utf8');
    const su = Number((/^utilization=([0-9.]+)$/m.exec(text) || [])[1]);
    const sh = Number((/^headroom=([0-9]+)$/m.exec(text) || [])[1]);
    if (su !== u) problems.push(`rollout-backend.sh --utilization default ${su} differs from the router's --pack-utilization ${u}`);
    const h = Number(argValue(args, '--headroom-pods') || '1');
    if (sh !== h) problems.push(`rollout-backend.sh --headroom default ${sh} differs from the router's --headroom-pods ${h}`);
    return problems;
}

function onDeleteCheck(objs) {
    const sts = find(objs, 'StatefulSet', 'backend', NS);
    if (!sts) return ['StatefulSet backend missing'];
    const t = (sts.spec.updateStrategy || {}).type;
    return t === 'OnDelete' ? [] : [`backend updateStrategy ${t}: the controller would restart pods holding rooms; OnDelete + deploy/scripts/rollout-backend.sh`];
}

function rolloutRbacCheck(objs) {
    const problems = [];
    const binding = findAll(objs, 'RoleBinding').find((b) => b.metadata.namespace === NS && b.roleRef.kind === 'Role' &&
        (b.subjects || []).some((x) => x.kind === 'ServiceAccount' && x.name === 'github-actions') &&
        (find(objs, 'Role', b.roleRef.name, NS) || { rules: [] }).rules.some((r) => r.resources.includes('pods/exec')));
    if (!binding) return ['no namespaced Role bound to github-actions grants pods/exec (rollout-backend.sh runs pod-router drain in a router pod)'];
    const role = find(objs, 'Role', binding.roleRef.name, NS);
    const can = (group, resource, verb) => role.rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const [g, r, v] of [['', 'pods/exec', 'create'], ['', 'pods', 'delete'], ['', 'pods', 'get'], ['apps', 'statefulsets', 'get'],
        ['apps', 'statefulsets/scale', 'patch'], ['keda.sh', 'scaledobjects', 'patch'], ['keda.sh', 'scaledobjects', 'get']]) {
        if (!can(g, r, v)) problems.push(`Role ${role.metadata.name} cannot ${v} ${g ? `${g}/` : ''}${r}`);
    }
    for (const r of role.rules) {
        if (r.verbs.includes('*') || r.resources.includes('*') || r.apiGroups.includes('*')) problems.push(`wildcard in ${JSON.stringify(r)}`);
        if (r.resources.includes('secrets')) problems.push('access to Secrets');
    }
    if (findAll(objs, 'ClusterRoleBinding').some((b) => (b.subjects || []).some((x) => x.name === 'github-actions'))) problems.push('cluster-wide binding for github-actions');
    return problems;
}

// ---- self-tests: each check rejects a broken copy of the production render

const prod = renders.get('production');
const clone = (v) => JSON.parse(JSON.stringify(v));
function broken(mutate) {
    const objs = clone(prod);
    mutate(objs);
    return objs;
}
if (prod) {
    report.check('self-test: the scaling checks reject broken ScaledObjects, router flags and update strategies', () => {
        const problems = [];
        const so = (objs) => scaledObject(objs);
        const cases = [
            ['unknown ScaledObject field', schemaCheck, (o) => { so(o).spec.minReplicas = 3; }],
            ['string maxReplicaCount', schemaCheck, (o) => { so(o).spec.maxReplicaCount = 'twelve'; }],
            ['typo in trigger', schemaCheck, (o) => { so(o).spec.triggers[0].metricTyp = 'AverageValue'; }],
            ['threshold 2', triggerCheck, (o) => { so(o).spec.triggers[0].metadata.threshold = '2'; }],
            ['Value metric type', triggerCheck, (o) => { so(o).spec.triggers[0].metricType = 'Value'; }],
            ['sum() query', triggerCheck, (o) => { so(o).spec.triggers[0].metadata.query = `sum(${METRIC})`; }],
            ['null as zero', triggerCheck, (o) => { so(o).spec.triggers[0].metadata.ignoreNullValues = 'true'; }],
            ['unknown Prometheus service', triggerCheck, (o) => { so(o).spec.triggers[0].metadata.serverAddress = 'http://prom.monitoring.svc:9090'; }],
            ['CPU 80', triggerCheck, (o) => { so(o).spec.triggers.find((t) => t.type === 'cpu').metadata.value = '80'; }],
            ['no memory trigger', triggerCheck, (o) => { so(o).spec.triggers = so(o).spec.triggers.filter((t) => t.type !== 'memory'); }],
            ['fallback', triggerCheck, (o) => { so(o).spec.fallback = { failureThreshold: 3, replicas: 3 }; }],
            ['two pods per period', behaviourCheck, (o) => { so(o).spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[0].value = 2; }],
            ['percent policy with Max', behaviourCheck, (o) => {
                const d = so(o).spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown;
                d.selectPolicy = 'Max';
                d.policies.push({ type: 'Percent', value: 50, periodSeconds: 60 });
            }],
            ['window < room-active', behaviourCheck, (o) => { so(o).spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds = 60; }],
            ['second owner', behaviourCheck, (o) => { o.push(kedaHpa(so(o))); }],
            ['no ownership transfer', behaviourCheck, (o) => { delete so(o).metadata.annotations; }],
            ['least-loaded', routerCheck, (o) => {
                const a = container(find(o, 'Deployment', 'pod-router', NS), 'pod-router').args;
                a[a.indexOf('--placement') + 1] = 'least-loaded';
            }],
            ['bounds differ', routerCheck, (o) => { so(o).spec.maxReplicaCount = 10; }],
            ['no exec grant', rolloutRbacCheck, (o) => { find(o, 'Role', 'github-actions-rollout', NS).rules = find(o, 'Role', 'github-actions-rollout', NS).rules.filter((r) => !r.resources.includes('pods/exec')); }],
            ['wildcard verbs', rolloutRbacCheck, (o) => { find(o, 'Role', 'github-actions-rollout', NS).rules[0].verbs = ['*']; }],
            ['RollingUpdate', onDeleteCheck, (o) => { find(o, 'StatefulSet', 'backend', NS).spec.updateStrategy = { type: 'RollingUpdate' }; }],
        ];
        for (const [what, check, mutate] of cases) {
            const found = check(broken(mutate));
            if (found.length === 0) problems.push(`${what}: not reported`);
        }
        return problems;
    });

    report.check('production: KEDA objects validate against @kubernetes-models/keda, no unknown fields; the HPA KEDA generates validates as autoscaling/v2', () => schemaCheck(prod));
    report.check(`production: ScaledObject backend: ${METRIC} (Prometheus, AverageValue 1) next to CPU 60 % / memory 70 %, 3..12`, () => triggerCheck(prod));
    report.check('production: scale-down one pod at a time, window >= --room-active; KEDA adopts backend-hpa; no second owner', () => behaviourCheck(prod));
    report.check('production: pod-router --placement pack, bounds equal the ScaledObject\'s, headroom >= 1, rollout-backend.sh defaults equal its u and headroom', () => routerCheck(prod));
    report.check('production: backend StatefulSet updateStrategy OnDelete (room-aware rollout)', () => onDeleteCheck(prod));
    report.check('production: github-actions may run the rollout (exec into the router, delete pods, scale, move the floor), namespaced, no wildcards or Secrets', () => rolloutRbacCheck(prod));
} else {
    report.check('production render given', () => ['no production render: nothing to check']);
}

for (const name of ['base', 'development']) {
    const objs = renders.get(name);
    if (!objs) continue;
    report.check(`${name}: no KEDA object (room-aware scaling is a component the production overlay includes)`, () => objs.filter(isKeda).map((o) => `${o.kind} ${o.metadata.name}`));
}

// ---- the query: PromQL that Prometheus accepts (promtool, when installed)

if (prod && scaledObject(prod)) {
    const q = (scaledObject(prod).spec.triggers.find((t) => t.type === 'prometheus') || { metadata: {} }).metadata.query;
    let promtool = null;
    for (const d of (process.env.PATH || '').split(':')) {
        if (d && fs.existsSync(path.join(d, 'promtool'))) promtool = path.join(d, 'promtool');
    }
    if (promtool) {
        report.check('production: the ScaledObject query parses (promtool check rules)', () => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scaling-'));
            try {
                const f = path.join(dir, 'q.yaml');
                fs.writeFileSync(f, YAML.stringify({ groups: [{ name: 'q', rules: [{ record: 'keda:query', expr: q }] }] }));
                execFileSync(promtool, ['check', 'rules', f], { stdio: 'pipe' });
                return [];
            } catch (e) {
                return [`${q}: ${String(e.stderr || e.stdout || e.message).trim()}`];
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        });
    } else {
        console.log('# skip - ScaledObject query syntax (promtool not installed; tests/monitoring checks it)');
    }
    report.check('production: Prometheus job pod-router keeps the namespace label the query selects on', () => {
        const cfg = YAML.parse(fs.readFileSync(path.join(root, 'deploy/monitoring/prometheus/prometheus.yml'), 'utf8'));
        const job = (cfg.scrape_configs || []).find((j) => j.job_name === 'pod-router');
        if (!job) return ['no scrape job pod-router'];
        const ns = (job.relabel_configs || []).some((r) => r.target_label === 'namespace' &&
            (r.source_labels || []).includes('__meta_kubernetes_namespace'));
        return ns ? [] : ['job pod-router sets no namespace label from __meta_kubernetes_namespace'];
    });
}

// ---- rollout script and its workflow step

const script = path.join(root, 'deploy/scripts/rollout-backend.sh');
report.check('deploy/scripts/rollout-backend.sh exists, is executable, runs drain --wait-empty inside the router pod', () => {
    if (!fs.existsSync(script)) return ['missing'];
    const problems = [];
    if ((fs.statSync(script).mode & 0o111) === 0) problems.push('not executable');
    const text = fs.readFileSync(script, 'utf8');
    for (const [re, what] of [
        [/kubectl[^\n]*\bexec\b/, 'kubectl exec'],
        [/pod-router drain --wait-empty/, 'pod-router drain --wait-empty'],
        [/scale\b[^\n]*statefulset|statefulset[^\n]*scale/i, 'surge: scale the StatefulSet'],
        [/\/v1\/pods\//, 'registration check GET /v1/pods/NAME'],
    ]) if (!re.test(text)) problems.push(`no ${what}`);
    return problems;
});

// The rollout's decisions (rollout-backend.sh --plan: the same code the rollout runs, fed a
// GET /v1/pods body): the autoscaler floor while pods drain, which old pods may be drained
// ahead, which draining pod is waited for next.
function planOf(mode, pods, cands = [], opts = []) {
    const body = JSON.stringify({ pods: pods.map(([name, state, rooms, participants]) => ({
        name, address: '10.0.0.1:3000', state, capacity: { rooms: 8, participants: 40 },
        load: { rooms, participants, connections: participants }, zone: null, last_seen_ms: 1, expires_in_ms: 2 })) });
    try {
        return execFileSync('bash', [script, '--utilization', '0.75', '--headroom', '1', ...opts, '--plan', mode, ...cands],
            { input: `HTTP/1.0 200 OK\r\n\r\n${body}`, encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    } catch (e) {
        return [`exit ${e.status}`];
    }
}
report.check('rollout-backend.sh --plan: floor = the size whose ready pods hold the ready load at u + headroom; drain ahead only where the ready pods below hold the whole load, its rise and the headroom; wait for the emptiest draining pod', () => {
    const problems = [];
    const eq = (got, want, what) => { if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); };
    // 6 rooms / 30 participants per pod at u 0.75 (capacity 8 / 40).
    const peak = [['backend-0', 'ready', 6, 30], ['backend-1', 'ready', 6, 28], ['backend-2', 'ready', 5, 25],
        ['backend-3', 'draining', 2, 10], ['backend-4', 'ready', 0, 0]];
    eq(planOf('floor', peak, ['5']), ['5'], 'floor at the peak (17 ready rooms: 3 pods + 1 headroom, backend-3 drains)');
    eq(planOf('floor', peak, ['3']), ['4'], 'ordinals from the current size up count as pods to be created (ready)');
    eq(planOf('ahead', peak, ['backend-2', 'backend-1', 'backend-0']), [], 'no drain ahead at the peak');
    const after = [['backend-0', 'ready', 5, 25], ['backend-1', 'ready', 1, 5], ['backend-2', 'ready', 0, 0],
        ['backend-3', 'draining', 1, 3], ['backend-4', 'ready', 0, 0], ['backend-5', 'draining', 0, 0]];
    eq(planOf('floor', after, ['6']), ['2'], 'floor after the peak (6 ready rooms: 1 pod + 1 headroom)');
    eq(planOf('floor', [['backend-0', 'draining', 3, 15], ['backend-1', 'ready', 6, 30], ['backend-2', 'ready', 0, 0],
        ['backend-3', 'ready', 0, 0]], ['4']), ['3'], 'floor with a draining pod below: one more (new rooms go above it)');
    eq(planOf('floor', [['backend-0', 'ready', 6, 30], ['backend-1', 'ready', 3, 15]], ['4']), ['3'],
        'floor with backend-2 not registered (recreated after its delete): it counts like a pod to be created');
    eq(planOf('floor', [['backend-0', 'ready', 6, 30], ['backend-1', 'ready', 3, 15], ['backend-2', 'down', 0, 0]], ['4']), ['4'],
        'floor with backend-2 down: one more');
    eq(planOf('ahead', after, ['backend-4', 'backend-2', 'backend-1', 'backend-0']), ['backend-4'],
        'drain ahead: the pods above the 3 the whole load (7 rooms, 33 participants) needs with its headroom, ' +
        'not backend-2 (backend-0..1 could not hold the load of the draining backend-3 as well and a headroom)');
    eq(planOf('ahead', after, ['backend-4', 'backend-2'], ['--growth', '6,30']), [],
        'no drain ahead while the load rises (6 rooms, 30 participants over the trend window: 4 pods needed, backend-3 drains)');
    // The peak of the long simulation's run D (t = 92 s, rollout under way): the rule before
    // drained backend-5 and backend-4 ahead because backend-0..3 had a headroom of free
    // capacity at that instant; the peak's arrivals filled them within 16 s while the drained
    // pods' rooms ended, and a room went to the surge pod backend-7 (D 9 instead of 7).
    const runD = [['backend-0', 'ready', 6, 29], ['backend-1', 'ready', 4, 20], ['backend-2', 'ready', 3, 18],
        ['backend-3', 'ready', 4, 15], ['backend-4', 'ready', 6, 33], ['backend-5', 'ready', 4, 26],
        ['backend-6', 'draining', 1, 7], ['backend-7', 'ready', 0, 0]];
    eq(planOf('ahead', runD, ['backend-5', 'backend-4', 'backend-3', 'backend-2', 'backend-1', 'backend-0']), [],
        'no drain ahead at a steady peak (run D: 28 rooms, 148 participants need 5 pods + 1 headroom, backend-0..5 all)');
    eq(planOf('ahead', [...runD.slice(0, 4), ['backend-4', 'ready', 6, 31], ['backend-5', 'ready', 0, 0], ...runD.slice(6)],
        ['backend-5', 'backend-4']), ['backend-5'],
        'load fallen to 24 rooms, 120 participants: backend-0..4 hold it and a headroom, so backend-5 drains ahead, not backend-4');
    // The start of the long simulation's rollout (run r0 of this round, t = 84 s): backend-0..5
    // at u, backend-6 empty (pack's headroom). The rule before added the surge pod backend-7
    // first and, while backend-6 was drained (empty), kept the floor one above (a draining pod
    // below counted as one more): a 7-participant room that no longer fitted below u went to
    // backend-6 just before its drain, or to backend-7 while backend-6 was replaced, and kept
    // a pod the load did not need for its lifetime (D 8 instead of 7 for 38 s).
    const start = [['backend-0', 'ready', 6, 32], ['backend-1', 'ready', 6, 18], ['backend-2', 'ready', 6, 33],
        ['backend-3', 'ready', 6, 22], ['backend-4', 'ready', 6, 23], ['backend-5', 'ready', 5, 31]];
    eq(planOf('surge', [...start, ['backend-6', 'ready', 0, 0]], ['backend-6', 'backend-5']), ['no'],
        'surge: none before the empty top pod (it is replaced first and is the up-to-date place)');
    eq(planOf('surge', [...start, ['backend-6', 'ready', 1, 7]], ['backend-6', 'backend-5']), ['yes'],
        'surge: before the first pod that holds a room');
    eq(planOf('surge', start, ['backend-6', 'backend-5']), ['yes'], 'surge: before a pod that is not registered');
    eq(planOf('floor', [...start, ['backend-6', 'draining', 0, 0]], ['7']), ['7'],
        'floor while the empty top pod is drained: no pod more (it is replaced next; 35 rooms, 159 participants: 6 pods + 1 headroom)');
    eq(planOf('floor', [...start, ['backend-6', 'draining', 1, 7]], ['7']), ['8'],
        'floor while a top pod holding a room drains: one more');
    eq(planOf('head', after, ['backend-5', 'backend-3', 'backend-2']), ['backend-5'], 'head: the draining pod with the fewest rooms');
    eq(planOf('head', peak, ['backend-2', 'backend-1']), ['backend-2'], 'head: the first old pod when none drains');
    eq(planOf('empty', after, ['backend-3', 'backend-5']), ['backend-5'], 'empty: a drained pod without active rooms is replaced first');
    eq(planOf('empty', after, ['backend-3', 'backend-2']), [], 'empty: none while the draining ones hold rooms');
    eq(planOf('floor', [], ['3']), ['exit 1'], 'no pods (router unreadable): no decision');
    return problems;
});

report.check('deploy-application.yml runs deploy/scripts/rollout-backend.sh after the apply of the overlay', () => {
    const f = path.join(root, '.github/workflows/deploy-application.yml');
    const wf = YAML.parse(fs.readFileSync(f, 'utf8'));
    const steps = Object.values(wf.jobs || {}).flatMap((j) => j.steps || []);
    const i = steps.findIndex((s) => typeof s.run === 'string' && s.run.includes('deploy/scripts/rollout-backend.sh'));
    const apply = steps.findIndex((s) => typeof s.run === 'string' && /kubectl (kustomize|apply -k)/.test(s.run) && /kubectl apply/.test(s.run));
    if (i < 0) return ['no step runs deploy/scripts/rollout-backend.sh'];
    return apply >= 0 && apply < i ? [] : ['the rollout step does not come after the apply of the overlay'];
});

console.log(`# scaling: ${report.passed} ok, ${report.failed} not ok`);
process.exit(report.failed ? 1 : 0);
