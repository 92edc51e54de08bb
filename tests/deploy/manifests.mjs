// Checks of the rendered Kustomize output.
//   node manifests.mjs NAME=FILE ...
// NAME is base, development, production or monitoring (other names get the
// generic checks only). Prints one "ok - ..." / "not ok - ..." line per
// check; exits 1 when one failed.
import { Report } from './lib/report.mjs';
import { loadRender, find, findAll, workloads, podSpecOf, allContainers, idOf } from './lib/objects.mjs';
import { validateObject, unknownFields } from './lib/k8s-models.mjs';
import { validateCrd, crdUnknownFields, parseRule } from './lib/traefik.mjs';
import {
    schemaProblems, unknownFieldProblems, selectorProblems, serviceProblems, referenceProblems, noSecretObjects,
} from './lib/generic.mjs';
import * as stack from './lib/stack.mjs';

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

report.check('self-test: CRD objects are validated by their @kubernetes-models classes, unknown fields included', () => {
    const problems = [];
    const cert = () => ({
        apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'c', namespace: 'hyperstudy' },
        spec: { secretName: 's', dnsNames: ['a.b'], issuerRef: { kind: 'ClusterIssuer', name: 'le' } },
    });
    const ir = () => ({
        apiVersion: 'traefik.io/v1alpha1', kind: 'IngressRoute', metadata: { name: 'r', namespace: 'hyperstudy' },
        spec: { entryPoints: ['websecure'], routes: [{ kind: 'Rule', match: 'Host(`a.b`)', services: [{ name: 's', port: 80 }] }], tls: { secretName: 's' } },
    });
    for (const [what, o] of [['Certificate', cert()], ['IngressRoute', ir()]]) {
        if (schemaProblems([o]).length || unknownFieldProblems([o]).length) problems.push(`valid ${what} rejected: ${schemaProblems([o])} ${unknownFieldProblems([o])}`);
    }
    const typo = cert();
    typo.spec.dnsName = ['a.b'];
    if (unknownFieldProblems([typo]).length !== 1) problems.push(`Certificate .spec.dnsName typo not reported: ${unknownFieldProblems([typo])}`);
    const missing = cert();
    delete missing.spec.issuerRef;
    if (schemaProblems([missing]).length === 0) problems.push('Certificate without issuerRef accepted');
    const irTypo = ir();
    irTypo.spec.tls.secretname = 'x';
    if (unknownFieldProblems([irTypo]).length !== 1) problems.push(`IngressRoute .spec.tls.secretname typo not reported: ${unknownFieldProblems([irTypo])}`);
    const badKind = ir();
    badKind.spec.routes[0].kind = 'Match';
    if (schemaProblems([badKind]).length === 0) problems.push('IngressRoute route kind Match accepted');
    const issuer = {
        apiVersion: 'cert-manager.io/v1', kind: 'ClusterIssuer', metadata: { name: 'le' },
        spec: { acme: { server: 'https://x', privateKeySecretRef: { name: 'k' }, solvers: [{ dns01: { digitalocean: { tokenSecretRef: { name: 't', key: 'k' } } } }] } },
    };
    if (schemaProblems([issuer]).length || unknownFieldProblems([issuer]).length) problems.push(`valid ClusterIssuer rejected: ${schemaProblems([issuer])}`);
    issuer.spec.acme.solvers[0].dns01.digitalOcean = {};
    if (unknownFieldProblems([issuer]).length !== 1) problems.push('ClusterIssuer solver typo digitalOcean not reported');
    return problems;
});

// ---- per render ------------------------------------------------------------

const loaded = new Map();
for (const [name, file] of renders) {
    let objs;
    const ok = report.check(`${name}: rendered output parses as YAML objects`, () => {
        objs = loadRender(file);
        return objs.length ? [] : ['no objects rendered'];
    });
    if (ok) loaded.set(name, objs);
}

for (const [name, objs] of loaded) {
    const others = [...loaded].filter(([n]) => n !== name).flatMap(([, o]) => o);
    report.check(`${name}: every object validates against its schema (kubernetes-models; CRDs by @kubernetes-models/traefik and /cert-manager, IngressRoute rules by ours)`, () => schemaProblems(objs));
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
    report.check(`${name}: backend resources are the guide's (requests 250m/512Mi, limits 1000m/1Gi)`, () => stack.backendGuideResources(objs, ns));
    report.check(`${name}: guide values (hyperstudy.app, Secret names, POD_ROUTER_URL, REDIS_URL, backend OnDelete)`, () => stack.guideValues(objs, ns, { host: 'hyperstudy.app' }));
    report.check(`${name}: backend StatefulSet (backend-headless, port 3000, /health probes, anti-affinity, env, Services)`, () => stack.backendStatefulSet(objs, ns));
    report.check(`${name}: per-pod Services backend-0..backend-11 with sessionAffinity (guide)`, () => stack.perPodServices(objs, ns, 12));
    report.check(`${name}: backend register sidecar, --health-url on the backend's health endpoint, drain timing`, () => stack.backendSidecar(objs, ns));
    report.check(`${name}: pod-router Deployment (2 replicas, maxUnavailable 0, args, probes, preStop, security, spread)`, () => stack.podRouterDeployment(objs, ns));
    report.check(`${name}: pod-router Services 3001/3002, metrics Service with scrape annotations, PDB minAvailable 1`, () => stack.podRouterServices(objs, ns));
    report.check(`${name}: Redis 7 StatefulSet with AOF on do-block-storage, redis-service:6379`, () => stack.redis(objs, ns));
    report.check(`${name}: Traefik routes each path to the right Service over TLS (cert-manager Certificate, Let's Encrypt)`, () => stack.ingressRoutes(objs, ns, { host: 'hyperstudy.app', tls: true }));
    report.check(`${name}: Grafana route grafana.hyperstudy.app in namespace monitoring with its Certificate`, () => stack.grafanaRoute(objs));
    report.check(`${name}: Traefik Deployment, DigitalOcean LoadBalancer with PROXY protocol, no ACME in Traefik`, () => stack.traefik(objs, ns, { lb: true }));
    report.check(`${name}: Traefik 2+ replicas, RollingUpdate, PDBs for Traefik and Redis`, () => stack.traefikAvailability(objs, ns));
    report.check(`${name}: RBAC sufficiency: Traefik's providers get every API read they need (incl. cluster-wide Nodes)`, () => stack.traefikRbac(objs, ns));
    report.check(`${name}: network policies (union): required flows allowed, anything else into backend and Redis denied`, () => stack.networkPolicies(objs, ns));
    report.check(`${name}: github-actions RBAC is namespaced and least-privilege`, () => stack.githubActionsRbac(objs, ns));
    report.check(`${name}: every container has resources, probes, a restricted securityContext, no :latest`, () => stack.hardening(objs));
    report.check(`${name}: pod security: numeric non-root UIDs, no privilege escalation, read-only root where possible`, () => stack.podSecurity(objs));
}

if (loaded.has('production')) {
    report.check('production: images from registry.digitalocean.com; HyperStudy\'s are the guide\'s backend/frontend', () => stack.productionImages(loaded.get('production')));
}

for (const name of ['development', 'local']) {
    if (!loaded.has(name)) continue;
    const objs = loaded.get(name);
    const ns = 'hyperstudy-dev';
    const doks = name === 'development';
    report.check(`${name}: namespace hyperstudy-dev only, one replica each, no HPAs, small resources, default StorageClass`, () => stack.development(objs));
    report.check(doks ? 'development: TLS routes for dev.hyperstudy.app with a staging Let\'s Encrypt certificate' : 'local: plain-HTTP routes reach the right Services (no TLS, any host)',
        () => stack.ingressRoutes(objs, ns, doks ? { host: 'dev.hyperstudy.app', tls: 'staging' } : { host: 'localhost', tls: false }));
    report.check(`${name}: Traefik without ACME, ${doks ? 'LoadBalancer with PROXY protocol' : 'NodePort Service'}`, () => stack.traefik(objs, ns, { lb: doks }));
    report.check(`${name}: RBAC sufficiency of Traefik (own Node binding, production's untouched)`, () => [
        ...stack.traefikRbac(objs, ns),
        ...(findAll(objs, 'ClusterRoleBinding').some((b) => b.metadata.name === 'traefik-cluster') ? ['ClusterRoleBinding traefik-cluster is production\'s: applying it here rebinds production\'s Traefik'] : []),
    ]);
    report.check(`${name}: backend sidecar registers with pod-router-admin.hyperstudy-dev, --health-url /healthz`, () => stack.backendSidecar(objs, ns));
    report.check(`${name}: example backend probes /healthz; pod-router args and probes`, () => [
        ...stack.backendStatefulSet(objs, ns, { healthPath: '/healthz' }),
        ...stack.podRouterDeployment(objs, ns, { replicasMin: 1 }),
        ...stack.podRouterServices(objs, ns).filter((p) => !p.includes('PodDisruptionBudget')),
    ]);
    report.check(`${name}: network policies (union): required flows allowed, anything else into backend and Redis denied`, () => stack.networkPolicies(objs, ns));
    report.check(`${name}: every container has resources, probes, a restricted securityContext, no :latest`, () => stack.hardening(objs));
    report.check(`${name}: pod security: numeric non-root UIDs, no privilege escalation, read-only root where possible`, () => stack.podSecurity(objs));
    if (doks) {
        report.check('development: every image pulls from DOCR with docr-pull (deployable on DOKS)', () => {
            const out = [];
            for (const w of workloads(objs)) {
                const spec = podSpecOf(w);
                for (const c of allContainers(spec)) {
                    if (/^(traefik|redis):/.test(c.image)) continue;
                    if (!/^registry\.digitalocean\.com\//.test(c.image)) out.push(`${idOf(w)} ${c.name}: ${c.image} cannot be pulled on DOKS`);
                    else if (!(spec.imagePullSecrets || []).some((p) => p.name === 'docr-pull')) out.push(`${idOf(w)}: no imagePullSecrets docr-pull`);
                }
            }
            return out;
        });
    }
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
