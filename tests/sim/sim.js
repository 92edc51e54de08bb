'use strict';
// Room-aware scaling simulation (issue 10, docs/scaling.md).
//
// Runs the real router (two replicas on a real redis-server), real backend
// pods (examples/backend + the `pod-router register` sidecar) started and
// stopped by ordinal by a StatefulSet/HPA emulator (lib/emulator.js), and
// real socket.io-client participants, twice on the same random workload:
//
//   room-aware  --placement pack, HPA on podrouter_backend_desired_replicas
//               (AverageValue 1) + CPU 60 % + memory 70 %, scale-down one pod
//               at a time, window >= --room-active, backend OnDelete and one
//               rollout by deploy/scripts/rollout-backend.sh (kubectl shim);
//   baseline    the guide: --placement least-loaded, HPA on CPU 60 % + memory
//               70 % only, RollingUpdate rollout by the StatefulSet controller.
//
// Time is compressed 100x (2 min of --room-active is 1.2 s, an HPA window of
// 300 s is 3 s); room durations are seconds instead of minutes.
// Environment: SIM_LONG=1 (longer workload), SIM_NO_ROLLOUT=1 (control run), SIM_SEED, SIM_TRANSPORT
// (websocket, the default, or polling), SIM_ONLY (room-aware, baseline or
// rollout-timeout: one part, for debugging; the checks of the others fail), POD_ROUTER_BIN,
// SIM_OUT (default test-output/sim). Prints figures and ends with
// "N passed, N failed".

const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');
const { spawnSync } = require('node:child_process');
const { spawnLogged, stop, signal } = require('./lib/procs');
const { Hpa, StatefulSet, KubectlApi, httpGet, sleep } = require('./lib/emulator');
const { RedisServer } = require('../e2e/lib/redis');
const { freePort } = require('../e2e/lib/cluster');

const REPO = path.resolve(__dirname, '..', '..');
const { io } = createRequire(path.join(REPO, 'tests', 'e2e', 'package.json'))('socket.io-client');
const ROUTER_BIN = path.resolve(process.env.POD_ROUTER_BIN || path.join(REPO, 'build', 'src', 'pod-router'));
const BACKEND = path.join(REPO, 'examples', 'backend', 'server.js');
const OUT = path.resolve(process.env.SIM_OUT || path.join(REPO, 'test-output', 'sim'));
const LONG = process.env.SIM_LONG === '1';
// SIM_NO_ROLLOUT=1: no backend rollout (a control run: what pack + desired replicas cost on
// this workload without one; the rollout checks then fail).
const NO_ROLLOUT = process.env.SIM_NO_ROLLOUT === '1';
const SEED = Number(process.env.SIM_SEED || 20261201);
const HOST = '127.0.0.1';
// Participants' Engine.IO transport: websocket (what browsers end up on; room
// activity is then tunnel bytes) or polling (every message is a request).
const TRANSPORT = process.env.SIM_TRANSPORT === 'polling' ? 'polling' : 'websocket';

// ---------------------------------------------------------------- parameters

const SCALE = 100; // real seconds per simulated second for the Kubernetes/router timers
const P = {
  capacity: { rooms: 8, participants: 40 },
  u: 0.75,
  headroom: 1,
  minReplicas: 2,
  maxReplicas: LONG ? 10 : 8,
  roomActiveMs: 120000 / SCALE, // --room-active 2m
  drainGraceMs: 60000 / SCALE, // sidecar --drain-grace 60s
  heartbeatMs: 500,
  podTtl: '6s', // 12 heartbeats: a Node backend stalled for a second or two on a loaded 2-core CI machine (one failed --health-url check stops its sidecar's heartbeats) must not be marked down
  syncMs: 200, // HPA sync period (15 s in Kubernetes, 0.15 s compressed; scrape and KEDA polling alike)
  msgEveryMs: 400, // participant traffic (an experiment keeps its room active)
  // Workload: arrivals over `arrivalS` seconds, durations uniform in [dMin, dMax].
  arrivalS: LONG ? 180 : 40,
  dMin: LONG ? 6 : 8,
  dMax: LONG ? 54 : 30,
  rolloutAt: LONG ? 80 : 18,
};
// rollout-backend.sh --settle (10 s in production): a drained pod must stay empty this long
// before it is deleted. Not compressed 100x like the other timers, because what it waits for
// is not fully: the router's housekeeping tick (--room-active / 120, at least 200 ms: a second
// router replica sees a room's last activity up to one tick later) and a new room's second
// request.
const ROLLOUT_SETTLE = '2s';
// rollout-backend.sh --trend-window (10 min in production), compressed like the other timers:
// drain ahead reserves room for the active load's rise over it.
const ROLLOUT_TREND = '6s';
// rollout-backend.sh --peak-wait (1 h in production), compressed.
const ROLLOUT_PEAK_WAIT = '36s';
// Room arrival rate (rooms/s) over time: a ramp to a peak, then a trough.
function lambda(t) {
  const T = P.arrivalS;
  const peak = LONG ? 0.8 : 1.2;
  const low = 0.25;
  const x = t / T;
  if (x < 0.15) return low + (peak - low) * (x / 0.15) * 0.5;
  if (x < 0.3) return low + (peak - low) * (0.5 + 0.5 * (x - 0.15) / 0.15);
  if (x < 0.5) return peak;
  if (x < 0.7) return peak - (peak - low) * (x - 0.5) / 0.2;
  return low;
}

// Behaviour of the two HPAs, compressed SCALE times.
const ROOM_AWARE_HPA = {
  scaleUp: { window: 0, policies: [{ pods: 2, period: 60 / SCALE }] },
  scaleDown: { window: 150 / SCALE, policies: [{ pods: 1, period: 60 / SCALE }] },
};
const GUIDE_HPA = {
  scaleUp: { window: 60 / SCALE, policies: [{ pods: 2, period: 60 / SCALE }] },
  scaleDown: { window: 600 / SCALE, policies: [{ pods: 1, period: 120 / SCALE }] },
};
// Synthesised resource signals of a backend pod (of its request): CPU 5 %
// idle + 1.83 % per connected participant (60 % at 30 participants, the
// pack target of 6 rooms x 5), memory 30 % + 1 % per participant.
const cpuOf = (participants) => 0.05 + 0.0183 * participants;
const memOf = (participants) => 0.3 + 0.01 * participants;

// ---------------------------------------------------------------- workload

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Non-homogeneous Poisson arrivals by thinning.
function schedule(seed) {
  const rnd = mulberry32(seed);
  const lmax = 3;
  const rooms = [];
  let t = 0;
  for (;;) {
    t += -Math.log(1 - rnd()) / lmax;
    if (t >= P.arrivalS) break;
    if (rnd() > lambda(t) / lmax) continue;
    const duration = P.dMin + (P.dMax - P.dMin) * rnd();
    const n = 2 + Math.floor(rnd() * 7); // 2..8
    const joins = Array.from({ length: n }, () => rnd() * 0.5);
    rooms.push({ id: `room_sim${rooms.length}`, start: t, duration, n, joins });
  }
  return rooms;
}

// ---------------------------------------------------------------- one run

class Run {
  constructor(mode, rooms) {
    this.mode = mode; // 'room-aware' | 'baseline'
    this.aware = mode !== 'baseline';
    this.rooms = rooms.map((r) => ({ ...r, participants: [], interrupted: false, pods: new Set(), rejected: 0 }));
    this.dir = path.join(OUT, mode);
    this.samples = [];
    this.events = [];
    this.sockets = new Set();
  }

  log(msg) {
    const line = `[${this.mode} ${this.t().toFixed(1)}s] ${msg}`;
    this.events.push(line);
    fs.appendFileSync(path.join(this.dir, 'events.log'), `${line}\n`);
  }

  t() {
    return this.t0 ? (Date.now() - this.t0) / 1000 : 0;
  }

  async start() {
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.rmSync(path.join(OUT, `${this.mode}-pods.log`), { force: true });
    fs.mkdirSync(this.dir, { recursive: true });
    this.redis = new RedisServer(`sim-${this.mode}`);
    this.redis.logPath = path.join(this.dir, 'redis.log');
    await this.redis.start();
    this.routers = [];
    for (const r of ['a', 'b']) {
      const pub = await freePort();
      const adm = await freePort();
      const args = ['serve', '--listen', `${HOST}:${pub}`, '--admin-listen', `${HOST}:${adm}`,
        '--store', `redis://${HOST}:${this.redis.port}`, '--threads', '1', '--log-level', 'warn',
        '--pod-ttl', P.podTtl, '--room-active', `${P.roomActiveMs}ms`,
        '--placement', this.aware ? 'pack' : 'least-loaded', '--pack-utilization', String(P.u),
        '--min-replicas', String(P.minReplicas), '--max-replicas', String(P.maxReplicas),
        '--headroom-pods', String(P.headroom)];
      const log = path.join(this.dir, `router-${r}.log`);
      fs.writeFileSync(log, `# ${ROUTER_BIN} ${args.join(' ')}\n`);
      const proc = spawnLogged(ROUTER_BIN, args, { logPath: log });
      this.routers.push({ name: `pod-router-${r}`, pub, adm, proc, url: `http://${HOST}:${pub}`, admin: `http://${HOST}:${adm}` });
    }
    for (const r of this.routers) {
      for (let i = 0; ; i++) {
        if (r.proc.exitInfo) throw new Error(`router ${r.name} exited: ${JSON.stringify(r.proc.exitInfo)}`);
        if ((await httpGet(`${r.admin}/healthz`)).status === 200) break;
        if (i > 100) throw new Error(`router ${r.name} not healthy`);
        await sleep(100);
      }
    }
    const help = spawnSync(ROUTER_BIN, ['register', '--help'], { encoding: 'utf8' });
    const healthUrl = /--health-url/.test(`${help.stdout}${help.stderr}`);
    const ports = [];
    for (let i = 0; i < P.maxReplicas + 2; i++) ports.push(await freePort());
    const baseEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('POD_ROUTER_') && k !== 'ROUTER_ADMIN_URL') baseEnv[k] = v;
    this.sts = new StatefulSet({
      name: 'backend', replicas: P.minReplicas, updateStrategy: this.aware ? 'OnDelete' : 'RollingUpdate',
      logDir: this.dir, backendScript: BACKEND, routerBin: ROUTER_BIN, adminUrls: this.routers.map((r) => r.admin),
      capacity: P.capacity, ports, drainGraceMs: P.drainGraceMs, heartbeatMs: P.heartbeatMs, healthUrl, baseEnv,
    });
    const metrics = [
      { name: 'cpu', kind: 'resource', target: 0.6 },
      { name: 'memory', kind: 'resource', target: 0.7 },
    ];
    if (this.aware) metrics.unshift({ name: 'desired', kind: 'external', target: 1 });
    this.hpa = new Hpa({ minReplicas: P.minReplicas, maxReplicas: P.maxReplicas, metrics, behavior: this.aware ? ROOM_AWARE_HPA : GUIDE_HPA });
    this.hpa.name = 'backend-hpa';
    this.kube = new KubectlApi({
      sts: this.sts, hpa: this.hpa, scaledObject: this.aware ? { name: 'backend' } : null,
      routerPods: this.routers.map((r) => r.name), log: (m) => fs.appendFileSync(path.join(this.dir, 'kubectl.log'), `${this.t().toFixed(1)} ${m}\n`),
    });
    await this.kube.listen();
    this.sts.start();
    // Wait for the first pods to be registered at both routers.
    for (let i = 0; ; i++) {
      const r = await httpGet(`${this.routers[0].admin}/v1/cluster`);
      const ready = r.status === 200 ? JSON.parse(r.text).pods.ready : 0;
      if (ready >= P.minReplicas) break;
      if (i > 200) throw new Error('backend pods did not register');
      await sleep(100);
    }
    this.log(`started: routers ${this.routers.map((r) => r.url).join(' ')}, ${P.minReplicas} pods, sidecar --health-url ${healthUrl ? 'yes' : 'no (emulated: started after Ready)'}`);
  }

  // Ground truth from the clients: connected participants per pod (for the
  // synthesised CPU), and the active load as SPEC 5 defines it: a room is
  // active while one of its participants sent something within --room-active
  // (they send every msgEveryMs while connected).
  truth() {
    const perPod = new Map();
    const now = Date.now();
    const recent = (p) => p.connected || (p.leftAt && now - p.leftAt <= P.roomActiveMs);
    let rooms = 0;
    let participants = 0;
    let connectedRooms = 0;
    for (const room of this.rooms) {
      const live = room.participants.filter((p) => p.connected);
      for (const p of live) perPod.set(p.pod, (perPod.get(p.pod) || 0) + 1);
      if (live.length) connectedRooms++;
      const active = room.participants.filter(recent);
      if (active.length === 0) continue;
      rooms++;
      participants += active.length;
    }
    return { rooms, participants, perPod, connectedRooms };
  }

  async scrapeDesired() {
    let best;
    this.lastDesiredPer = [];
    for (const r of this.routers) {
      const res = await httpGet(`${r.admin}/metrics`, 400);
      const m = /^podrouter_backend_desired_replicas(?:\{[^}]*\})?\s+([0-9.eE+-]+)/m.exec(res.text || '');
      this.lastDesiredPer.push(m ? Number(m[1]) : NaN);
      if (m) best = best === undefined ? Number(m[1]) : Math.max(best, Number(m[1]));
    }
    return best;
  }

  // The registry as router A sees it (GET /v1/pods), one line per sample in
  // <mode>-pods.log: t, desired per router, then name:state:activeRooms/participants.
  async logPods() {
    const res = await httpGet(`${this.routers[0].admin}/v1/pods`, 400);
    let pods = '?';
    try {
      const j = JSON.parse(res.text);
      const list = Array.isArray(j) ? j : j.pods || [];
      pods = list.map((p) => `${p.name}:${p.state}:${p.load ? `${p.load.rooms}/${p.load.participants}` : '?'}`).join(' ');
    } catch {
      // router busy
    }
    const sts = [...this.sts.pods.values()].sort((a, b) => a.ordinal - b.ordinal)
      .map((p) => `${p.ordinal}${p.terminating ? 'T' : p.ready ? '' : 'S'}${p.revision === this.sts.updateRevision ? '' : 'o'}`).join(',');
    fs.appendFileSync(path.join(OUT, `${this.mode}-pods.log`),
      `${this.t().toFixed(2)} D=${(this.lastDesiredPer || []).join('/')} sts=${this.sts.replicas}[${sts}] ${pods}\n`);
  }

  async hpaLoop() {
    while (!this.stopping) {
      const started = Date.now();
      const truth = this.truth();
      const ready = [...this.sts.pods.values()].filter((p) => p.ready && !p.terminating);
      const metrics = {};
      if (ready.length > 0) {
        metrics.cpu = ready.reduce((a, p) => a + cpuOf(truth.perPod.get(p.name) || 0), 0) / ready.length;
        metrics.memory = ready.reduce((a, p) => a + memOf(truth.perPod.get(p.name) || 0), 0) / ready.length;
      }
      let desired;
      if (this.aware) {
        desired = await this.scrapeDesired();
        metrics.desired = desired;
      }
      const before = this.sts.replicas;
      const rec = this.hpa.compute(Date.now(), before, ready.length, metrics);
      if (rec !== before) {
        this.sts.replicas = rec;
        this.sts.reconcile();
        this.log(`HPA ${before} -> ${rec} (${JSON.stringify(this.hpa.last.per)}; ${truth.rooms} active rooms)`);
      }
      await this.logPods();
      const cl = await httpGet(`${this.routers[0].admin}/v1/cluster`, 400);
      let routerActive = '';
      let routerDesired = '';
      let routerCount = '';
      try {
        const j = JSON.parse(cl.text);
        routerActive = j.activeRooms;
        routerDesired = j.desiredReplicas;
        routerCount = j.roomsInterrupted;
        if (routerCount > (this.lastRouterCount || 0)) {
          const pods = [...this.sts.pods.values()].map((p) => `${p.name}${p.terminating ? '(terminating)' : p.ready ? '' : '(starting)'}`);
          this.log(`router pod-router-a counts ${routerCount} interrupted rooms (was ${this.lastRouterCount || 0}); pods ${pods.join(' ')}`);
          this.lastRouterCount = routerCount;
        }
      } catch {
        // router busy; leave blank
      }
      const ideal = Math.min(P.maxReplicas, Math.max(P.minReplicas,
        Math.max(Math.ceil(truth.rooms / (P.capacity.rooms * P.u)), Math.ceil(truth.participants / (P.capacity.participants * P.u))) + P.headroom));
      this.samples.push({
        t: this.t(), spec: this.sts.replicas, pods: this.sts.pods.size, ready: ready.length,
        desired: desired === undefined ? routerDesired : desired, hpa: this.hpa.last ? this.hpa.last.desired : '',
        rooms: truth.rooms, participants: truth.participants, routerActive, ideal, connected: truth.connectedRooms,
        routerInterrupted: routerCount,
      });
      await sleep(Math.max(0, P.syncMs - (Date.now() - started)));
    }
  }

  // One participant: connects through one of the router replicas, says who
  // it is, sends a message every msgEveryMs, leaves at the room's end.
  participant(room, k) {
    const r = this.routers[(Number((/(\d+)$/.exec(room.id) || [0, 0])[1]) + k) % 2];
    const pid = `${room.id}_p${k}`;
    const socket = io(r.url, {
      forceNew: true, reconnection: false, transports: [TRANSPORT], timeout: 5000,
      query: { roomId: room.id, participantId: pid },
    });
    this.sockets.add(socket);
    const p = { pid, connected: false, pod: null, leaving: false, lost: null };
    room.participants.push(p);
    let timer = null;
    socket.on('connect', async () => {
      try {
        const who = await socket.timeout(3000).emitWithAck('whoami');
        p.pod = who.pod;
        room.pods.add(who.pod);
        p.connected = true;
        timer = setInterval(() => socket.emit('room-msg', { t: Date.now() }), P.msgEveryMs);
      } catch {
        p.lost = 'whoami timeout';
      }
    });
    socket.on('connect_error', (err) => {
      room.rejected++;
      p.lost = `connect_error ${err && err.message}`;
      this.sockets.delete(socket);
    });
    socket.on('disconnect', (reason) => {
      clearInterval(timer);
      const was = p.connected;
      p.connected = false;
      if (was) p.leftAt = Date.now();
      this.sockets.delete(socket);
      if (!p.leaving && was) {
        p.lost = reason;
        if (!room.interrupted) {
          room.interrupted = true;
          room.interruptedAt = this.t();
          this.log(`room ${room.id} interrupted: ${pid} on ${p.pod} lost its pod (${reason})`);
        }
      }
    });
    return () => {
      p.leaving = true;
      clearInterval(timer);
      socket.close();
    };
  }

  async workload() {
    const ends = [];
    for (const room of this.rooms) {
      const wait = room.start * 1000 - (Date.now() - this.t0);
      if (wait > 0) await sleep(wait);
      const leaves = [];
      for (let k = 0; k < room.n; k++) {
        setTimeout(() => leaves.push(this.participant(room, k)), room.joins[k] * 1000);
      }
      ends.push(sleep(room.duration * 1000).then(() => leaves.forEach((leave) => leave())));
      if (!this.rolloutStarted && !NO_ROLLOUT && this.t() >= P.rolloutAt) this.rollout();
    }
    await Promise.all(ends);
    this.workloadEnd = this.t();
  }

  rollout() {
    this.rolloutStarted = this.t();
    this.log(`rollout: new backend revision (kubectl apply of a new image), ${this.aware ? 'deploy/scripts/rollout-backend.sh' : 'StatefulSet RollingUpdate'}`);
    this.sts.newRevision('backend-rev2');
    if (!this.aware) {
      this.rolloutDone = this.sts.rolling.then(() => {
        this.rolloutEnd = this.t();
        this.rolloutRc = 0;
        this.log('rollout: RollingUpdate done');
      });
      return;
    }
    const env = {
      ...process.env,
      PATH: `${path.join(__dirname, 'bin')}:${path.dirname(ROUTER_BIN)}:${process.env.PATH}`,
      SIM_KUBE_URL: this.kube.url,
    };
    const log = path.join(this.dir, 'rollout.log');
    const proc = spawnLogged('bash', [path.join(REPO, 'deploy', 'scripts', 'rollout-backend.sh'), '-n', 'hyperstudy',
      '--admin-url', this.routers[0].admin, '--token-file', '', '--timeout', LONG ? '400s' : '150s',
      '--drain-timeout', '60s', '--ready-timeout', '20s', '--poll', '0.3',
      '--utilization', String(P.u), '--headroom', String(P.headroom), '--settle', ROLLOUT_SETTLE,
      '--trend-window', ROLLOUT_TREND, '--peak-wait', ROLLOUT_PEAK_WAIT], { env, logPath: log });
    this.rolloutProc = proc;
    this.rolloutDone = proc.exited.then((info) => {
      this.rolloutEnd = this.t();
      this.rolloutRc = info.code;
      this.log(`rollout: rollout-backend.sh exited ${info.code} after ${(this.rolloutEnd - this.rolloutStarted).toFixed(1)} s`);
    });
  }

  async routerInterrupted() {
    let n = 0;
    for (const r of this.routers) {
      const res = await httpGet(`${r.admin}/metrics`, 1000);
      const m = /^podrouter_rooms_interrupted_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)/m.exec(res.text || '');
      if (m) n = Math.max(n, Number(m[1]));
    }
    return n;
  }

  async execute() {
    await this.start();
    this.t0 = Date.now();
    this.sts.podSeconds = 0;
    this.sts.lastTick = Date.now();
    const hpa = this.hpaLoop();
    await this.workload();
    if (this.rolloutDone) await Promise.race([this.rolloutDone, sleep(LONG ? 410000 : 160000)]);
    const podSeconds = this.sts.podSeconds;
    this.routerCount = await this.routerInterrupted();
    this.stopping = true;
    await hpa;
    for (const s of this.sockets) s.close();
    if (this.rolloutProc && !this.rolloutProc.exitInfo) await stop(this.rolloutProc);
    // Pod-seconds used and ideal over the workload, from the samples.
    let used = 0;
    let ideal = 0;
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1];
      const b = this.samples[i];
      if (a.t >= this.workloadEnd) break;
      const dt = Math.min(b.t, this.workloadEnd) - a.t;
      used += a.pods * dt;
      ideal += a.ideal * dt;
    }
    this.result = {
      mode: this.mode,
      rooms: this.rooms.length,
      interrupted: this.rooms.filter((r) => r.interrupted).length,
      split: this.rooms.filter((r) => r.pods.size > 1).length,
      rejected: this.rooms.reduce((a, r) => a + r.rejected, 0),
      participants: this.rooms.reduce((a, r) => a + r.n, 0),
      routerInterrupted: this.routerCount,
      used, ideal, ratio: used / ideal, podSecondsAll: podSeconds,
      peakPods: Math.max(...this.samples.map((s) => s.pods)),
      rolloutS: this.rolloutEnd !== undefined ? this.rolloutEnd - this.rolloutStarted : null,
      rolloutStart: this.rolloutStarted === undefined ? null : this.rolloutStarted,
      rolloutEnd: this.rolloutEnd === undefined ? null : this.rolloutEnd,
      rolloutRc: this.rolloutRc,
      duration: this.workloadEnd,
      kubectlCalls: this.kube.calls,
      stillOld: [...this.sts.pods.values()].filter((p) => p.revision !== this.sts.updateRevision).map((p) => p.name),
    };
    const cols = ['t', 'spec', 'pods', 'ready', 'desired', 'hpa', 'rooms', 'participants', 'routerActive', 'ideal', 'connected', 'routerInterrupted'];
    fs.writeFileSync(path.join(OUT, `${this.mode}.dat`),
      `# ${cols.join(' ')}\n${this.samples.map((s) => cols.map((c) => (s[c] === '' || s[c] === undefined ? 'NaN' : (typeof s[c] === 'number' ? +s[c].toFixed(3) : s[c]))).join(' ')).join('\n')}\n`);
    fs.writeFileSync(path.join(OUT, `${this.mode}-interrupts.dat`),
      `# t (s) of each interrupted room\n${this.rooms.filter((r) => r.interrupted).map((r) => r.interruptedAt.toFixed(2)).join('\n')}\n`);
    await this.stopAll();
    return this.result;
  }

  // A rollout that cannot finish: one room stays connected on every pod;
  // the script, bounded by --drain-timeout, must stop with exit 1, list the
  // pods still old, delete none of them, and leave every room running.
  async timeoutScenario() {
    await this.start();
    this.t0 = Date.now();
    const rooms = [];
    for (let i = 0; i < P.minReplicas; i++) {
      // Pack fills backend-0 first: make each room big enough to need its own pod.
      const room = { id: `room_stay${i}`, n: 8, joins: Array(8).fill(0), participants: [], interrupted: false, pods: new Set(), rejected: 0 };
      this.rooms.push(room);
      rooms.push(room);
      for (let k = 0; k < room.n; k++) this.participant(room, k);
      await sleep(1500);
    }
    const pods = new Set(rooms.flatMap((r) => [...r.pods]));
    this.sts.newRevision('backend-rev2');
    const env = {
      ...process.env,
      PATH: `${path.join(__dirname, 'bin')}:${path.dirname(ROUTER_BIN)}:${process.env.PATH}`,
      SIM_KUBE_URL: this.kube.url,
    };
    const log = path.join(this.dir, 'rollout.log');
    const proc = spawnLogged('bash', [path.join(REPO, 'deploy', 'scripts', 'rollout-backend.sh'), '-n', 'hyperstudy',
      '--admin-url', this.routers[0].admin, '--token-file', '', '--timeout', '60s', '--drain-timeout', '3s',
      '--ready-timeout', '30s', '--poll', '0.3', '--utilization', String(P.u), '--headroom', String(P.headroom),
      // a short peak wait (backend-0 holds rooms backend-1 cannot take over), then the drain timeout
      '--trend-window', ROLLOUT_TREND, '--peak-wait', '5s'], { env, logPath: log });
    const info = await proc.exited;
    await sleep(500);
    const out = fs.readFileSync(log, 'utf8');
    const old = [...this.sts.pods.values()].filter((p) => p.revision !== this.sts.updateRevision && p.ordinal < P.minReplicas).map((p) => p.name);
    const result = {
      rc: info.code,
      listed: old.length > 0 && old.every((n) => new RegExp(`still on the old revision:.*\\b${n}\\b`).test(out)),
      old,
      pods: [...pods],
      roomPodsOld: [...pods].every((n) => old.includes(n)),
      interrupted: rooms.filter((r) => r.interrupted).length,
      connected: rooms.every((r) => r.participants.length > 0 && r.participants.every((p) => p.connected)),
      deleted: this.sts.deleted,
      floor: this.hpa.spec.minReplicas,
    };
    this.log(`timeout scenario: ${JSON.stringify(result)}`);
    for (const sck of this.sockets) sck.close();
    await this.stopAll();
    return result;
  }

  async stopAll() {
    this.stopping = true;
    this.kube.close();
    await this.sts.stopAll();
    for (const r of this.routers) {
      signal(r.proc, 'SIGKILL');
      await r.proc.exited;
    }
    await this.redis.cleanup();
  }
}

// ---------------------------------------------------------------- main

async function main() {
  if (!fs.existsSync(ROUTER_BIN)) {
    console.log(`sim: no router binary at ${ROUTER_BIN}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  fs.mkdirSync(OUT, { recursive: true });
  const rooms = schedule(SEED);
  console.log(`sim: ${LONG ? 'long' : 'short'} variant, seed ${SEED}, ${TRANSPORT} participants: ${rooms.length} rooms arriving over ${P.arrivalS} s ` +
    `(Poisson, peak and trough), 2-8 participants each, ${P.dMin}-${P.dMax} s; rollout at ${P.rolloutAt} s; ` +
    `capacity ${P.capacity.rooms} rooms / ${P.capacity.participants} participants per pod, u ${P.u}, headroom ${P.headroom}, ` +
    `replicas ${P.minReplicas}..${P.maxReplicas}; timers compressed ${SCALE}x`);
  const results = [];
  const only = process.env.SIM_ONLY || '';
  for (const mode of ['room-aware', 'baseline']) {
    if (only && only !== mode) {
      results.push(null);
      continue;
    }
    const run = new Run(mode, rooms);
    try {
      results.push(await run.execute());
    } catch (e) {
      console.log(`sim: ${mode} run failed: ${e.stack || e}`);
      try {
        await run.stopAll();
      } catch {
        // already down
      }
      results.push(null);
    }
    const r = results[results.length - 1];
    if (r) {
      console.log(`sim: ${mode}: ${r.rooms} rooms, ${r.participants} participants; interrupted rooms ${r.interrupted} ` +
        `(router podrouter_rooms_interrupted_total ${r.routerInterrupted}); rooms split over pods ${r.split}; ` +
        `connect errors ${r.rejected}; pod-seconds ${r.used.toFixed(1)} vs ideal ${r.ideal.toFixed(1)} = ${r.ratio.toFixed(3)}x; ` +
        `peak pods ${r.peakPods}; rollout ${r.rolloutS === null ? 'not run' : `${r.rolloutS.toFixed(1)} s, exit ${r.rolloutRc}`}` +
        `${r.stillOld.length ? `, still old: ${r.stillOld.join(' ')}` : ''}`);
    }
  }
  // The timeout path of the rollout script.
  let to = null;
  const trun = new Run('rollout-timeout', []);
  if (!only || only === 'rollout-timeout') try {
    to = await trun.timeoutScenario();
    console.log(`sim: rollout timeout: exit ${to.rc}; rooms on ${to.pods.join(', ')} interrupted ${to.interrupted}, ` +
      `all participants still connected ${to.connected}; pods still old ${to.old.join(' ')} (listed: ${to.listed}); ` +
      `pods deleted ${to.deleted}; autoscaler floor back to ${to.floor}`);
  } catch (e) {
    console.log(`sim: rollout-timeout run failed: ${e.stack || e}`);
    try {
      await trun.stopAll();
    } catch {
      // down
    }
  }

  // Variables for tests/sim/plot.gp.
  const gv = (name, v) => `${name} = ${v === null || v === undefined ? 'NaN' : Number(v).toFixed(2)}\n`;
  fs.writeFileSync(path.join(OUT, 'plotvars.gp'), results.map((r, i) => {
    const tag = i === 0 ? 'aware' : 'base';
    if (!r) return '';
    return gv(`${tag}_roll_start`, r.rolloutStart) + gv(`${tag}_roll_end`, r.rolloutEnd) + gv(`${tag}_ratio`, r.ratio) +
      gv(`${tag}_interrupted`, r.interrupted) + gv(`${tag}_end`, r.duration);
  }).join('') + gv('max_replicas', P.maxReplicas));
  fs.writeFileSync(path.join(OUT, 'results.json'), `${JSON.stringify({ seed: SEED, long: LONG, params: P, results }, null, 2)}\n`);

  let passed = 0;
  let failed = 0;
  const check = (ok, name) => {
    console.log(`${ok ? 'ok' : 'not ok'} - ${name}`);
    if (ok) passed++;
    else failed++;
  };
  const [aware, base] = results;
  check(aware && aware.interrupted === 0, `room-aware: 0 interrupted rooms (got ${aware ? aware.interrupted : 'no run'})`);
  check(aware && aware.routerInterrupted === 0, `room-aware: router counted 0 interrupted rooms (got ${aware ? aware.routerInterrupted : 'no run'})`);
  check(aware && aware.rolloutRc === 0 && aware.stillOld.length === 0, `room-aware: rollout-backend.sh replaced every pod and exited 0 (exit ${aware ? aware.rolloutRc : '-'}${aware && aware.stillOld.length ? `, old: ${aware.stillOld}` : ''})`);
  // The efficiency goal is judged on the long run only: the short run (default suite) is too
  // compressed for it (pod start-up and the router's 200-ms minimum tick are not compressed),
  // so there it is reported, not asserted. docs/scaling.md has the figures and the gap.
  if (LONG) check(aware && aware.ratio <= 1.25, `room-aware: pod-seconds <= 1.25x ideal (got ${aware ? aware.ratio.toFixed(3) : '-'})`);
  else console.log(`# info - room-aware: pod-seconds ${aware ? aware.ratio.toFixed(3) : '-'}x ideal (goal <= 1.25x, asserted with SIM_LONG=1)`);
  check(aware && aware.split === 0, `room-aware: every room on one pod (split ${aware ? aware.split : '-'})`);
  check(to && to.rc === 1 && to.interrupted === 0 && to.connected && to.roomPodsOld && to.listed,
    `rollout timeout: exit 1, every room still running on its old pod, every old pod listed (${to ? `exit ${to.rc}, interrupted ${to.interrupted}, rooms on ${to.pods.join(' ')}, old ${to.old.join(' ')}, listed ${to.listed}` : 'no run'})`);
  check(to && to.floor === P.minReplicas, `rollout timeout: the autoscaler floor is restored (${to ? to.floor : '-'})`);
  check(base && base.interrupted > 0, `baseline (CPU HPA + least-loaded + RollingUpdate) interrupts rooms (got ${base ? base.interrupted : 'no run'})`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`sim: ${e.stack || e}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
