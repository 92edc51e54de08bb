// KEDA objects (keda.sh/v1alpha1) in the rendered manifests:
//  - validateKeda(): schema validation with the @kubernetes-models/keda model
//    classes (generated from KEDA's CRDs);
//  - kedaUnknownFields(): the same field walk as k8s-models.mjs' unknownFields()
//    over the model's TypeScript declaration (the CRD schemas do not reject
//    unknown keys: KEDA would silently ignore a typo such as `minReplicas`);
//  - kedaHpa(): the autoscaling/v2 HorizontalPodAutoscaler the KEDA operator
//    creates from a ScaledObject, so the checks written for HPAs (and the
//    kubernetes-models schema of autoscaling/v2) see what the cluster runs;
//  - expandKeda(): a render with every ScaledObject replaced by that HPA.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { walkFields } from './k8s-models.mjs';

const require = createRequire(import.meta.url);
const KEDA_DIR = path.dirname(require.resolve('@kubernetes-models/keda/package.json'));

export function isKeda(o) {
    return Boolean(o) && typeof o.apiVersion === 'string' && o.apiVersion.startsWith('keda.sh/');
}

function modelPath(o, ext) {
    if (!isKeda(o) || typeof o.kind !== 'string' || !/^[A-Za-z]+$/.test(o.kind) || o.apiVersion.includes('..')) return null;
    const p = path.join(KEDA_DIR, o.apiVersion, `${o.kind}${ext}`);
    return fs.existsSync(p) ? p : null;
}

export function validateKeda(o) {
    const js = modelPath(o, '.js');
    if (!js) return [`no @kubernetes-models/keda class for ${o.apiVersion} ${o.kind}`];
    const Model = require(js)[o.kind];
    try {
        new Model(o).validate();
        return [];
    } catch (e) {
        return Array.isArray(e.details) && e.details.length
            ? e.details.map((d) => `${d.instancePath || '/'} ${d.message}${d.params ? ' ' + JSON.stringify(d.params) : ''}`)
            : [String(e.message || e)];
    }
}

export function kedaUnknownFields(o) {
    const dts = modelPath(o, '.d.ts');
    if (!dts) return [`no field list for ${o.apiVersion} ${o.kind}`];
    const out = [];
    walkFields(o, { kind: 'ref', file: dts }, '', out);
    return out;
}

const RESOURCE_TRIGGERS = new Set(['cpu', 'memory']);

// The HPA KEDA (>= 2.10) generates for a ScaledObject.
export function kedaHpa(so) {
    const s = so.spec || {};
    const hpaCfg = (s.advanced && s.advanced.horizontalPodAutoscalerConfig) || {};
    const ref = s.scaleTargetRef || {};
    const metrics = (s.triggers || []).map((t, i) => {
        const md = t.metadata || {};
        if (RESOURCE_TRIGGERS.has(t.type)) {
            const type = t.metricType || md.type || 'Utilization';
            const target = type === 'Utilization'
                ? { type, averageUtilization: Number(md.value) }
                : { type, averageValue: md.value };
            return { type: 'Resource', resource: { name: t.type, target } };
        }
        const type = t.metricType || 'AverageValue';
        const value = md.threshold !== undefined ? md.threshold : md.targetValue;
        const target = type === 'Value' ? { type, value } : { type, averageValue: value };
        return {
            type: 'External',
            external: {
                metric: { name: `s${i}-${t.type}`, selector: { matchLabels: { 'scaledobject.keda.sh/name': so.metadata.name } } },
                target,
            },
        };
    });
    const hpa = {
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: {
            name: hpaCfg.name || `keda-hpa-${so.metadata.name}`,
            namespace: so.metadata.namespace,
            labels: { ...(so.metadata.labels || {}), 'app.kubernetes.io/managed-by': 'keda-operator', 'scaledobject.keda.sh/name': so.metadata.name },
        },
        spec: {
            scaleTargetRef: { apiVersion: ref.apiVersion || 'apps/v1', kind: ref.kind || 'Deployment', name: ref.name },
            minReplicas: Math.max(1, s.minReplicaCount === undefined ? 0 : s.minReplicaCount),
            maxReplicas: s.maxReplicaCount === undefined ? 100 : s.maxReplicaCount,
            metrics,
        },
    };
    if (hpaCfg.behavior) hpa.spec.behavior = hpaCfg.behavior;
    return hpa;
}

export function expandKeda(objs) {
    return objs.map((o) => (isKeda(o) && o.kind === 'ScaledObject' ? kedaHpa(o) : o))
        .filter((o) => !isKeda(o) || o.kind === 'ScaledObject');
}
