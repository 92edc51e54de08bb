'use strict';
// A small Kubernetes for the simulation: one StatefulSet `backend` whose pods
// are real processes (examples/backend + the real `pod-router register`
// sidecar), the HorizontalPodAutoscaler algorithm of kube-controller-manager
// (tolerance, stabilization windows, scale-up/down policies, max over
// metrics, no scale-down while a metric is missing), and the handful of
// kubectl verbs deploy/scripts/rollout-backend.sh uses, served over HTTP to
// the kubectl shim (tests/sim/bin/kubectl).

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawnLogged, signal } = require('./procs');

const HOST = '127.0.0.1';

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function httpGet(url, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', () => resolve({ status: 0, text: '' }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, text: '' }));
  });
}

// ---------------------------------------------------------------- jsonpath

// The subset of kubectl's jsonpath the rollout script uses:
// {.a.b-c}, {.items[0].x}, {.status.conditions[?(@.type=="Ready")].status}.
function jsonpath(obj, template) {
  return template.replace(/\{([^}]*)\}/g, (_, expr) => {
    let cur = [obj];
    const re = /\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_]+)=="([^"]*)"\)\]|\[\*\]/g;
    let m;
    while ((m = re.exec(expr))) {
      const next = [];
      for (const c of cur) {
        if (c === undefined || c === null) continue;
        if (m[1] !== undefined) next.push(c[m[1]]);
        else if (m[2] !== undefined) next.push(Array.isArray(c) ? c[Number(m[2])] : undefined);
        else if (m[3] !== undefined) {
          if (Array.isArray(c)) for (const e of c) if (e && String(e[m[3]]) === m[4]) next.push(e);
        } else if (Array.isArray(c)) next.push(...c);
      }
      cur = next;
    }
    return cur.filter((v) => v !== undefined && v !== null).map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(' ');
  });
}

// ---------------------------------------------------------------- HPA

// kube-controller-manager's replica calculator and behaviour normalisation
// (pkg/controller/podautoscaler), for Resource Utilization and External
// AverageValue metrics.
class Hpa {
  constructor(spec) {
    // spec: { minReplicas, maxReplicas, metrics: [{ name, kind: 'resource'|'external', target }],
    //         behavior: { scaleUp: {window, policies:[{pods, period}]}, scaleDown: {...} } }
    this.spec = spec;
    this.tolerance = 0.1;
    this.recommendations = []; // { at, replicas }
    this.events = []; // { at, delta } scale events made by the HPA
    this.last = null;
  }

  // metrics: name -> value (utilization fraction per ready pod average for
  // resources, the external metric's value), or undefined when unavailable.
  compute(now, current, ready, metrics) {
    const s = this.spec;
    let proposal = 0;
    let invalid = 0;
    const per = {};
    for (const m of s.metrics) {
      const v = metrics[m.name];
      if (v === undefined || Number.isNaN(v)) {
        invalid++;
        continue;
      }
      let r;
      if (m.kind === 'resource') {
        const ratio = v / m.target;
        r = Math.abs(1 - ratio) <= this.tolerance ? current : Math.ceil(ratio * ready);
      } else {
        const ratio = v / (m.target * current);
        r = Math.abs(1 - ratio) <= this.tolerance ? current : Math.ceil(v / m.target);
      }
      per[m.name] = r;
      proposal = Math.max(proposal, r);
    }
    // A missing metric forbids scaling down (it may be the one that needs the pods).
    if (invalid > 0 && proposal < current) proposal = current;
    if (invalid === s.metrics.length) proposal = current;
    let desired = Math.min(s.maxReplicas, Math.max(s.minReplicas, proposal));

    // Stabilization: up = min over the scale-up window, down = max over the scale-down window.
    this.recommendations.push({ at: now, replicas: desired });
    const keep = Math.max(s.behavior.scaleUp.window, s.behavior.scaleDown.window) * 1000;
    this.recommendations = this.recommendations.filter((r) => r.at > now - keep);
    let up = desired;
    let down = desired;
    for (const r of this.recommendations) {
      if (r.at > now - s.behavior.scaleUp.window * 1000) up = Math.min(up, r.replicas);
      if (r.at > now - s.behavior.scaleDown.window * 1000) down = Math.max(down, r.replicas);
    }
    let rec = current;
    if (rec < up) rec = up;
    if (rec > down) rec = down;

    // Rate policies (selectPolicy Max for up: the most permissive; Min for down: one pod).
    if (rec > current) {
      let limit = 0;
      for (const p of s.behavior.scaleUp.policies) {
        const added = this.events.filter((e) => e.delta > 0 && e.at > now - p.period * 1000).reduce((a, e) => a + e.delta, 0);
        limit = Math.max(limit, current - added + p.pods);
      }
      rec = Math.min(rec, limit, s.maxReplicas);
    } else if (rec < current) {
      let limit = 0;
      for (const p of s.behavior.scaleDown.policies) {
        const removed = this.events.filter((e) => e.delta < 0 && e.at > now - p.period * 1000).reduce((a, e) => a - e.delta, 0);
        limit = Math.max(limit, current + removed - p.pods);
      }
      rec = Math.max(rec, limit, s.minReplicas);
    }
    if (rec !== current) this.events.push({ at: now, delta: rec - current });
    this.events = this.events.filter((e) => e.at > now - 600000);
    this.last = { desired, per, rec };
    return rec;
  }
}

// ---------------------------------------------------------------- StatefulSet

class StatefulSet {
  // opts: { name, logDir, backendScript, routerBin, adminUrls, capacity:{rooms,participants},
  //         ports: [port per ordinal], drainGraceMs, heartbeatMs, healthUrl (bool) }
  constructor(opts) {
    this.o = opts;
    this.replicas = opts.replicas;
    this.updateStrategy = opts.updateStrategy || 'OnDelete';
    this.currentRevision = 'backend-rev1';
    this.updateRevision = 'backend-rev1';
    this.pods = new Map(); // ordinal -> pod
    this.podSeconds = 0;
    this.created = 0;
    this.deleted = 0;
    this.lastTick = null;
    this.timer = null;
    this.rolling = null;
  }

  name(i) {
    return `${this.o.name}-${i}`;
  }

  start() {
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.reconcile(), 100);
    this.reconcile();
  }

  existing() {
    return this.pods.size;
  }

  readyCount() {
    let n = 0;
    for (const p of this.pods.values()) if (p.ready && !p.terminating) n++;
    return n;
  }

  reconcile() {
    const now = Date.now();
    this.podSeconds += (this.pods.size * (now - this.lastTick)) / 1000;
    this.lastTick = now;
    // podManagementPolicy Parallel: create every missing ordinal, remove the excess.
    for (let i = 0; i < this.replicas; i++) if (!this.pods.has(i)) this.createPod(i);
    for (const [i, p] of this.pods) if (i >= this.replicas && !p.terminating) this.deletePod(i);
  }

  createPod(i) {
    const name = this.name(i);
    const port = this.o.ports[i];
    const log = path.join(this.o.logDir, `${name}.log`);
    const pod = {
      ordinal: i, name, port, revision: this.updateRevision, ready: false, terminating: false,
      createdAt: Date.now(), uid: `${name}-${++this.created}`,
    };
    fs.appendFileSync(log, `# ${new Date().toISOString()} create ${name} ${pod.revision}\n`);
    pod.backend = spawnLogged(process.execPath, [this.o.backendScript], {
      env: { ...this.o.baseEnv, PORT: String(port), HOST, POD_NAME: name },
      logPath: log,
    });
    const sidecarArgs = [
      'register', '--admin-url', this.o.adminUrls[i % this.o.adminUrls.length], '--name', name,
      '--address', `${HOST}:${port}`, '--capacity-rooms', String(this.o.capacity.rooms),
      '--capacity-participants', String(this.o.capacity.participants), '--interval', `${this.o.heartbeatMs}ms`,
      '--drain-grace', `${this.o.drainGraceMs}ms`, '--log-level', 'warn',
    ];
    const startSidecar = () => {
      if (pod.terminating) return;
      pod.sidecar = spawnLogged(this.o.routerBin, sidecarArgs, { env: this.o.baseEnv, logPath: log });
    };
    if (this.o.healthUrl) {
      sidecarArgs.push('--health-url', `http://${HOST}:${port}/healthz`);
      startSidecar();
    }
    // Readiness probe: GET /healthz. Without --health-url in the sidecar, the
    // sidecar starts once the probe passes (what --health-url does).
    const probe = async () => {
      while (!pod.terminating && !pod.ready) {
        const r = await httpGet(`http://${HOST}:${port}/healthz`, 500);
        if (r.status === 200) {
          pod.ready = true;
          pod.readyAt = Date.now();
          if (!this.o.healthUrl) startSidecar();
          return;
        }
        if (pod.backend.exitInfo) return;
        await sleep(100);
      }
    };
    probe();
    this.pods.set(i, pod);
    return pod;
  }

  // Pod deletion as the kubelet does it: the sidecar gets SIGTERM at once (it
  // drains, waits --drain-grace, unregisters, exits), the backend's preStop
  // sleeps a little longer than that, then the backend gets SIGTERM.
  deletePod(i) {
    const pod = this.pods.get(i);
    if (!pod || pod.terminating) return;
    pod.terminating = true;
    pod.ready = false;
    this.deleted++;
    signal(pod.sidecar, 'SIGTERM');
    const preStop = this.o.drainGraceMs + 200;
    setTimeout(() => signal(pod.backend, 'SIGTERM'), preStop);
    const kill = setTimeout(() => {
      signal(pod.sidecar, 'SIGKILL');
      signal(pod.backend, 'SIGKILL');
    }, preStop + 3000);
    Promise.all([pod.backend.exited, pod.sidecar ? pod.sidecar.exited : Promise.resolve()]).then(() => {
      clearTimeout(kill);
      if (this.pods.get(i) === pod) this.pods.delete(i);
      this.reconcile();
    });
  }

  // `kubectl apply` of a new pod template.
  newRevision(rev) {
    this.updateRevision = rev;
    if (this.updateStrategy === 'RollingUpdate') this.rollingUpdate();
  }

  // The StatefulSet controller's RollingUpdate: highest ordinal first, the
  // next one once the replacement is Running and Ready. Knows nothing of rooms.
  async rollingUpdate() {
    if (this.rolling) return this.rolling;
    this.rolling = (async () => {
      for (;;) {
        const old = [...this.pods.values()].filter((p) => p.revision !== this.updateRevision && p.ordinal < this.replicas)
          .sort((a, b) => b.ordinal - a.ordinal);
        if (old.length === 0) break;
        const i = old[0].ordinal;
        this.deletePod(i);
        for (;;) {
          const p = this.pods.get(i);
          if (p && !p.terminating && p.revision === this.updateRevision && p.ready) break;
          if (i >= this.replicas) break;
          await sleep(100);
        }
      }
      this.currentRevision = this.updateRevision;
      this.rolling = null;
    })();
    return this.rolling;
  }

  async stopAll() {
    clearInterval(this.timer);
    this.replicas = 0;
    const waits = [];
    for (const p of this.pods.values()) {
      signal(p.sidecar, 'SIGKILL');
      signal(p.backend, 'SIGKILL');
      waits.push(p.backend.exited, p.sidecar ? p.sidecar.exited : null);
    }
    await Promise.all(waits.filter(Boolean));
    this.pods.clear();
  }

  // Kubernetes-shaped objects for kubectl.
  object() {
    return {
      apiVersion: 'apps/v1', kind: 'StatefulSet',
      metadata: { name: this.o.name, namespace: 'hyperstudy' },
      spec: { replicas: this.replicas, updateStrategy: { type: this.updateStrategy } },
      status: {
        replicas: this.pods.size, readyReplicas: this.readyCount(),
        currentRevision: this.currentRevision, updateRevision: this.updateRevision,
      },
    };
  }

  podObject(i) {
    const p = this.pods.get(i);
    if (!p) return null;
    return {
      apiVersion: 'v1', kind: 'Pod',
      metadata: {
        name: p.name, namespace: 'hyperstudy', uid: p.uid,
        labels: { 'app.kubernetes.io/name': this.o.name, 'controller-revision-hash': p.revision },
        deletionTimestamp: p.terminating ? new Date().toISOString() : undefined,
      },
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: p.ready && !p.terminating ? 'True' : 'False' }],
      },
    };
  }
}

// ---------------------------------------------------------------- kubectl API

// Serves POST /kubectl (NUL-separated argv) for the shim (tests/sim/bin/kubectl).
class KubectlApi {
  constructor({ sts, hpa, scaledObject, routerPods, log }) {
    this.sts = sts;
    this.hpa = hpa;
    this.scaledObject = scaledObject; // { name, minReplicaCount } or null
    this.routerPods = routerPods; // names
    this.log = log;
    this.calls = 0;
  }

  async listen() {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const argv = Buffer.concat(chunks).toString('utf8').split('\0');
        if (argv[argv.length - 1] === '') argv.pop();
        let out;
        try {
          out = this.run(argv);
        } catch (e) {
          out = { code: 1, stdout: '', stderr: `emulator: ${e.message}\n` };
        }
        this.calls++;
        if (this.log) this.log(`kubectl ${argv.join(' ')} -> ${out.code}`);
        const body = `${out.code}\n${Buffer.from(out.stderr).toString('base64')}\n${out.stdout}.`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    await new Promise((r) => this.server.listen(0, HOST, r));
    this.url = `http://${HOST}:${this.server.address().port}`;
    return this.url;
  }

  close() {
    if (this.server) this.server.close();
  }

  run(argv) {
    const args = [];
    const opt = {};
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '-n' || a === '--namespace') opt.ns = argv[++i];
      else if (a === '-o') opt.o = argv[++i];
      else if (a.startsWith('-o=') || a.startsWith('--output=')) opt.o = a.slice(a.indexOf('=') + 1);
      else if (a === '-l' || a === '--selector') opt.l = argv[++i];
      else if (a.startsWith('--field-selector')) opt.fs = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      else if (a === '--type') opt.type = argv[++i];
      else if (a === '-p' || a === '--patch') opt.p = argv[++i];
      else if (a.startsWith('--replicas=')) opt.replicas = Number(a.slice(11));
      else if (a.startsWith('--wait')) opt.wait = a;
      else args.push(a);
    }
    if (opt.ns && opt.ns !== 'hyperstudy') return { code: 1, stdout: '', stderr: `namespace ${opt.ns} not found\n` };
    const [verb, kindRaw, name] = args;
    const kind = (kindRaw || '').replace(/^(statefulsets?|sts)(\.apps)?$/, 'statefulset').replace(/^pods?$/, 'pod')
      .replace(/^(scaledobjects?|so)(\.keda\.sh)?$/, 'scaledobject').replace(/^(hpa|horizontalpodautoscalers?)$/, 'hpa');
    const notFound = () => ({ code: 1, stdout: '', stderr: `Error from server (NotFound): ${kindRaw} "${name}" not found\n` });
    const render = (obj) => {
      if (!opt.o) return `${obj.metadata ? obj.metadata.name : ''}\n`;
      if (opt.o === 'json') return JSON.stringify(obj);
      if (opt.o.startsWith('jsonpath=')) return jsonpath(obj, opt.o.slice(9));
      throw new Error(`output ${opt.o} not emulated`);
    };
    const sts = this.sts;
    if (verb === 'get') {
      if (kind === 'statefulset') return name === sts.o.name ? { code: 0, stdout: render(sts.object()), stderr: '' } : notFound();
      if (kind === 'pod' && name) {
        const m = new RegExp(`^${sts.o.name}-(\\d+)$`).exec(name);
        if (this.routerPods.includes(name)) return { code: 0, stdout: render({ metadata: { name }, status: { phase: 'Running' } }), stderr: '' };
        const o = m ? sts.podObject(Number(m[1])) : null;
        return o ? { code: 0, stdout: render(o), stderr: '' } : notFound();
      }
      if (kind === 'pod') {
        let items;
        if (opt.l === 'app.kubernetes.io/name=pod-router') items = this.routerPods.map((n) => ({ metadata: { name: n }, status: { phase: 'Running' } }));
        else if (opt.l === `app.kubernetes.io/name=${sts.o.name}`) items = [...sts.pods.keys()].sort((a, b) => a - b).map((i) => sts.podObject(i));
        else items = [];
        return { code: 0, stdout: render({ apiVersion: 'v1', kind: 'List', items }), stderr: '' };
      }
      if (kind === 'scaledobject') {
        const so = this.scaledObject;
        if (!so || so.name !== name) return notFound();
        return { code: 0, stdout: render({ metadata: { name }, spec: { minReplicaCount: this.hpa.spec.minReplicas, maxReplicaCount: this.hpa.spec.maxReplicas } }), stderr: '' };
      }
      if (kind === 'hpa') {
        if (!this.hpa || this.hpa.name !== name) return notFound();
        return { code: 0, stdout: render({ metadata: { name }, spec: { minReplicas: this.hpa.spec.minReplicas, maxReplicas: this.hpa.spec.maxReplicas } }), stderr: '' };
      }
      return { code: 1, stdout: '', stderr: `kind ${kindRaw} not emulated\n` };
    }
    if (verb === 'scale' && kind === 'statefulset' && name === sts.o.name && Number.isInteger(opt.replicas)) {
      sts.replicas = opt.replicas;
      sts.reconcile();
      return { code: 0, stdout: `statefulset.apps/${name} scaled\n`, stderr: '' };
    }
    if (verb === 'patch' && (kind === 'scaledobject' || kind === 'hpa') && opt.type === 'merge') {
      const p = JSON.parse(opt.p);
      if (kind === 'scaledobject' && (!this.scaledObject || this.scaledObject.name !== name)) return notFound();
      if (kind === 'hpa' && (!this.hpa || this.hpa.name !== name)) return notFound();
      const min = kind === 'scaledobject' ? p.spec.minReplicaCount : p.spec.minReplicas;
      if (!Number.isInteger(min)) return { code: 1, stdout: '', stderr: 'patch without an integer floor\n' };
      this.hpa.spec.minReplicas = min;
      return { code: 0, stdout: `${kind}/${name} patched\n`, stderr: '' };
    }
    if (verb === 'delete' && kind === 'pod') {
      const m = new RegExp(`^${sts.o.name}-(\\d+)$`).exec(name || '');
      if (!m || !sts.pods.has(Number(m[1]))) return notFound();
      sts.deletePod(Number(m[1]));
      return { code: 0, stdout: `pod "${name}" deleted\n`, stderr: '' };
    }
    return { code: 1, stdout: '', stderr: `kubectl ${argv.join(' ')}: not emulated\n` };
  }
}

module.exports = { Hpa, StatefulSet, KubectlApi, jsonpath, httpGet, sleep };
