// Checks that hold for every rendered kustomization (ours and
// deploy/monitoring): schema validity, no unknown fields, consistent
// selectors and references.
import { validateObject, unknownFields, hasModel } from './k8s-models.mjs';
import { isCrd, validateCrd, crdUnknownFields } from './traefik.mjs';
import {
    idOf, workloads, podSpecOf, podLabelsOf, allContainers, labelsMatch, selectorLabels,
} from './objects.mjs';
import { selectorMatches } from './netpol.mjs';

// Secrets created out of band (docs/deployment.md, "Secrets"); never in git.
export const EXTERNAL_SECRETS = new Map([
    ['hyperstudy-secrets', 'backend environment of HyperStudy (kubectl create secret)'],
    ['pod-router-secrets', 'pod-router admin token and cookie key (kubectl create secret)'],
    ['docr-pull', 'registry pull secret (doctl registry kubernetes-manifest)'],
    ['grafana-admin', 'Grafana admin password (deploy/monitoring)'],
    ['redis-exporter', 'optional Redis password of redis_exporter (deploy/monitoring)'],
    ['digitalocean-dns', 'DigitalOcean API token of the DNS-01 solver (deploy-infrastructure.yml)'],
]);

// Services that live in another kustomization: namespace/name -> reason.
export const EXTERNAL_SERVICES = new Map([
    ['monitoring/grafana', 'deploy/monitoring'],
]);

const BUILTIN_CLUSTER_ROLES = new Set(['cluster-admin', 'admin', 'edit', 'view']);

export function schemaProblems(objs) {
    const problems = [];
    for (const o of objs) {
        if (isCrd(o)) {
            for (const m of validateCrd(o)) problems.push(`${idOf(o)}: ${m}`);
        }
        if (!hasModel(o.apiVersion, o.kind)) {
            problems.push(`${idOf(o)}: unknown apiVersion/kind ${o.apiVersion} ${o.kind} (no schema)`);
        } else {
            for (const m of validateObject(o)) problems.push(`${idOf(o)}: ${m}`);
        }
    }
    return problems;
}

export function unknownFieldProblems(objs) {
    const problems = [];
    for (const o of objs) {
        const found = hasModel(o.apiVersion, o.kind) ? unknownFields(o) : (isCrd(o) ? crdUnknownFields(o) : []);
        for (const m of found) problems.push(`${idOf(o)} ${m}`);
    }
    return problems;
}

export function selectorProblems(objs) {
    const problems = [];
    for (const w of workloads(objs)) {
        if (w.kind === 'CronJob' || w.kind === 'Job') continue;
        const sel = w.spec.selector;
        const labels = podLabelsOf(w);
        if (!sel || Object.keys(selectorLabels(sel)).length + (sel.matchExpressions || []).length === 0) {
            problems.push(`${idOf(w)}: empty selector`);
        } else if (!selectorMatches(sel, labels)) {
            problems.push(`${idOf(w)}: selector ${JSON.stringify(sel)} does not match template labels ${JSON.stringify(labels)}`);
        }
        if (w.kind === 'StatefulSet') {
            const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name === w.spec.serviceName &&
                o.metadata.namespace === w.metadata.namespace);
            if (w.spec.serviceName && !svc) problems.push(`${idOf(w)}: serviceName ${w.spec.serviceName} not rendered`);
            else if (svc && !labelsMatch(svc.spec.selector, labels)) problems.push(`${idOf(w)}: governing Service ${svc.metadata.name} does not select its pods`);
        }
    }
    return problems;
}

function containerPorts(w) {
    const byName = new Map();
    const numbers = new Set();
    for (const c of allContainers(podSpecOf(w))) {
        for (const p of c.ports || []) {
            numbers.add(p.containerPort);
            if (p.name) byName.set(p.name, p.containerPort);
        }
    }
    return { byName, numbers };
}

export function serviceProblems(objs) {
    const problems = [];
    for (const svc of objs.filter((o) => o.kind === 'Service')) {
        if (svc.spec.type === 'ExternalName') continue;
        const sel = svc.spec.selector;
        if (!sel || Object.keys(sel).length === 0) {
            problems.push(`${idOf(svc)}: no selector`);
            continue;
        }
        // StatefulSet pods also carry statefulset.kubernetes.io/pod-name
        // (<name>-<ordinal>), set by the controller.
        const podName = sel['statefulset.kubernetes.io/pod-name'];
        const labelsFor = (w) => {
            const l = { ...podLabelsOf(w) };
            if (w.kind === 'StatefulSet' && podName !== undefined &&
                new RegExp(`^${w.metadata.name}-\\d+$`).test(podName)) l['statefulset.kubernetes.io/pod-name'] = podName;
            return l;
        };
        const targets = workloads(objs).filter((w) => w.metadata.namespace === svc.metadata.namespace &&
            labelsMatch(sel, labelsFor(w)));
        if (targets.length === 0) {
            problems.push(`${idOf(svc)}: selector ${JSON.stringify(sel)} selects no workload's pods`);
            continue;
        }
        for (const p of svc.spec.ports || []) {
            const tp = p.targetPort === undefined ? p.port : p.targetPort;
            for (const w of targets) {
                const { byName, numbers } = containerPorts(w);
                // A numeric targetPort need not be declared when the pod declares
                // no ports at all (Kubernetes allows it).
                const ok = typeof tp === 'string' ? byName.has(tp) : (numbers.has(tp) || numbers.size === 0);
                if (!ok) problems.push(`${idOf(svc)}: targetPort ${tp} is not a container port of ${idOf(w)}`);
            }
        }
    }
    return problems;
}

// Every name an object refers to exists in `objs` (or `others`, renders of
// other kustomizations) or is on a documented allow-list.
export function referenceProblems(objs, others = []) {
    const problems = [];
    const all = [...objs, ...others];
    const has = (kind, ns, name) => all.some((o) => o.kind === kind && o.metadata.name === name &&
        (ns === null || o.metadata.namespace === ns));
    for (const w of workloads(objs)) {
        const ns = w.metadata.namespace;
        const spec = podSpecOf(w);
        const where = idOf(w);
        const sa = spec.serviceAccountName || spec.serviceAccount;
        if (sa && sa !== 'default' && !has('ServiceAccount', ns, sa)) problems.push(`${where}: ServiceAccount ${sa} missing`);
        const secret = (name, optional, what) => {
            if (optional || has('Secret', ns, name) || EXTERNAL_SECRETS.has(name)) return;
            problems.push(`${where}: Secret ${name} (${what}) neither rendered nor on the external allow-list`);
        };
        const configMap = (name, optional, what) => {
            if (optional || has('ConfigMap', ns, name)) return;
            problems.push(`${where}: ConfigMap ${name} (${what}) missing`);
        };
        for (const s of spec.imagePullSecrets || []) secret(s.name, false, 'imagePullSecrets');
        const claimTemplates = new Set(((w.spec && w.spec.volumeClaimTemplates) || []).map((t) => t.metadata.name));
        for (const v of spec.volumes || []) {
            if (v.secret) secret(v.secret.secretName, v.secret.optional, `volume ${v.name}`);
            if (v.configMap) configMap(v.configMap.name, v.configMap.optional, `volume ${v.name}`);
            if (v.persistentVolumeClaim && !has('PersistentVolumeClaim', ns, v.persistentVolumeClaim.claimName)) {
                problems.push(`${where}: PVC ${v.persistentVolumeClaim.claimName} missing`);
            }
            for (const src of (v.projected && v.projected.sources) || []) {
                if (src.secret) secret(src.secret.name, src.secret.optional, `projected volume ${v.name}`);
                if (src.configMap) configMap(src.configMap.name, src.configMap.optional, `projected volume ${v.name}`);
            }
        }
        for (const c of allContainers(spec)) {
            for (const e of c.envFrom || []) {
                if (e.secretRef) secret(e.secretRef.name, e.secretRef.optional, `envFrom of ${c.name}`);
                if (e.configMapRef) configMap(e.configMapRef.name, e.configMapRef.optional, `envFrom of ${c.name}`);
            }
            for (const e of c.env || []) {
                const vf = e.valueFrom || {};
                if (vf.secretKeyRef) secret(vf.secretKeyRef.name, vf.secretKeyRef.optional, `env ${e.name}`);
                if (vf.configMapKeyRef) configMap(vf.configMapKeyRef.name, vf.configMapKeyRef.optional, `env ${e.name}`);
            }
            const names = new Set([...(spec.volumes || []).map((v) => v.name), ...claimTemplates]);
            for (const m of c.volumeMounts || []) {
                if (!names.has(m.name)) problems.push(`${where}: container ${c.name} mounts unknown volume ${m.name}`);
            }
        }
    }
    for (const hpa of objs.filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
        const t = hpa.spec.scaleTargetRef;
        if (!has(t.kind, hpa.metadata.namespace, t.name)) problems.push(`${idOf(hpa)}: target ${t.kind} ${t.name} missing`);
    }
    for (const pdb of objs.filter((o) => o.kind === 'PodDisruptionBudget')) {
        const sel = selectorLabels(pdb.spec.selector);
        if (!workloads(objs).some((w) => w.metadata.namespace === pdb.metadata.namespace && labelsMatch(sel, podLabelsOf(w)))) {
            problems.push(`${idOf(pdb)}: selects no pods`);
        }
    }
    for (const np of objs.filter((o) => o.kind === 'NetworkPolicy')) {
        const sel = np.spec.podSelector || {};
        if (Object.keys(sel.matchLabels || {}).length === 0 && (sel.matchExpressions || []).length === 0) continue;
        if (!workloads(objs).some((w) => w.metadata.namespace === np.metadata.namespace && selectorMatches(sel, podLabelsOf(w)))) {
            problems.push(`${idOf(np)}: podSelector selects no pods`);
        }
    }
    for (const b of objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
        const r = b.roleRef;
        const ok = r.kind === 'ClusterRole'
            ? has('ClusterRole', null, r.name) || BUILTIN_CLUSTER_ROLES.has(r.name) || r.name.startsWith('system:')
            : has('Role', b.metadata.namespace, r.name);
        if (!ok) problems.push(`${idOf(b)}: roleRef ${r.kind} ${r.name} missing`);
        for (const s of b.subjects || []) {
            if (s.kind === 'ServiceAccount' && s.name !== 'default' && !has('ServiceAccount', s.namespace || b.metadata.namespace, s.name)) {
                problems.push(`${idOf(b)}: subject ServiceAccount ${s.namespace}/${s.name} missing`);
            }
        }
    }
    for (const ir of objs.filter((o) => isCrd(o) && o.kind === 'IngressRoute')) {
        for (const r of ir.spec.routes || []) {
            for (const s of r.services || []) {
                const ns = s.namespace || ir.metadata.namespace;
                const svc = all.find((o) => o.kind === 'Service' && o.metadata.name === s.name && o.metadata.namespace === ns);
                if (!svc) {
                    if (!EXTERNAL_SERVICES.has(`${ns}/${s.name}`)) problems.push(`${idOf(ir)}: Service ${ns}/${s.name} missing`);
                    continue;
                }
                if (!svc.spec.ports.some((p) => p.port === s.port || p.name === s.port)) {
                    problems.push(`${idOf(ir)}: Service ${ns}/${s.name} has no port ${s.port}`);
                }
            }
        }
    }
    return problems;
}

export function noSecretObjects(objs) {
    return objs.filter((o) => o.kind === 'Secret').map((o) => `${idOf(o)}: Secrets must not be committed (create them out of band)`);
}
