'use strict';
// End-to-end harness: starts the real pod-router binary and real Socket.IO
// example pods on loopback ports, offers clients and admin calls, and stops
// everything it started (by PID) when the test ends, fails or the process
// exits.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { io } = require('socket.io-client');

const REPO = path.resolve(__dirname, '..', '..', '..');
const ROUTER_BIN = path.resolve(process.env.POD_ROUTER_BIN || path.join(REPO, 'build', 'src', 'pod-router'));
const BACKEND = path.join(REPO, 'examples', 'backend', 'server.js');
const OUT_DIR = path.join(REPO, 'test-output', 'e2e');
const HOST = '127.0.0.1';

// ---------------------------------------------------------------- processes

// Every child this process started and has not seen exit; killed on exit.
const children = new Set();

function killAllChildren() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

process.on('exit', killAllChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllChildren();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls fn until it returns a truthy value; rejects after timeoutMs with the
// last value or error in the message.
async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

const handedOutPorts = new Set();

// A loopback TCP port nobody listens on right now (never the same twice).
async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, HOST, () => {
        const { port: p } = srv.address();
        srv.close(() => resolve(p));
      });
    });
    if (!handedOutPorts.has(port)) {
      handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error('no free port');
}

function safeName(s) {
  return String(s).replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 120) || 'test';
}

function tail(file, lines = 30) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '(no log)';
  }
}

// Spawns a child with stdout+stderr going to logPath; tracks it for cleanup.
function spawnLogged(cmd, args, { env, logPath, append = false }) {
  fs.mkdirSync(path.dirname(logPath), { recursive: true });
  const fd = fs.openSync(logPath, append ? 'a' : 'w');
  let child;
  try {
    child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  children.add(child);
  child.exitInfo = null;
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      child.exitInfo = { code, signal };
      resolve(child.exitInfo);
    });
    child.on('error', (err) => {
      children.delete(child);
      child.exitInfo = { code: null, signal: null, error: err };
      resolve(child.exitInfo);
    });
  });
  return child;
}

// Sends sig to child (if alive) and waits up to ms for it to exit.
async function signalAndWait(child, sig, ms) {
  if (!child || child.exitInfo) return child && child.exitInfo;
  try {
    process.kill(child.pid, sig);
  } catch {
    // exited meanwhile
  }
  const timer = sleep(ms).then(() => null);
  return Promise.race([child.exited, timer]);
}

// Environment for children: ours without any POD_ROUTER_* variable, so a
// developer's shell cannot change the router under test.
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('POD_ROUTER_')) env[k] = v;
  }
  return { ...env, ...extra };
}

// ---------------------------------------------------------------- HTTP

// One HTTP/1.1 request on its own connection (unless opts.agent is given).
// Resolves { status, headers, rawHeaders, body: Buffer, text, json }.
function request(url, { method = 'GET', headers = {}, body, agent = false, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.on('end', () => {
        clearTimeout(timer);
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: buf, text, json, socket: req.socket });
      });
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

// ---------------------------------------------------------------- raw TCP

// True when buf holds one complete HTTP response (head and framed body).
function responseComplete(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const head = buf.subarray(0, end).toString('latin1');
  const status = Number((/^HTTP\/1\.[01] (\d{3})/.exec(head) || [])[1]);
  if ((status >= 100 && status < 200) || status === 204 || status === 304) return true;
  const body = buf.subarray(end + 4);
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl) return body.length >= Number(cl[1]);
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) return body.includes('0\r\n\r\n');
  return false;
}

// Connects to port, writes each chunk (string/Buffer; a number = pause ms),
// and collects everything until the peer closes or timeoutMs passes (or,
// with untilResponse, until one complete response has arrived).
// Resolves { data: Buffer, closed, error, elapsedMs, firstByteMs }.
function rawExchange(port, chunks, { timeoutMs = 5000, endAfterWrite = false, untilResponse = false } = {}) {
  return new Promise((resolve) => {
    const start = Date.now();
    const parts = [];
    let firstByteMs = null;
    let done = false;
    let error = null;
    const sock = net.connect({ host: HOST, port });
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(parts), closed, error, elapsedMs: Date.now() - start, firstByteMs });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d) => {
      if (firstByteMs === null) firstByteMs = Date.now() - start;
      parts.push(d);
      if (untilResponse && responseComplete(Buffer.concat(parts))) finish(false);
    });
    sock.on('error', (err) => {
      error = err;
    });
    sock.on('close', () => finish(true));
    sock.on('connect', async () => {
      for (const c of [].concat(chunks)) {
        if (done) return;
        if (typeof c === 'number') await sleep(c);
        else sock.write(c);
      }
      if (endAfterWrite) sock.end();
    });
  });
}

// Parses the first HTTP response in buf: { status, headers, body, text, json }
// (body de-chunked); null if buf holds no complete head.
function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (!m) return null;
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  let body = buf.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const out = [];
    let rest = body;
    for (;;) {
      const le = rest.indexOf('\r\n');
      if (le < 0) break;
      const size = parseInt(rest.subarray(0, le).toString('latin1'), 16);
      if (!Number.isFinite(size) || size === 0) break;
      out.push(rest.subarray(le + 2, le + 2 + size));
      rest = rest.subarray(le + 2 + size + 2);
    }
    body = Buffer.concat(out);
  } else if (headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(headers['content-length']));
  }
  const text = body.toString('utf8');
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: Number(m[1]), headers, body, text, json, head: head.join('\n') };
}

// ---------------------------------------------------------------- data

// Byte i of the backend's /api/big is (i % 251).
function pattern(offset, len) {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = (offset + i) % 251;
  return b;
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// ---------------------------------------------------------------- Socket.IO

function waitConnected(socket, timeoutMs = 10000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (err) => {
      // With auto-reconnect the client keeps trying; only a one-shot client fails here.
      if (socket.io.reconnection()) return;
      cleanup();
      reject(new Error(`connect_error: ${err && err.message}${err && err.description ? ` (${err.description})` : ''}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`socket did not connect within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

// Resolves once the socket's engine runs over websocket.
function waitUpgraded(socket, timeoutMs = 10000) {
  const engine = socket.io.engine;
  if (engine && engine.transport && engine.transport.name === 'websocket') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no websocket upgrade within ${timeoutMs} ms`)), timeoutMs);
    engine.once('upgrade', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function whoami(socket, timeoutMs = 5000) {
  return socket.timeout(timeoutMs).emitWithAck('whoami');
}

// Records what happens to a socket: connects, disconnect reasons, errors.
function track(socket) {
  const rec = { connects: 0, disconnects: [], connectErrors: [], engineErrors: [] };
  socket.on('connect', () => {
    rec.connects++;
    rec.lastConnectAt = Date.now();
  });
  socket.on('disconnect', (reason, detail) => {
    rec.disconnects.push({ reason, at: Date.now(), detail: detail && (detail.description || detail.message) });
  });
  socket.on('connect_error', (err) => {
    rec.connectErrors.push(`${err && err.message}${err && err.description ? ` (${err.description})` : ''}`);
  });
  const onEngine = (engine) => {
    engine.on('error', (err) => rec.engineErrors.push(String((err && err.message) || err)));
  };
  if (socket.io.engine) onEngine(socket.io.engine);
  socket.io.on('open', () => onEngine(socket.io.engine));
  socket.record = rec;
  return rec;
}

// ---------------------------------------------------------------- cluster

class Cluster {
  // name: file prefix of the logs; opts: { pods, routerArgs, register,
  // podEnv, startRouter, tokenFile }.
  constructor(name, opts = {}) {
    this.name = safeName(name);
    this.opts = { pods: 3, routerArgs: [], register: true, podEnv: {}, startRouter: true, ...opts };
    this.pods = new Map();
    this.sockets = new Set();
    this.fakePods = new Set();
    this.servers = new Set();
    this.router = null;
    this.stopped = false;
    this.expectRouterExit = false;
    this.routerLog = path.join(OUT_DIR, `${this.name}-router.log`);
  }

  get routerUrl() {
    return `http://${HOST}:${this.routerPort}`;
  }

  get adminUrl() {
    return `http://${HOST}:${this.adminPort}`;
  }

  async start() {
    this.routerPort = await freePort();
    this.adminPort = await freePort();
    if (this.opts.startRouter) await this.startRouter();
    const names = [];
    for (let i = 0; i < this.opts.pods; i++) {
      const name = `backend-${i}`;
      names.push(name);
      await this.startPod(name);
    }
    if (this.opts.register && this.opts.startRouter && names.length > 0) await this.waitPodsState(names, 'ready');
    return this;
  }

  routerCommand() {
    return [
      'serve',
      '--listen', `${HOST}:${this.routerPort}`,
      '--admin-listen', `${HOST}:${this.adminPort}`,
      '--store', 'memory',
      '--pod-ttl', '3s',
      '--threads', '2',
      '--log-format', 'json',
      ...this.opts.routerArgs,
    ];
  }

  async startRouter() {
    if (!fs.existsSync(ROUTER_BIN)) {
      throw new Error(`router binary not found at ${ROUTER_BIN} (build it with meson/ninja or set POD_ROUTER_BIN)`);
    }
    const args = this.routerCommand();
    fs.mkdirSync(OUT_DIR, { recursive: true });
    fs.writeFileSync(this.routerLog, `# ${ROUTER_BIN} ${args.join(' ')}\n`);
    this.router = spawnLogged(ROUTER_BIN, args, { env: cleanEnv(this.opts.routerEnv || {}), logPath: this.routerLog, append: true });
    this.router.exited.then((info) => {
      this.routerExitAt = Date.now();
      this.routerExitInfo = info;
    });
    await waitFor(async () => {
      if (this.router.exitInfo) {
        throw new Error(`router exited during startup (${JSON.stringify(this.router.exitInfo)}):\n${tail(this.routerLog)}`);
      }
      const res = await request(`${this.adminUrl}/healthz`, { timeoutMs: 1000 });
      return res.status === 200;
    }, { timeoutMs: 10000, what: 'router GET /healthz = 200' }).catch((err) => {
      throw new Error(`${err.message}\nrouter log tail:\n${tail(this.routerLog)}`);
    });
  }

  // Starts (or restarts, same port) pod `name`; waits until it answers.
  async startPod(name, { register = this.opts.register, env = {} } = {}) {
    let pod = this.pods.get(name);
    if (!pod) {
      pod = { name, port: await freePort(), proc: null, logPath: path.join(OUT_DIR, `${this.name}-${name}.log`) };
      this.pods.set(name, pod);
      fs.mkdirSync(OUT_DIR, { recursive: true });
      fs.writeFileSync(pod.logPath, '');
    }
    if (pod.proc && !pod.proc.exitInfo) throw new Error(`${name} is already running`);
    const podEnv = {
      PORT: String(pod.port),
      HOST,
      POD_NAME: name,
      HEARTBEAT_MS: '500',
      ...this.opts.podEnv,
      ...env,
    };
    if (register) podEnv.ROUTER_ADMIN_URL = this.adminUrl;
    else delete podEnv.ROUTER_ADMIN_URL;
    if (this.opts.tokenFile) podEnv.ROUTER_TOKEN_FILE = this.opts.tokenFile;
    const baseEnv = cleanEnv({});
    delete baseEnv.ROUTER_ADMIN_URL;
    delete baseEnv.ROUTER_TOKEN_FILE;
    pod.proc = spawnLogged(process.execPath, [BACKEND], { env: { ...baseEnv, ...podEnv }, logPath: pod.logPath, append: true });
    pod.url = `http://${HOST}:${pod.port}`;
    await waitFor(async () => {
      if (pod.proc.exitInfo) throw new Error(`${name} exited: ${JSON.stringify(pod.proc.exitInfo)}\n${tail(pod.logPath)}`);
      const res = await request(`${pod.url}/healthz`, { timeoutMs: 1000 });
      return res.status === 200;
    }, { timeoutMs: 10000, what: `${name} GET /healthz` });
    return pod;
  }

  // Restarts a pod (after kill or not) on its port and waits until ready.
  async restartPod(name) {
    const pod = this.pods.get(name);
    if (!pod) throw new Error(`unknown pod ${name}`);
    if (pod.proc && !pod.proc.exitInfo) await this.kill(name, 'SIGTERM');
    await this.startPod(name);
    if (this.opts.register) await this.waitPodsState([name], 'ready');
  }

  // Sends signal to pod `name` and waits for it to exit.
  async kill(name, signal = 'SIGKILL') {
    const pod = this.pods.get(name);
    if (!pod || !pod.proc) throw new Error(`unknown pod ${name}`);
    const info = await signalAndWait(pod.proc, signal, 5000);
    if (!info) {
      await signalAndWait(pod.proc, 'SIGKILL', 5000);
    }
    return pod.proc.exitInfo;
  }

  // Sends a signal to the router; the test expects it to exit by itself.
  signalRouter(signal) {
    this.expectRouterExit = true;
    process.kill(this.router.pid, signal);
  }

  admin(method, p, { body, headers = {}, timeoutMs = 10000 } = {}) {
    const h = { ...headers };
    let payload = body;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      payload = JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    }
    return request(`${this.adminUrl}${p}`, { method, headers: h, body: payload, timeoutMs });
  }

  get(p, opts = {}) {
    return request(`${this.routerUrl}${p}`, opts);
  }

  async podsByName() {
    const res = await this.admin('GET', '/v1/pods');
    if (res.status !== 200 || !res.json || !Array.isArray(res.json.pods)) {
      throw new Error(`GET /v1/pods: ${res.status} ${res.text.slice(0, 200)}`);
    }
    return new Map(res.json.pods.map((p) => [p.name, p]));
  }

  async waitPodsState(names, state, timeoutMs = 10000) {
    return waitFor(async () => {
      const pods = await this.podsByName();
      return names.every((n) => pods.get(n) && pods.get(n).state === state);
    }, { timeoutMs, what: `${names.join(',')} ${state} in GET /v1/pods` });
  }

  // A socket.io-client socket through the router; tracked and closed at stop.
  connect(ns = '/', { roomId, participantId, query = {}, transports, reconnection = false, ...opts } = {}) {
    const q = { ...query };
    if (roomId !== undefined) q.roomId = roomId;
    if (participantId !== undefined) q.participantId = participantId;
    const options = {
      forceNew: true,
      reconnection,
      reconnectionDelay: 200,
      reconnectionDelayMax: 1000,
      randomizationFactor: 0.2,
      timeout: 10000,
      query: q,
      ...opts,
    };
    if (transports) options.transports = transports;
    const socket = io(`${this.routerUrl}${ns === '/' ? '/' : ns}`, options);
    track(socket);
    this.sockets.add(socket);
    return socket;
  }

  // Heartbeats a pod entry that is not an example pod (e.g. a dead address).
  async fakePod(name, address, { intervalMs = 500, capacity = { rooms: 20, participants: 80 }, headers = {} } = {}) {
    const beat = () => this.admin('PUT', `/v1/pods/${name}`, { body: { address, capacity }, headers, timeoutMs: 2000 });
    const first = await beat();
    if (first.status !== 200 && first.status !== 201) {
      throw new Error(`PUT /v1/pods/${name}: ${first.status} ${first.text}`);
    }
    const timer = setInterval(() => beat().catch(() => {}), intervalMs);
    const fake = { stop: () => clearInterval(timer) };
    this.fakePods.add(fake);
    return fake;
  }

  // A loopback TCP server that accepts and never answers (or runs onConn).
  async blackhole(onConn) {
    const conns = new Set();
    const srv = net.createServer((c) => {
      conns.add(c);
      c.on('error', () => {});
      c.on('close', () => conns.delete(c));
      if (onConn) onConn(c);
      else c.resume();
    });
    await new Promise((resolve) => srv.listen(0, HOST, resolve));
    srv.conns = conns;
    this.servers.add(srv);
    return srv;
  }

  // Stops everything this cluster started. Throws if the router died by
  // itself during the test (a crash must fail the test).
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const fake of this.fakePods) fake.stop();
    for (const s of this.sockets) {
      try {
        s.close();
      } catch {
        // ignore
      }
    }
    for (const srv of this.servers) {
      for (const c of srv.conns) c.destroy();
      srv.close();
    }
    let crash = null;
    if (this.router) {
      const before = this.router.exitInfo;
      if (before && !this.expectRouterExit) {
        crash = `router exited during the test: ${JSON.stringify(before)}`;
      }
      if (!before) {
        const info = await signalAndWait(this.router, 'SIGTERM', 5000);
        if (!info) {
          fs.appendFileSync(this.routerLog, '# e2e harness: still running 5 s after SIGTERM; sent SIGKILL\n');
          await signalAndWait(this.router, 'SIGKILL', 5000);
        }
        else if (info.code !== 0 && !this.expectRouterExit) {
          crash = `router exited ${JSON.stringify(info)} after SIGTERM (expected 0)`;
        }
      }
    }
    await Promise.all([...this.pods.values()].map(async (pod) => {
      if (!pod.proc || pod.proc.exitInfo) return;
      const info = await signalAndWait(pod.proc, 'SIGTERM', 3000);
      if (!info) await signalAndWait(pod.proc, 'SIGKILL', 3000);
    }));
    if (crash) throw new Error(`${crash}\nrouter log tail (${this.routerLog}):\n${tail(this.routerLog)}`);
  }
}

// The clusters of each test context, stopped by one after-hook: node:test skips the
// remaining after-hooks of a test once one throws, so a hook per cluster would leave the
// others running (their routers keep the test file from ending) when the first reports a
// crash.
const clustersOf = new WeakMap();

async function stopAll(list) {
  let first = null;
  for (const c of list) {
    try {
      await c.stop();
    } catch (err) {
      if (!first) first = err;
    }
  }
  if (first) throw first;
}

// Starts a cluster for test context t and stops it when t ends (also on failure).
async function startCluster(t, opts = {}) {
  const name = opts.name || t.fullName || t.name;
  const cluster = new Cluster(name, opts);
  let list = clustersOf.get(t);
  if (!list) {
    list = [];
    clustersOf.set(t, list);
    t.after(() => stopAll(list));
  }
  list.push(cluster);
  await cluster.start();
  return cluster;
}

module.exports = {
  REPO,
  ROUTER_BIN,
  BACKEND,
  OUT_DIR,
  HOST,
  Cluster,
  startCluster,
  freePort,
  sleep,
  waitFor,
  request,
  rawExchange,
  responseComplete,
  parseResponse,
  pattern,
  sha256,
  waitConnected,
  waitUpgraded,
  whoami,
  track,
  tail,
};
