// Helpers over a list of rendered Kubernetes objects.
import fs from 'node:fs';
import YAML from 'yaml';

export function loadRender(file) {
    const text = fs.readFileSync(file, 'utf8');
    const docs = YAML.parseAllDocuments(text);
    const out = [];
    for (const d of docs) {
        if (d.errors && d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
        const js = d.toJS();
        if (js !== null && js !== undefined) out.push(js);
    }
    return out;
}

export const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

export function idOf(o) {
    const ns = o.metadata && o.metadata.namespace ? `${o.metadata.namespace}/` : '';
    return `${o.kind} ${ns}${o.metadata ? o.metadata.name : '?'}`;
}

export function find(objs, kind, name, namespace) {
    return objs.find((o) => o.kind === kind && o.metadata.name === name &&
        (namespace === undefined || o.metadata.namespace === namespace));
}

export function findAll(objs, kind) {
    return objs.filter((o) => o.kind === kind);
}

export function podSpecOf(o) {
    if (o.kind === 'CronJob') return o.spec.jobTemplate.spec.template.spec;
    if (WORKLOAD_KINDS.has(o.kind)) return o.spec.template.spec;
    if (o.kind === 'Pod') return o.spec;
    return null;
}

export function podLabelsOf(o) {
    if (o.kind === 'CronJob') return o.spec.jobTemplate.spec.template.metadata.labels || {};
    if (WORKLOAD_KINDS.has(o.kind)) return (o.spec.template.metadata || {}).labels || {};
    return (o.metadata.labels || {});
}

export function workloads(objs) {
    return objs.filter((o) => WORKLOAD_KINDS.has(o.kind) || o.kind === 'CronJob');
}

export function allContainers(spec) {
    return [...(spec.initContainers || []), ...(spec.containers || [])];
}

export function container(o, name) {
    const spec = podSpecOf(o);
    return spec ? allContainers(spec).find((c) => c.name === name) : undefined;
}

// Pods a workload would create, for the network policy evaluator.
export function podsOf(objs) {
    return workloads(objs).map((w) => {
        const ports = new Map();
        for (const c of allContainers(podSpecOf(w))) {
            for (const p of c.ports || []) if (p.name) ports.set(p.name, p.containerPort);
        }
        return { name: w.metadata.name, namespace: w.metadata.namespace, labels: podLabelsOf(w), ports };
    });
}

// "90s" / "2m" / "1h" / "1500ms" -> seconds.
export function durationSeconds(s) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(s));
    if (!m) return NaN;
    const n = Number(m[1]);
    return { ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2]];
}

// Value of `--flag value` or `--flag=value` in an argument list.
export function argValue(args, flag) {
    if (!Array.isArray(args)) return undefined;
    for (let i = 0; i < args.length; i++) {
        if (args[i] === flag) return args[i + 1];
        if (typeof args[i] === 'string' && args[i].startsWith(`${flag}=`)) return args[i].slice(flag.length + 1);
    }
    return undefined;
}

// Seconds a preStop hook of the form `sleep N` waits (0 when none).
export function preStopSleep(c) {
    const h = c && c.lifecycle && c.lifecycle.preStop;
    if (!h) return 0;
    if (h.sleep && Number.isInteger(h.sleep.seconds)) return h.sleep.seconds;
    const cmd = h.exec && h.exec.command ? h.exec.command.join(' ') : '';
    const m = /sleep\s+(\d+)/.exec(cmd);
    return m ? Number(m[1]) : 0;
}

export function selectorLabels(sel) {
    return (sel && sel.matchLabels) || {};
}

export function labelsMatch(selector, labels) {
    const entries = Object.entries(selector || {});
    return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}
