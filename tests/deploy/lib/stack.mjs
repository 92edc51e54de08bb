// Assertions on the values of the HyperStudy deployment guide and on the
// design of deploy/k8s (docs/deployment.md). Each function returns the list
// of problems of one counted check.
import { collector } from './report.mjs';
import {
    find, findAll, podSpecOf, container, argValue, durationSeconds, preStopSleep,
    labelsMatch, selectorLabels, podLabelsOf, podsOf, workloads, allContainers, idOf,
} from './objects.mjs';
import { parseRule, pickRoute } from './traefik.mjs';
import { allowed } from './netpol.mjs';

// Deep equality of JSON values, ignoring key order.
function canon(v) {
    if (Array.isArray(v)) return v.map(canon);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
    return v;
}
const eq = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));

function hpaMetric(hpa, name) {
    const m = (hpa.spec.metrics || []).find((x) => x.type === 'Resource' && x.resource.name === name);
    return m && m.resource.target.type === 'Utilization' ? m.resource.target.averageUtilization : undefined;
}

export function backendHpa(objs, ns) {
    const { problems, expect } = collector();
    const h = find(objs, 'HorizontalPodAutoscaler', 'backend-hpa', ns);
    if (!expect(h, `HorizontalPodAutoscaler ${ns}/backend-hpa missing`)) return problems;
    expect(h.apiVersion === 'autoscaling/v2', 'backend-hpa must be autoscaling/v2');
    expect(eq(h.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'backend' }),
        `backend-hpa scaleTargetRef ${JSON.stringify(h.spec.scaleTargetRef)} != apps/v1 StatefulSet backend`);
    expect(h.spec.minReplicas === 3, `backend-hpa minReplicas ${h.spec.minReplicas} != 3`);
    expect(h.spec.maxReplicas === 12, `backend-hpa maxReplicas ${h.spec.maxReplicas} != 12`);
    expect(hpaMetric(h, 'cpu') === 60, `backend-hpa CPU averageUtilization ${hpaMetric(h, 'cpu')} != 60`);
    expect(hpaMetric(h, 'memory') === 70, `backend-hpa memory averageUtilization ${hpaMetric(h, 'memory')} != 70`);
    expect(h.spec.metrics.length === 2, 'backend-hpa has exactly the CPU and memory metrics');
    return problems;
}

export function otherHpas(objs, ns) {
    const { problems, expect } = collector();
    for (const [name, kind, target, min, max, cpu] of [
        ['frontend-hpa', 'Deployment', 'frontend', 2, 10, 70],
        ['pod-router-hpa', 'Deployment', 'pod-router', 2, 6, 70],
    ]) {
        const h = find(objs, 'HorizontalPodAutoscaler', name, ns);
        if (!expect(h, `${name} missing`)) continue;
        expect(h.spec.scaleTargetRef.kind === kind && h.spec.scaleTargetRef.name === target, `${name} must target ${kind} ${target}`);
        expect(h.spec.minReplicas === min && h.spec.maxReplicas === max, `${name} must scale ${min}..${max}, has ${h.spec.minReplicas}..${h.spec.maxReplicas}`);
        expect(hpaMetric(h, 'cpu') === cpu, `${name} CPU target must be ${cpu}%`);
    }
    // HPA-managed workloads leave `replicas` to the HPA, or at least start
    // at its floor, so `kubectl apply` does not fight the autoscaler.
    for (const h of findAll(objs, 'HorizontalPodAutoscaler')) {
        const t = find(objs, h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name, h.metadata.namespace);
        if (t && t.spec.replicas !== undefined) {
            expect(t.spec.replicas >= h.spec.minReplicas, `${idOf(t)} replicas ${t.spec.replicas} below ${h.metadata.name} minReplicas`);
        }
    }
    return problems;
}

function probePath(p) {
    return p && p.httpGet ? p.httpGet.path : undefined;
}

function hasRequestsAndLimits(c) {
    const r = c.resources || {};
    return r.requests && r.limits && r.requests.cpu && r.requests.memory && r.limits.memory;
}

export function backendStatefulSet(objs, ns, { healthPath = '/health' } = {}) {
    const { problems, expect } = collector();
    const s = find(objs, 'StatefulSet', 'backend', ns);
    if (!expect(s, `StatefulSet ${ns}/backend missing`)) return problems;
    expect(s.spec.serviceName === 'backend-headless', `serviceName ${s.spec.serviceName} != backend-headless`);
    const spec = podSpecOf(s);
    const c = container(s, 'backend');
    if (!expect(c, 'container `backend` missing')) return problems;
    expect((c.ports || []).some((p) => p.containerPort === 3000), 'backend must expose port 3000');
    expect(probePath(c.readinessProbe) === healthPath, `readinessProbe must GET ${healthPath}`);
    expect(probePath(c.livenessProbe) === healthPath, `livenessProbe must GET ${healthPath}`);
    expect((c.envFrom || []).some((e) => e.secretRef && e.secretRef.name === 'hyperstudy-secrets'), 'env from Secret hyperstudy-secrets');
    expect((c.envFrom || []).some((e) => e.configMapRef), 'env from a ConfigMap');
    const aff = spec.affinity && spec.affinity.podAntiAffinity;
    const pref = aff && aff.preferredDuringSchedulingIgnoredDuringExecution;
    expect(Array.isArray(pref) && pref.some((t) => t.podAffinityTerm.topologyKey === 'kubernetes.io/hostname' &&
        labelsMatch(selectorLabels(t.podAffinityTerm.labelSelector), podLabelsOf(s))),
    'preferred pod anti-affinity on kubernetes.io/hostname selecting the backend pods');
    const bs = find(objs, 'Service', 'backend-service', ns);
    expect(bs && bs.spec.type !== 'LoadBalancer' && bs.spec.ports.some((p) => p.port === 3000), 'ClusterIP Service backend-service:3000');
    const hs = find(objs, 'Service', 'backend-headless', ns);
    expect(hs && hs.spec.clusterIP === 'None', 'headless Service backend-headless');
    return problems;
}

export function backendGuideResources(objs, ns) {
    const { problems, expect } = collector();
    const c = container(find(objs, 'StatefulSet', 'backend', ns) || { kind: 'x' }, 'backend');
    if (!expect(c, 'backend container missing')) return problems;
    const cpu = (v) => (/^\d+m$/.test(String(v)) ? Number(String(v).slice(0, -1)) : Number(v) * 1000);
    const r = c.resources || {};
    const got = [cpu((r.requests || {}).cpu), (r.requests || {}).memory, cpu((r.limits || {}).cpu), (r.limits || {}).memory];
    expect(eq(got, [250, '512Mi', 1000, '1Gi']),
        `backend resources ${JSON.stringify(c.resources)} != the guide's requests 250m/512Mi, limits 1000m/1Gi`);
    return problems;
}

// The `pod-router register` sidecar and the drain timing of backend pods.
export function backendSidecar(objs, ns) {
    const { problems, expect } = collector();
    const s = find(objs, 'StatefulSet', 'backend', ns);
    if (!expect(s, 'StatefulSet backend missing')) return problems;
    const spec = podSpecOf(s);
    const side = (spec.containers || []).find((c) => (c.args || [])[0] === 'register');
    if (!expect(side, 'a container running `pod-router register` (regular container, not an init container)')) return problems;
    const a = side.args;
    expect(argValue(a, '--admin-url') === `http://pod-router-admin.${ns}.svc.cluster.local:3002`,
        `--admin-url ${argValue(a, '--admin-url')} != http://pod-router-admin.${ns}.svc.cluster.local:3002`);
    expect(argValue(a, '--name') === '$(POD_NAME)', '--name $(POD_NAME)');
    expect(argValue(a, '--address') === '$(POD_IP):3000', '--address $(POD_IP):3000');
    expect(argValue(a, '--token-file') === '/etc/pod-router/token', '--token-file /etc/pod-router/token');
    const env = new Map((side.env || []).map((e) => [e.name, e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath]));
    expect(env.get('POD_NAME') === 'metadata.name', 'POD_NAME from the downward API (metadata.name)');
    expect(env.get('POD_IP') === 'status.podIP', 'POD_IP from the downward API (status.podIP)');
    expect(/(^|\/)pod-router(-register)?(:|$)/.test(side.image), `sidecar image ${side.image} is a pod-router image`);
    // SPEC 8 --health-url: the backend's own readiness endpoint, over loopback.
    const backendC = container(s, 'backend');
    const hp = backendC && backendC.readinessProbe && backendC.readinessProbe.httpGet;
    const bport = backendC && (backendC.ports || []).find((p) => p.name === (hp && hp.port) || p.containerPort === (hp && hp.port));
    const wantHealth = hp && bport ? `http://127.0.0.1:${bport.containerPort}${hp.path}` : '(backend readinessProbe)';
    expect(argValue(a, '--health-url') === wantHealth,
        `--health-url ${argValue(a, '--health-url')} != ${wantHealth} (the backend's readiness endpoint): a starting or crash-looping backend must not get rooms`);
    const mount = (side.volumeMounts || []).find((m) => m.mountPath === '/etc/pod-router');
    const vol = mount && (spec.volumes || []).find((v) => v.name === mount.name);
    expect(vol && vol.secret && vol.secret.secretName === 'pod-router-secrets', 'token mounted from Secret pod-router-secrets at /etc/pod-router');
    const sc = side.securityContext || {};
    expect(sc.readOnlyRootFilesystem === true && sc.allowPrivilegeEscalation === false, 'sidecar: read-only root, no privilege escalation');
    const grace = durationSeconds(argValue(a, '--drain-grace') || '30s');
    const tgps = spec.terminationGracePeriodSeconds === undefined ? 30 : spec.terminationGracePeriodSeconds;
    expect(tgps >= grace + 15, `terminationGracePeriodSeconds ${tgps} < drain grace ${grace}s + 15`);
    const backend = container(s, 'backend');
    const wait = preStopSleep(backend);
    expect(wait > 0, 'backend container has a preStop that waits for the drain');
    expect(wait >= grace, `backend preStop waits ${wait}s, less than the sidecar's drain grace ${grace}s`);
    expect(wait < tgps, `backend preStop ${wait}s must end before terminationGracePeriodSeconds ${tgps}`);
    return problems;
}

export function podRouterDeployment(objs, ns, { replicasMin = 2 } = {}) {
    const { problems, expect } = collector();
    const d = find(objs, 'Deployment', 'pod-router', ns);
    if (!expect(d, `Deployment ${ns}/pod-router missing`)) return problems;
    const spec = podSpecOf(d);
    const hpa = findAll(objs, 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === 'pod-router');
    const floor = d.spec.replicas !== undefined ? d.spec.replicas : (hpa ? hpa.spec.minReplicas : 1);
    expect(floor === replicasMin, `pod-router runs ${floor} replicas (replicas or HPA floor), want ${replicasMin}`);
    const ru = d.spec.strategy && d.spec.strategy.rollingUpdate;
    expect(d.spec.strategy && d.spec.strategy.type === 'RollingUpdate' && ru && ru.maxUnavailable === 0, 'RollingUpdate with maxUnavailable 0');
    const c = container(d, 'pod-router');
    if (!expect(c, 'container pod-router missing')) return problems;
    const a = c.args || [];
    expect(a[0] === 'serve', 'first argument is `serve`');
    expect(argValue(a, '--store') === 'redis://redis-service:6379', '--store redis://redis-service:6379');
    expect(argValue(a, '--token-file') === '/etc/pod-router/token', '--token-file /etc/pod-router/token');
    expect(argValue(a, '--cookie-secret-file') === '/etc/pod-router/cookie-secret', '--cookie-secret-file /etc/pod-router/cookie-secret');
    const ports = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
    expect([...ports.values()].includes(3001) && [...ports.values()].includes(3002), 'container ports 3001 and 3002');
    const probePort = (p) => (typeof p.httpGet.port === 'string' ? ports.get(p.httpGet.port) : p.httpGet.port);
    expect(c.livenessProbe && probePath(c.livenessProbe) === '/healthz' && probePort(c.livenessProbe) === 3002, 'livenessProbe GET /healthz on 3002');
    expect(c.readinessProbe && probePath(c.readinessProbe) === '/readyz' && probePort(c.readinessProbe) === 3002, 'readinessProbe GET /readyz on 3002');
    const wait = preStopSleep(c);
    expect(wait > 0, 'preStop sleep so Traefik deregisters the pod before the drain');
    const drain = durationSeconds(argValue(a, '--drain-timeout') || '30s');
    const tgps = spec.terminationGracePeriodSeconds === undefined ? 30 : spec.terminationGracePeriodSeconds;
    expect(tgps > drain + wait, `terminationGracePeriodSeconds ${tgps} must exceed preStop ${wait}s + --drain-timeout ${drain}s`);
    const sc = c.securityContext || {};
    const psc = spec.securityContext || {};
    expect(sc.runAsNonRoot === true || psc.runAsNonRoot === true, 'runAsNonRoot');
    expect(sc.readOnlyRootFilesystem === true, 'readOnlyRootFilesystem');
    expect(sc.allowPrivilegeEscalation === false, 'allowPrivilegeEscalation false');
    expect(sc.capabilities && eq(sc.capabilities.drop, ['ALL']), 'capabilities drop ALL');
    expect(hasRequestsAndLimits(c), 'resources requests and limits');
    expect((spec.topologySpreadConstraints || []).some((t) => labelsMatch(selectorLabels(t.labelSelector), podLabelsOf(d))),
        'topologySpreadConstraints over the pod-router pods');
    const vol = (spec.volumes || []).find((v) => v.secret && v.secret.secretName === 'pod-router-secrets');
    expect(vol && (c.volumeMounts || []).some((m) => m.name === vol.name && m.mountPath === '/etc/pod-router'),
        'Secret pod-router-secrets mounted at /etc/pod-router');
    expect(spec.serviceAccountName && find(objs, 'ServiceAccount', spec.serviceAccountName, ns), 'own ServiceAccount');
    return problems;
}

export function podRouterServices(objs, ns) {
    const { problems, expect } = collector();
    const d = find(objs, 'Deployment', 'pod-router', ns);
    const labels = d ? podLabelsOf(d) : {};
    const svcPort = (name, port) => {
        const s = find(objs, 'Service', name, ns);
        return s && labelsMatch(s.spec.selector, labels) && s.spec.ports.some((p) => p.port === port);
    };
    expect(svcPort('pod-router', 3001), 'Service pod-router:3001 selecting the router pods');
    expect(svcPort('pod-router-admin', 3002), 'Service pod-router-admin:3002 selecting the router pods');
    const m = objs.find((o) => o.kind === 'Service' && o.metadata.namespace === ns &&
        (o.spec.ports || []).some((p) => p.name === 'metrics' && p.port === 3002) && labelsMatch(o.spec.selector, labels));
    if (expect(m, 'a Service with a `metrics` port 3002 selecting the router pods')) {
        const an = m.metadata.annotations || {};
        expect(an['prometheus.io/scrape'] === 'true' && an['prometheus.io/port'] === '3002' && an['prometheus.io/path'] === '/metrics',
            `${m.metadata.name}: prometheus.io/scrape, port 3002, path /metrics annotations`);
    }
    const pdb = findAll(objs, 'PodDisruptionBudget').find((p) => p.metadata.namespace === ns && labelsMatch(selectorLabels(p.spec.selector), labels));
    expect(pdb && pdb.spec.minAvailable === 1, 'PodDisruptionBudget minAvailable 1 for pod-router');
    return problems;
}

export function redis(objs, ns, { storageClass = 'do-block-storage' } = {}) {
    const { problems, expect } = collector();
    const s = find(objs, 'StatefulSet', 'redis', ns);
    if (!expect(s, 'StatefulSet redis missing')) return problems;
    const c = podSpecOf(s).containers[0];
    const cmd = [...(c.command || []), ...(c.args || [])];
    expect(/^redis(:|$)|\/redis:7/.test(c.image) && /:7/.test(c.image), `Redis 7 image (${c.image})`);
    expect(argValue(cmd, '--appendonly') === 'yes', 'AOF: --appendonly yes');
    expect(c.readinessProbe && c.livenessProbe, 'readiness and liveness probes');
    expect(hasRequestsAndLimits(c), 'resources requests and limits');
    const vct = (s.spec.volumeClaimTemplates || [])[0];
    if (expect(vct, 'volumeClaimTemplates')) {
        expect(vct.spec.storageClassName === storageClass, `volumeClaimTemplate storageClassName ${vct.spec.storageClassName} != ${storageClass}`);
        expect((c.volumeMounts || []).some((m) => m.name === vct.metadata.name && m.mountPath === '/data'), 'data volume at /data');
    }
    const svc = find(objs, 'Service', 'redis-service', ns);
    expect(svc && svc.spec.ports.some((p) => p.port === 6379) && labelsMatch(svc.spec.selector, podLabelsOf(s)), 'Service redis-service:6379 selecting Redis');
    return problems;
}

// Where Traefik sends typical requests (the routes of HyperStudy's
// podRouterProxy setup).
export function ingressRoutes(objs, ns, { host, tls }) {
    const { problems, expect } = collector();
    const irs = findAll(objs, 'IngressRoute').filter((o) => o.metadata.namespace === ns);
    if (!expect(irs.length > 0, `no IngressRoute in ${ns}`)) return problems;
    const entries = irs.flatMap((ir) => ir.spec.routes.map((route) => ({ route, ingressRoute: ir })));
    const cases = [
        ['/socket.io/?EIO=4&transport=polling', 'pod-router', 3001],
        ['/socket.io/', 'pod-router', 3001],
        ['/experiment/room_abc-1_x', 'pod-router', 3001],
        ['/experiment/room_abc/participant', 'pod-router', 3001],
        ['/experiment', 'frontend-service', 80],
        ['/experiment/lobby', 'frontend-service', 80],
        ['/experiment/room_', 'frontend-service', 80],
        ['/api/room/room_42/state', 'pod-router', 3001],
        ['/api/experiment/exp1/start', 'pod-router', 3001],
        ['/api/users/me', 'backend-service', 3000],
        ['/api', 'backend-service', 3000],
        ['/', 'frontend-service', 80],
        ['/assets/app.js', 'frontend-service', 80],
    ];
    for (const [url, svc, port] of cases) {
        const path = url.split('?')[0];
        let hit;
        try {
            hit = pickRoute(entries, { host, path, method: 'GET' });
        } catch (e) {
            problems.push(e.message);
            continue;
        }
        const got = hit ? `${hit.route.services[0].name}:${hit.route.services[0].port}` : 'no route';
        expect(got === `${svc}:${port}`, `GET ${url} (Host ${host}) goes to ${got}, want ${svc}:${port}`);
    }
    expect(entries.some(({ route }) => /PathRegexp\(/.test(route.match) && /room_/.test(route.match)), 'the room route uses PathRegexp');
    for (const ir of irs) {
        if (tls) {
            expect(ir.spec.tls && ir.spec.tls.secretName && !ir.spec.tls.certResolver,
                `${ir.metadata.name}: tls.secretName of a cert-manager Certificate (no Traefik ACME resolver: it cannot run on several replicas)`);
            const cert = ir.spec.tls && findAll(objs, 'Certificate').find((c) => c.metadata.namespace === ns && c.spec.secretName === ir.spec.tls.secretName);
            if (expect(cert, `${ir.metadata.name}: a Certificate in ${ns} writes Secret ${ir.spec.tls && ir.spec.tls.secretName}`)) {
                expect((cert.spec.dnsNames || []).includes(host), `Certificate ${cert.metadata.name} covers ${host} (${cert.spec.dnsNames})`);
                const issuer = find(objs, cert.spec.issuerRef.kind || 'Issuer', cert.spec.issuerRef.name);
                expect(issuer, `issuer ${cert.spec.issuerRef.name} of ${cert.metadata.name} is rendered`);
                if (issuer && tls === 'staging') expect(/acme-staging/.test(issuer.spec.acme.server), `${cert.metadata.name}: staging ACME issuer`);
                if (issuer && tls === true) expect(/acme-v02\.api\.letsencrypt\.org/.test(issuer.spec.acme.server), `${cert.metadata.name}: production Let's Encrypt issuer`);
            }
            expect(eq(ir.spec.entryPoints, ['websecure']), `${ir.metadata.name}: entry point websecure`);
        } else {
            expect(!ir.spec.tls, `${ir.metadata.name}: no TLS in this environment`);
        }
    }
    for (const { route } of entries) parseRule(route.match);
    return problems;
}

export function grafanaRoute(objs) {
    const { problems, expect } = collector();
    const g = findAll(objs, 'IngressRoute').find((o) => o.metadata.namespace === 'monitoring');
    if (!expect(g, 'an IngressRoute in namespace monitoring for Grafana')) return problems;
    const r = g.spec.routes[0];
    expect(/^Host\(`[^`]+`\)$/.test(r.match), `Grafana route matches a host only (${r.match})`);
    expect(r.services[0].name === 'grafana' && r.services[0].port === 3000, 'Grafana route targets Service grafana:3000');
    expect(r.match === 'Host(`grafana.hyperstudy.app`)', `Grafana host is the guide's grafana.hyperstudy.app (${r.match})`);
    const cert = g.spec.tls && findAll(objs, 'Certificate').find((c) => c.metadata.namespace === 'monitoring' && c.spec.secretName === g.spec.tls.secretName);
    expect(cert && (cert.spec.dnsNames || []).includes('grafana.hyperstudy.app'), 'Grafana route serves a cert-manager Certificate for grafana.hyperstudy.app');
    return problems;
}

export function traefik(objs, ns, { lb }) {
    const { problems, expect } = collector();
    const d = find(objs, 'Deployment', 'traefik', ns);
    if (!expect(d, `Deployment ${ns}/traefik missing`)) return problems;
    const c = podSpecOf(d).containers[0];
    expect(/^traefik:v3\.\d+\.\d+$/.test(c.image), `Traefik v3 image pinned to a release (${c.image})`);
    const args = c.args || [];
    expect(args.includes('--providers.kubernetesCRD=true') || args.includes('--providers.kubernetescrd'), 'Kubernetes CRD provider enabled');
    expect(!args.some((x) => /acme/i.test(x)), 'no Traefik ACME resolver (acme.json has one owner; certificates come from cert-manager)');
    const svc = find(objs, 'Service', 'traefik', ns);
    expect(svc && labelsMatch(svc.spec.selector, podLabelsOf(d)), 'Service traefik selects the Traefik pod');
    if (lb) {
        expect(svc && svc.spec.type === 'LoadBalancer', 'Service traefik is a LoadBalancer');
        expect(svc && [80, 443].every((p) => svc.spec.ports.some((x) => x.port === p)), 'LoadBalancer ports 80 and 443');
        const an = (svc && svc.metadata.annotations) || {};
        expect(an['service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol'] === 'true',
            'DigitalOcean LB with PROXY protocol (it proxies TCP: the client address is lost otherwise)');
        for (const ep of ['web', 'websecure']) {
            const t = argValue(args, `--entryPoints.${ep}.proxyProtocol.trustedIPs`);
            expect(t && t.split(',').every((cidr) => /^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.)/.test(cidr)),
                `entry point ${ep} accepts PROXY protocol from the VPC only (proxyProtocol.trustedIPs ${t})`);
        }
    } else {
        expect(svc && svc.spec.type === 'NodePort', 'Service traefik is a NodePort (kind/minikube)');
    }
    return problems;
}

// Traefik keeps serving through restarts and node drains.
export function traefikAvailability(objs, ns) {
    const { problems, expect } = collector();
    const d = find(objs, 'Deployment', 'traefik', ns);
    if (!expect(d, 'Deployment traefik')) return problems;
    const ru = d.spec.strategy && d.spec.strategy.rollingUpdate;
    expect((d.spec.replicas || 1) >= 2, `Traefik replicas ${d.spec.replicas}: one replica drops traffic on every restart`);
    expect(d.spec.strategy && d.spec.strategy.type === 'RollingUpdate' && ru && ru.maxUnavailable === 0,
        'Traefik RollingUpdate with maxUnavailable 0 (Recreate drops traffic)');
    for (const [name, w] of [['traefik', d], ['redis', find(objs, 'StatefulSet', 'redis', ns)]]) {
        const pdb = w && findAll(objs, 'PodDisruptionBudget').find((p) => p.metadata.namespace === ns &&
            labelsMatch(selectorLabels(p.spec.selector), podLabelsOf(w)));
        expect(pdb, `a PodDisruptionBudget for ${name}`);
    }
    return problems;
}

// RBAC sufficiency of Traefik: the API reads its configured providers make
// (Traefik v3.1 source: pkg/provider/kubernetes/crd client), checked against
// the rendered roles and bindings of its ServiceAccount.
const TRAEFIK_NEEDS = {
    kubernetesCRD: {
        namespaced: [
            ['', 'services', ['get', 'list', 'watch']],
            ['', 'secrets', ['get', 'list', 'watch']],
            ['discovery.k8s.io', 'endpointslices', ['list', 'watch']],
            ...['ingressroutes', 'ingressroutetcps', 'ingressrouteudps', 'middlewares', 'middlewaretcps',
                'serverstransports', 'serverstransporttcps', 'tlsoptions', 'tlsstores', 'traefikservices']
                .map((r) => ['traefik.io', r, ['get', 'list', 'watch']]),
        ],
        // Watched before any route is built unless disableClusterScopeResources=true.
        cluster: [['', 'nodes', ['get', 'list', 'watch']]],
    },
    kubernetesIngress: {
        namespaced: [['', 'services', ['get', 'list', 'watch']], ['', 'secrets', ['get', 'list', 'watch']],
            ['networking.k8s.io', 'ingresses', ['get', 'list', 'watch']]],
        cluster: [['networking.k8s.io', 'ingressclasses', ['get', 'list', 'watch']], ['', 'nodes', ['get', 'list', 'watch']]],
    },
};

export function rulesGrant(rules, group, resource, verb) {
    return (rules || []).some((r) => (r.apiGroups || []).some((g) => g === group || g === '*') &&
        (r.resources || []).some((x) => x === resource || x === '*') &&
        (r.verbs || []).some((v) => v === verb || v === '*'));
}

// Rules granted to ServiceAccount ns/sa in namespace `where` (null: cluster-wide only).
export function grantedRules(objs, ns, sa, where) {
    const subjectIs = (b) => (b.subjects || []).some((x) => x.kind === 'ServiceAccount' && x.name === sa && x.namespace === ns);
    const roleRules = (ref, bindingNs) => {
        const r = ref.kind === 'ClusterRole' ? find(objs, 'ClusterRole', ref.name) : find(objs, 'Role', ref.name, bindingNs);
        return r ? r.rules || [] : [];
    };
    const out = [];
    for (const b of objs.filter((o) => o.kind === 'ClusterRoleBinding' && subjectIs(o))) out.push(...roleRules(b.roleRef));
    if (where !== null) {
        for (const b of objs.filter((o) => o.kind === 'RoleBinding' && o.metadata.namespace === where && subjectIs(o))) {
            out.push(...roleRules(b.roleRef, where));
        }
    }
    return out;
}

export function traefikRbac(objs, ns) {
    const { problems, expect } = collector();
    const d = find(objs, 'Deployment', 'traefik', ns);
    if (!expect(d, 'Deployment traefik')) return problems;
    const args = podSpecOf(d).containers[0].args || [];
    const sa = podSpecOf(d).serviceAccountName || 'default';
    let checked = 0;
    for (const [provider, needs] of Object.entries(TRAEFIK_NEEDS)) {
        const on = args.includes(`--providers.${provider}=true`) || args.includes(`--providers.${provider.toLowerCase()}`) ||
            args.some((a) => a.toLowerCase().startsWith(`--providers.${provider.toLowerCase()}.`));
        if (!on) continue;
        checked++;
        const nsArg = argValue(args, `--providers.${provider}.namespaces`);
        const watched = nsArg ? nsArg.split(',') : [null];
        const noCluster = argValue(args, `--providers.${provider}.disableClusterScopeResources`) === 'true';
        for (const w of watched) {
            const rules = w === null ? grantedRules(objs, ns, sa, null) : grantedRules(objs, ns, sa, w);
            for (const [g, r, verbs] of needs.namespaced) {
                for (const v of verbs) expect(rulesGrant(rules, g, r, v), `${provider}: ${sa} cannot ${v} ${g || 'core'}/${r} in ${w || 'all namespaces'}`);
            }
        }
        if (!noCluster) {
            const rules = grantedRules(objs, ns, sa, null);
            for (const [g, r, verbs] of needs.cluster) {
                for (const v of verbs) {
                    expect(rulesGrant(rules, g, r, v), `${provider}: ${sa} cannot ${v} ${g || 'core'}/${r} cluster-wide (ClusterRoleBinding), and disableClusterScopeResources is not set: Traefik waits forever, every request 404s`);
                }
            }
        }
    }
    expect(checked > 0, 'no Kubernetes provider configured');
    return problems;
}

// Every container: a numeric non-root UID (the kubelet cannot verify a named
// image user), no privilege escalation, ALL capabilities dropped, read-only
// root unless the manifest says readOnlyRootFilesystem: false explicitly
// (HyperStudy's backend writes below its working directory).
const WRITABLE_ROOT = new Set(['backend/backend']);
export function podSecurity(objs) {
    const { problems, expect } = collector();
    for (const w of workloads(objs)) {
        const spec = podSpecOf(w);
        const psc = spec.securityContext || {};
        for (const c of allContainers(spec)) {
            const sc = c.securityContext || {};
            const where = `${idOf(w)} container ${c.name}`;
            const uid = sc.runAsUser !== undefined ? sc.runAsUser : psc.runAsUser;
            const nonRoot = sc.runAsNonRoot !== undefined ? sc.runAsNonRoot : psc.runAsNonRoot;
            if (nonRoot === true || uid !== 0) {
                expect(Number.isInteger(uid) && uid > 0,
                    `${where}: runAsNonRoot needs a numeric runAsUser (else CreateContainerConfigError: the kubelet cannot verify a named user), got ${uid}`);
            }
            expect(sc.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation false`);
            expect(sc.capabilities && eq(sc.capabilities.drop, ['ALL']), `${where}: drop ALL capabilities`);
            const key = `${w.metadata.name}/${c.name}`;
            if (WRITABLE_ROOT.has(key)) expect(sc.readOnlyRootFilesystem === false, `${where}: writable root stated explicitly`);
            else expect(sc.readOnlyRootFilesystem === true, `${where}: readOnlyRootFilesystem true`);
        }
    }
    return problems;
}

// The deployment guide's names and values, from the rendered output.
export function guideValues(objs, ns, { host }) {
    const { problems, expect } = collector();
    const hosts = new Set();
    for (const ir of findAll(objs, 'IngressRoute')) {
        for (const r of ir.spec.routes) for (const m of r.match.matchAll(/Host\(`([^`]+)`\)/g)) hosts.add(m[1]);
    }
    expect(hosts.has(host), `host ${host} is routed (hosts: ${[...hosts].join(', ')})`);
    for (const h of hosts) expect(!/example\.(org|com|net)$/.test(h), `placeholder host ${h}`);
    const text = JSON.stringify(objs);
    expect(!/example\.(org|com|net)/.test(text), 'no example.* placeholder anywhere (Let\'s Encrypt refuses example.* contacts)');
    const s = find(objs, 'StatefulSet', 'backend', ns);
    const secretRefs = new Set();
    for (const w of workloads(objs)) {
        const spec = podSpecOf(w);
        for (const v of spec.volumes || []) if (v.secret) secretRefs.add(v.secret.secretName);
        for (const c of allContainers(spec)) for (const e of c.envFrom || []) if (e.secretRef) secretRefs.add(e.secretRef.name);
        for (const p of spec.imagePullSecrets || []) secretRefs.add(p.name);
    }
    for (const n of ['hyperstudy-secrets', 'pod-router-secrets', 'docr-pull']) expect(secretRefs.has(n), `Secret ${n} (guide) is used`);
    const cm = findAll(objs, 'ConfigMap').find((c) => c.metadata.namespace === ns && /^backend-config/.test(c.metadata.name));
    expect(cm && cm.data.POD_ROUTER_URL === 'http://pod-router:3001', 'backend-config POD_ROUTER_URL http://pod-router:3001');
    expect(cm && cm.data.REDIS_URL === 'redis://redis-service:6379', 'backend-config REDIS_URL redis://redis-service:6379');
    expect(s && s.spec.updateStrategy && s.spec.updateStrategy.type === 'OnDelete',
        'backend StatefulSet updateStrategy OnDelete (backend pods are replaced only by the room-aware rollout)');
    return problems;
}

function nsLabelsFn(objs) {
    return (ns) => {
        const o = find(objs, 'Namespace', ns);
        return { 'kubernetes.io/metadata.name': ns, ...((o && o.metadata.labels) || {}) };
    };
}

// The union of every NetworkPolicy of the namespace (a flow is allowed when
// some policy selecting the source allows it as egress, or none selects it,
// and likewise for ingress at the destination), against the flows the stack
// needs and the ones it must never allow.
export function networkPolicies(objs, ns) {
    const { problems, expect } = collector();
    const nps = findAll(objs, 'NetworkPolicy').filter((o) => o.metadata.namespace === ns);
    expect(nps.some((np) => Object.keys(np.spec.podSelector || {}).length === 0 &&
        eq([...(np.spec.policyTypes || [])].sort(), ['Egress', 'Ingress']) && !np.spec.ingress && !np.spec.egress),
    'a default-deny policy (all pods, Ingress and Egress, no rules)');
    const pods = podsOf(objs).filter((p) => p.namespace === ns);
    const pod = (name) => pods.find((p) => p.name === name);
    const mon = (name, ports = []) => ({ name, namespace: 'monitoring', labels: { 'app.kubernetes.io/name': name }, ports: new Map(ports) });
    const prometheus = mon('prometheus');
    const redisExporter = mon('redis-exporter');
    const grafana = mon('grafana', [['http', 3000]]);
    const kubeDns = { name: 'coredns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ports: new Map() };
    const stranger = { name: 'stranger', namespace: ns, labels: { app: 'stranger' }, ports: new Map() };
    const otherNs = { name: 'other', namespace: 'default', labels: { 'app.kubernetes.io/name': 'pod-router' }, ports: new Map() };
    const internet = { ip: '93.184.216.34' };
    const nodeNet = { ip: '10.110.0.5' };
    for (const n of ['backend', 'pod-router', 'redis', 'traefik', 'frontend']) {
        if (!pod(n)) problems.push(`no ${n} pods in ${ns}`);
    }
    if (problems.length) return problems;
    const nsLabels = nsLabelsFn(objs);
    const name = (p) => (p.name ? `${p.namespace}/${p.name}` : p.ip);
    const check = (from, to, port, proto, want, why) => {
        const got = allowed(nps, nsLabels, from, to, port, proto);
        expect(got === want, `${name(from)} -> ${name(to)}:${port}/${proto} is ${got ? 'allowed' : 'denied'}, want ${want ? 'allowed' : 'denied'}${why ? ` (${why})` : ''}`);
    };
    // backend -> POD_ROUTER_URL: resolve the URL of backend-config through its Service.
    const cm = findAll(objs, 'ConfigMap').find((c) => c.metadata.namespace === ns && /^backend-config/.test(c.metadata.name));
    const url = cm && cm.data && cm.data.POD_ROUTER_URL;
    const m = url && /^http:\/\/([a-z0-9-]+)(?:\.[a-z0-9.-]+)?:(\d+)/.exec(url);
    const routerSvc = m && find(objs, 'Service', m[1], ns);
    const sp = routerSvc && routerSvc.spec.ports.find((p) => p.port === Number(m[2]));
    const routerTarget = sp && (typeof sp.targetPort === 'string' ? pod('pod-router').ports.get(sp.targetPort) : (sp.targetPort || sp.port));
    if (expect(routerTarget, `POD_ROUTER_URL ${url} does not resolve to a pod-router Service port`)) {
        check(pod('backend'), pod('pod-router'), routerTarget, 'TCP', true, `backend -> POD_ROUTER_URL ${url}`);
    }
    // Prometheus -> every metrics port: Services named *metrics or with
    // prometheus.io/port, and pod templates with prometheus.io/port.
    const metricsTargets = [[pod('backend'), 3000]];
    for (const w of workloads(objs).filter((x) => x.metadata.namespace === ns)) {
        const an = (w.spec.template.metadata || {}).annotations || {};
        if (an['prometheus.io/port']) metricsTargets.push([pods.find((p) => p.name === w.metadata.name), Number(an['prometheus.io/port'])]);
    }
    for (const svc of findAll(objs, 'Service').filter((x) => x.metadata.namespace === ns)) {
        const an = svc.metadata.annotations || {};
        if (an['prometheus.io/scrape'] !== 'true') continue;
        const target = pods.find((p) => labelsMatch(svc.spec.selector, p.labels));
        if (target) metricsTargets.push([target, Number(an['prometheus.io/port'])]);
    }
    for (const [t, port] of metricsTargets) if (t) check(prometheus, t, port, 'TCP', true, 'Prometheus scrape');
    const required = [
        [internet, pod('traefik'), 8443], [internet, pod('traefik'), 8000],
        [pod('traefik'), pod('pod-router'), 3001], [pod('traefik'), pod('backend'), 3000],
        [pod('traefik'), pod('frontend'), 8080], [pod('traefik'), grafana, 3000],
        [pod('pod-router'), pod('backend'), 3000], [pod('pod-router'), pod('redis'), 6379],
        [pod('backend'), pod('redis'), 6379], [pod('backend'), pod('pod-router'), 3002],
        [redisExporter, pod('redis'), 6379], [pod('backend'), internet, 443],
    ];
    for (const [f, t, port] of required) check(f, t, port, 'TCP', true);
    for (const p of pods) {
        check(p, kubeDns, 53, 'UDP', true, 'DNS');
        check(p, kubeDns, 53, 'TCP', true, 'DNS');
    }
    // Forbidden: into backend and Redis, everything but the flows above.
    const wantIn = new Map([
        ['backend', new Set(['pod-router:3000', 'traefik:3000', 'prometheus:3000'])],
        ['redis', new Set(['backend:6379', 'pod-router:6379', 'redis-exporter:6379'])],
    ]);
    const sources = [...pods, prometheus, redisExporter, grafana, stranger, otherNs, internet, nodeNet];
    for (const [dst, allowedIn] of wantIn) {
        const target = pod(dst);
        const ports = new Set([...target.ports.values(), 3000, 3001, 3002, 6379, 8080, 9100]);
        for (const src of sources) {
            for (const port of ports) {
                const want = allowedIn.has(`${src.name}:${port}`);
                if (want) continue;
                check(src, target, port, 'TCP', false, `only ${[...allowedIn].join(', ')} may reach ${dst}`);
            }
        }
    }
    const denied = [
        [internet, pod('pod-router'), 3001], [pod('traefik'), pod('pod-router'), 3002],
        [pod('frontend'), internet, 443], [stranger, pod('pod-router'), 3002],
        [pod('redis'), internet, 443], [pod('pod-router'), internet, 443], [pod('backend'), nodeNet, 443],
    ];
    for (const [f, t, port] of denied) check(f, t, port, 'TCP', false);
    return problems;
}

export function githubActionsRbac(objs, ns) {
    const { problems, expect } = collector();
    expect(find(objs, 'ServiceAccount', 'github-actions', ns), 'ServiceAccount github-actions');
    const rb = findAll(objs, 'RoleBinding').find((b) => b.metadata.namespace === ns &&
        (b.subjects || []).some((s) => s.kind === 'ServiceAccount' && s.name === 'github-actions'));
    if (!expect(rb, 'a RoleBinding (namespaced, not cluster-wide) for github-actions')) return problems;
    expect(!findAll(objs, 'ClusterRoleBinding').some((b) => (b.subjects || []).some((s) => s.name === 'github-actions')),
        'no ClusterRoleBinding for github-actions');
    const role = find(objs, rb.roleRef.kind, rb.roleRef.name, rb.roleRef.kind === 'Role' ? ns : undefined);
    if (!expect(role && rb.roleRef.kind === 'Role', 'bound to a namespaced Role')) return problems;
    const can = (group, resource, verb) => role.rules.some((r) => r.apiGroups.includes(group) &&
        r.resources.includes(resource) && r.verbs.includes(verb));
    for (const [g, r] of [['apps', 'deployments'], ['apps', 'statefulsets'], ['', 'services'], ['', 'configmaps']]) {
        for (const v of ['get', 'list', 'patch', 'update']) expect(can(g, r, v), `can ${v} ${r}`);
    }
    expect(can('apps', 'deployments', 'watch'), 'can watch deployments (rollout status)');
    expect(can('apps', 'replicasets', 'list') && can('apps', 'controllerrevisions', 'list'), 'can read rollout history (rollout undo)');
    for (const r of role.rules) {
        expect(!r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*'), `no wildcards (${JSON.stringify(r)})`);
        // It writes hyperstudy-secrets, but never lists or watches Secrets.
        expect(!r.resources.includes('secrets') || (!r.verbs.includes('list') && !r.verbs.includes('watch')), 'no list/watch of Secrets');
        expect(!r.resources.some((x) => x.includes('/exec') || x.includes('/attach')), 'no exec/attach');
        expect((!r.verbs.includes('delete') || eq(r.resources, ['pods'])) && !r.verbs.includes('deletecollection') &&
            !r.verbs.includes('escalate') && !r.verbs.includes('bind'),
        `no delete (but of pods, for the OnDelete rollout)/escalate/bind verbs (${r.resources})`);
    }
    return problems;
}

export function hardening(objs) {
    const { problems, expect } = collector();
    for (const w of workloads(objs)) {
        const spec = podSpecOf(w);
        for (const c of allContainers(spec)) {
            const where = `${idOf(w)} container ${c.name}`;
            expect(hasRequestsAndLimits(c), `${where}: resources requests (cpu, memory) and memory limit`);
            expect(c.readinessProbe || (c.args || [])[0] === 'register', `${where}: readinessProbe`);
            expect(c.livenessProbe || (c.args || [])[0] === 'register', `${where}: livenessProbe`);
            const sc = c.securityContext || {};
            expect(sc.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation false`);
            expect(sc.capabilities && eq(sc.capabilities.drop, ['ALL']), `${where}: drop ALL capabilities`);
            expect(sc.runAsNonRoot === true || (spec.securityContext || {}).runAsNonRoot === true, `${where}: runAsNonRoot`);
            // HyperStudy's own images are deployed by HyperStudy; the deploy
            // workflow keeps the running ones (the guide's `latest` is only
            // the first install's value).
            expect(typeof c.image === 'string' && (!/:latest$/.test(c.image) || /\/(backend|frontend):latest$/.test(c.image)), `${where}: no :latest image`);
        }
        expect((spec.securityContext || {}).seccompProfile, `${idOf(w)}: seccompProfile`);
    }
    return problems;
}

export function namespaces(objs, names) {
    const { problems, expect } = collector();
    for (const n of names) expect(find(objs, 'Namespace', n), `Namespace ${n}`);
    for (const o of objs) {
        const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ClusterIssuer'].includes(o.kind);
        if (!clusterScoped) expect(names.includes(o.metadata.namespace), `${idOf(o)} is outside ${names.join(', ')}`);
    }
    return problems;
}

export function productionImages(objs) {
    const { problems, expect } = collector();
    for (const w of workloads(objs)) {
        for (const c of allContainers(podSpecOf(w))) {
            if (/^(traefik|redis):/.test(c.image)) {
                expect(/:v?\d+\.\d+(\.\d+)?$/.test(c.image), `${idOf(w)}: ${c.image} pinned to a release`);
                continue;
            }
            expect(/^registry\.digitalocean\.com\/[a-z0-9-]+\/[a-z0-9-]+:[A-Za-z0-9_.-]+$/.test(c.image) &&
                (!/:latest$/.test(c.image) || ['backend', 'frontend'].includes(c.name)),
            `${idOf(w)} ${c.name}: ${c.image} is not registry.digitalocean.com/<registry>/<name>:<tag>`);
        }
    }
    // HyperStudy's images are the guide's (kubectl set image statefulset/backend
    // backend=registry.digitalocean.com/hyperstudy/backend:<tag>).
    const b = find(objs, 'StatefulSet', 'backend', 'hyperstudy');
    const f = find(objs, 'Deployment', 'frontend', 'hyperstudy');
    const img = (w, n) => (w && container(w, n) ? container(w, n).image : '');
    expect(/^registry\.digitalocean\.com\/hyperstudy\/backend:/.test(img(b, 'backend')), `backend image ${img(b, 'backend')} is not the guide's registry.digitalocean.com/hyperstudy/backend`);
    expect(/^registry\.digitalocean\.com\/hyperstudy\/frontend:/.test(img(f, 'frontend')), `frontend image ${img(f, 'frontend')} is not the guide's registry.digitalocean.com/hyperstudy/frontend`);
    return problems;
}

export function development(objs) {
    const { problems, expect } = collector();
    for (const o of objs) {
        if (['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ClusterIssuer'].includes(o.kind)) continue;
        expect(o.metadata.namespace === 'hyperstudy-dev', `${idOf(o)} not in hyperstudy-dev`);
    }
    expect(find(objs, 'Namespace', 'hyperstudy-dev') && findAll(objs, 'Namespace').length === 1, 'exactly the Namespace hyperstudy-dev');
    expect(findAll(objs, 'HorizontalPodAutoscaler').length === 0, 'no HPAs (kind/minikube have no metrics-server by default)');
    for (const w of workloads(objs)) {
        expect(w.spec.replicas === 1, `${idOf(w)} replicas ${w.spec.replicas}, want 1`);
        for (const c of allContainers(podSpecOf(w))) {
            const lim = (c.resources && c.resources.limits) || {};
            const mem = String(lim.memory || '');
            expect(/^\d+Mi$/.test(mem) && Number(mem.replace('Mi', '')) <= 512, `${idOf(w)} ${c.name}: memory limit ${mem} should be small (<= 512Mi)`);
        }
        for (const t of w.spec.volumeClaimTemplates || []) {
            expect(!t.spec.storageClassName, `${idOf(w)}: use the cluster's default StorageClass`);
        }
    }
    expect(!findAll(objs, 'PersistentVolumeClaim').some((p) => p.spec.storageClassName === 'do-block-storage'), 'no do-block-storage PVC');
    return problems;
}

// The guide's per-pod Services backend-N (up to the HPA maximum).
export function perPodServices(objs, ns, count) {
    const { problems, expect } = collector();
    for (let i = 0; i < count; i++) {
        const svc = find(objs, 'Service', `backend-${i}`, ns);
        if (!expect(svc, `Service ${ns}/backend-${i} missing`)) continue;
        expect(svc.spec.selector && svc.spec.selector['statefulset.kubernetes.io/pod-name'] === `backend-${i}`, `backend-${i} selects pod backend-${i}`);
        expect(svc.spec.sessionAffinity === 'ClientIP', `backend-${i} sessionAffinity ClientIP`);
        expect(svc.spec.ports.some((p) => p.port === 3000), `backend-${i} port 3000`);
    }
    return problems;
}
