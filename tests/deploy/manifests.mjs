// Checks of the rendered Kustomize output.
//   node manifests.mjs NAME=FILE ...
// NAME is base, development, production or monitoring (other names get the
// generic checks only). Prints one "ok - ..." / "not ok - ..." line per
// check; exits 1 when one failed.
import { Report } from './lib/report.mjs';
import { loadRender, find } from './lib/objects.mjs';
import { validateObject, unknownFields } from './lib/k8s-models.mjs';
import { validateCrd, crdUnknownFields, parseRule } from './lib/traefik.mjs';
import {
    schemaProblems, unknownFieldProblems, selectorProblems, serviceProblems, referenceProblems, noSecretObjects,
} from './lib/generic.mjs';
import * as stack from './lib/stack.mjs';
import { expandKeda } from './lib/keda.mjs';

const report = new Report();
const renders = new Map();
for (const arg of process.argv.slice(2)) {
    const i = arg.indexOf('=');
    if (i <= 0) {
        console.error(`usage: node manifests.mjs NAME=FILE ...  (got ${arg})`);
        process.exit(2);
    }
    renders.set(arg.slice(0, i), arg.slice(i + 1));
}

// ---- self-tests: the checkers catch what they claim to catch ---------------

const sampleDeployment = () => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x', namespace: 'hyperstudy', labels: { app: 'x' } },
    spec: {
        selector: { matchLabels: { app: 'x' } },
        template: {
            metadata: { labels: { app: 'x' } },
            spec: {
                affinity: {
                    podAntiAffinity: {
                        preferredDuringSchedulingIgnoredDuringExecution: [{
                            weight: 100,
                            podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'x' } } },
                        }],
                    },
                },
                containers: [{
                    name: 'x',
                    image: 'x:1',
                    imagePullPolicy: 'IfNotPresent',
                    ports: [{ name: 'http', containerPort: 3000 }],
                    resources: { requests: { cpu: '100m', memory: '1Gi' } },
                    readinessProbe: { httpGet: { path: '/health', port: 'http' } },
                }],
            },
        },
    },
});

report.check('self-test: the unknown-field check rejects typo\'d fields and accepts correct ones', () => {
    const problems = [];
    const good = sampleDeployment();
    const clean = unknownFields(good);
    if (clean.length) problems.push(`valid Deployment reported: ${clean.join('; ')}`);
    const typos = [
        ['.spec.template.spec.containers[0].imagePullPolcy', (d) => { d.spec.template.spec.containers[0].imagePullPolcy = 'Always'; }],
        ['.spec.replica', (d) => { d.spec.replica = 2; }],
        ['.metadata.label', (d) => { d.metadata.label = { a: 'b' }; }],
        ['.spec.template.spec.containers[0].readinessProbe.httpGet.pth', (d) => { d.spec.template.spec.containers[0].readinessProbe.httpGet.pth = '/'; }],
        ['.spec.template.spec.containers[0].resources.limit', (d) => { d.spec.template.spec.containers[0].resources.limit = {}; }],
        ['.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologykey',
            (d) => { d.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologykey = 'x'; }],
    ];
    for (const [path, mutate] of typos) {
        const d = sampleDeployment();
        mutate(d);
        const found = unknownFields(d);
        if (!(found.length === 1 && found[0] === `${path}: unknown field`)) {
            problems.push(`typo at ${path} not reported exactly (got ${JSON.stringify(found)})`);
        }
        // The schema validation alone does not see it: that is why this check exists.
        if (validateObject(d).length !== 0) problems.push(`kubernetes-models validate() unexpectedly rejected ${path}`);
    }
    // Free-form maps (labels, annotations, resource lists) take any key.
    const d = sampleDeployment();
    d.metadata.annotations = { 'any/key': 'v' };
    d.spec.template.spec.containers[0].resources.limits = { 'nvidia.com/gpu': '1' };
    if (unknownFields(d).length) problems.push(`map keys reported as unknown: ${unknownFields(d)}`);
    // And the checker is wired into the per-render check.
    const bad = sampleDeployment();
    bad.spec.template.spec.containers[0].imagePullPolcy = 'Always';
    if (unknownFieldProblems([bad]).length !== 1) problems.push('unknownFieldProblems() does not report a typo');
    return problems;
});

report.check('self-test: kubernetes-models validate() rejects wrongly typed or missing fields', () => {
    const problems = [];
    if (validateObject(sampleDeployment()).length) problems.push(`valid Deployment rejected: ${validateObject(sampleDeployment())}`);
    const wrongType = sampleDeployment();
    wrongType.spec.replicas = 'two';
    if (validateObject(wrongType).length === 0) problems.push('replicas: "two" accepted');
    const missing = sampleDeployment();
    delete missing.spec.template.spec.containers[0].name;
    if (validateObject(missing).length === 0) problems.push('container without name accepted');
    const badEnum = sampleDeployment();
    badEnum.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes';
    if (validateObject(badEnum).length === 0) problems.push('imagePullPolicy: Sometimes accepted');
    if (schemaProblems([{ apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g' } }]).length !== 1) {
        problems.push('an unknown kind is not reported');
    }
    return problems;
});

report.check('self-test: the IngressRoute schema rejects bad routes and unknown fields', () => {
    const problems = [];
    const ir = () => ({
        apiVersion: 'traefik.io/v1alpha1',
        kind: 'IngressRoute',
        metadata: { name: 'r', namespace: 'hyperstudy' },
        spec: {
            entryPoints: ['websecure'],
            routes: [{ kind: 'Rule', match: 'Host(`a.b`) && PathRegexp(`^/x/room_[a-z]+`)', priority: 10, services: [{ name: 's', port: 80 }] }],
            tls: { certResolver: 'letsencrypt' },
        },
    });
    if (validateCrd(ir()).length || crdUnknownFields(ir()).length) problems.push(`valid IngressRoute rejected: ${validateCrd(ir())} ${crdUnknownFields(ir())}`);
    const cases = [
        ['unknown spec field', (o) => { o.spec.route = []; }, 'fields'],
        ['unknown service field', (o) => { o.spec.routes[0].services[0].prot = 80; }, 'fields'],
        ['unknown tls field', (o) => { o.spec.tls.certresolver = 'x'; }, 'fields'],
        ['missing services', (o) => { delete o.spec.routes[0].services; }, 'values'],
        ['bad kind', (o) => { o.spec.routes[0].kind = 'Match'; }, 'values'],
        ['v2-only matcher', (o) => { o.spec.routes[0].match = 'Headers(`a`, `b`)'; }, 'values'],
        ['unbalanced rule', (o) => { o.spec.routes[0].match = 'Host(`a`'; }, 'values'],
        ['bad regexp', (o) => { o.spec.routes[0].match = 'PathRegexp(`^/(x`)'; }, 'values'],
        ['no entry points', (o) => { o.spec.entryPoints = []; }, 'values'],
        ['string priority', (o) => { o.spec.routes[0].priority = 'high'; }, 'values'],
    ];
    for (const [what, mutate, kind] of cases) {
        const o = ir();
        mutate(o);
        const found = kind === 'fields' ? crdUnknownFields(o) : validateCrd(o);
        if (found.length === 0) problems.push(`${what} not reported`);
    }
    try {
        parseRule('PathPrefix(`/a`) || (Host(`h`) && !PathPrefix(`/b`))');
    } catch (e) {
        problems.push(`valid rule rejected: ${e.message}`);
    }
    return problems;
});

// ---- per render ------------------------------------------------------------

const loaded = new Map();
for (const [name, file] of renders) {
    let objs;
    const ok = report.check(`${name}: rendered output parses as YAML objects`, () => {
        // A KEDA ScaledObject is checked as the HPA the KEDA operator creates
        // from it (the ScaledObject itself: scaling.mjs).
        objs = expandKeda(loadRender(file));
        return objs.length ? [] : ['no objects rendered'];
    });
    if (ok) loaded.set(name, objs);
}

for (const [name, objs] of loaded) {
    const others = [...loaded].filter(([n]) => n !== name).flatMap(([, o]) => o);
    report.check(`${name}: every object validates against its Kubernetes schema (kubernetes-models; IngressRoute by our CRD schema)`, () => schemaProblems(objs));
    report.check(`${name}: no unknown fields`, () => unknownFieldProblems(objs));
    report.check(`${name}: workload selectors match their pod template labels`, () => selectorProblems(objs));
    report.check(`${name}: every Service selects a workload's pods on existing target ports`, () => serviceProblems(objs));
    report.check(`${name}: referenced ConfigMaps, Secrets, ServiceAccounts, PVCs, roles and services exist (or are external, documented)`,
        () => referenceProblems(objs, others));
    report.check(`${name}: no Secret objects`, () => noSecretObjects(objs));
}

for (const name of ['base', 'production']) {
    const objs = loaded.get(name);
    if (!objs) continue;
    const ns = 'hyperstudy';
    report.check(`${name}: namespaces hyperstudy and monitoring; every object in one of them`, () => stack.namespaces(objs, ['hyperstudy', 'monitoring']));
    report.check(`${name}: backend-hpa targets StatefulSet backend, 3..12 replicas, CPU 60%, memory 70%`, () => stack.backendHpa(objs, ns));
    report.check(`${name}: frontend-hpa 2..10 and pod-router-hpa 2..6 at CPU 70%; apply does not fight the HPAs`, () => stack.otherHpas(objs, ns));
    report.check(`${name}: backend resources requests 500m/1Gi, limits 2/2Gi`, () => stack.backendGuideResources(objs, ns));
    report.check(`${name}: backend StatefulSet (backend-headless, port 3000, /health probes, anti-affinity, env, Services)`, () => stack.backendStatefulSet(objs, ns));
    report.check(`${name}: backend register sidecar and drain timing (preStop, grace >= drain + 15 s)`, () => stack.backendSidecar(objs, ns));
    report.check(`${name}: pod-router Deployment (2 replicas, maxUnavailable 0, args, probes, preStop, security, spread)`, () => stack.podRouterDeployment(objs, ns));
    report.check(`${name}: pod-router Services 3001/3002, metrics Service with scrape annotations, PDB minAvailable 1`, () => stack.podRouterServices(objs, ns));
    report.check(`${name}: Redis 7 StatefulSet with AOF on do-block-storage, redis-service:6379`, () => stack.redis(objs, ns));
    report.check(`${name}: Traefik routes each path to the right Service over TLS (letsencrypt)`, () => stack.ingressRoutes(objs, ns, { host: 'hyperstudy.example.org', tls: true }));
    report.check(`${name}: Grafana host route in namespace monitoring`, () => stack.grafanaRoute(objs));
    report.check(`${name}: Traefik Deployment, LoadBalancer, ACME storage on a PVC, RBAC bindings`, () => stack.traefik(objs, ns, { acme: true }));
    report.check(`${name}: network policies allow the architecture's flows and deny the others`, () => stack.networkPolicies(objs, ns));
    report.check(`${name}: github-actions RBAC is namespaced and least-privilege`, () => stack.githubActionsRbac(objs, ns));
    report.check(`${name}: every container has resources, probes, a restricted securityContext, no :latest`, () => stack.hardening(objs));
}

if (loaded.has('production')) {
    report.check('production: images come from registry.digitalocean.com with release tags', () => stack.productionImages(loaded.get('production')));
}

if (loaded.has('development')) {
    const objs = loaded.get('development');
    const ns = 'hyperstudy-dev';
    report.check('development: namespace hyperstudy-dev only, one replica each, no HPAs, small resources, default StorageClass', () => stack.development(objs));
    report.check('development: plain-HTTP routes reach the right Services (no TLS, any host)', () => stack.ingressRoutes(objs, ns, { host: 'localhost', tls: false }));
    report.check('development: Traefik without ACME, NodePort Service, RBAC bindings', () => stack.traefik(objs, ns, { acme: false }));
    report.check('development: backend sidecar registers with pod-router-admin.hyperstudy-dev', () => stack.backendSidecar(objs, ns));
    report.check('development: example backend probes /healthz; pod-router args and probes', () => [
        ...stack.backendStatefulSet(objs, ns, { healthPath: '/healthz' }),
        ...stack.podRouterDeployment(objs, ns, { replicasMin: 1 }),
        ...stack.podRouterServices(objs, ns).filter((p) => !p.includes('PodDisruptionBudget')),
    ]);
    report.check('development: network policies allow the architecture\'s flows and deny the others', () => stack.networkPolicies(objs, ns));
    report.check('development: every container has resources, probes, a restricted securityContext, no :latest', () => stack.hardening(objs));
}

if (loaded.has('monitoring')) {
    const mon = loaded.get('monitoring');
    report.check('monitoring: Service grafana:3000 exists for the Grafana route', () => {
        const g = find(mon, 'Service', 'grafana', 'monitoring');
        return g && g.spec.ports.some((p) => p.port === 3000) ? [] : ['Service monitoring/grafana with port 3000 not rendered'];
    });
}

console.log(`# manifests: ${report.passed} ok, ${report.failed} not ok`);
process.exit(report.failed ? 1 : 0);
