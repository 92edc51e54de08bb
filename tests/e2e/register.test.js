'use strict';
// The registration sidecar (`pod-router register`, SPEC 8) against a real
// router: heartbeats keep a pod ready, router restarts are survived, bearer
// tokens (wrong ones logged and retried, rotated ones picked up), SIGTERM
// drains, waits the grace, deletes and exits 0, bad flags exit 2.
//
// The router comes from the cluster harness (--pod-ttl 3s); the sidecars are
// started here and stopped by PID when each test ends, also on failure.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { startCluster, ROUTER_BIN, OUT_DIR, HOST, waitFor, waitConnected, whoami, sleep, tail } = require('./lib/cluster');

const INTERVAL = '500ms';
const sidecars = new Set();

process.on('exit', () => {
  for (const sc of sidecars) {
    try {
      process.kill(sc.proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function childEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('POD_ROUTER_')) env[k] = v;
  return env;
}

// Starts `pod-router register` with args; its stdout+stderr go to a log file.
// Killed (SIGKILL) when test t ends if it is still running.
function startSidecar(t, name, args) {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const logPath = path.join(OUT_DIR, `register-${name}-${Date.now().toString(36)}.log`);
  const fd = fs.openSync(logPath, 'w');
  let proc;
  try {
    proc = spawn(ROUTER_BIN, ['register', ...args], { env: childEnv(), stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  const sc = { proc, logPath, exitInfo: null };
  sc.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      sc.exitInfo = { code, signal };
      sidecars.delete(sc);
      resolve(sc.exitInfo);
    });
    proc.on('error', (err) => {
      sc.exitInfo = { code: null, signal: null, error: err.message };
      sidecars.delete(sc);
      resolve(sc.exitInfo);
    });
  });
  sidecars.add(sc);
  t.after(async () => {
    if (!sc.exitInfo) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
      await sc.exited;
    }
  });
  return sc;
}

// The sidecar's JSON log lines so far.
function logLines(sc) {
  const text = fs.readFileSync(sc.logPath, 'utf8');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

// Fails on sanitizer output in a log (when POD_ROUTER_BIN is an ASan build).
function assertNoSanitizerReport(file) {
  const text = fs.readFileSync(file, 'utf8');
  assert.doesNotMatch(text, /Sanitizer|runtime error:/, `sanitizer report in ${file}:\n${text.slice(-3000)}`);
}

async function stopSidecar(sc, ms = 10000) {
  if (!sc.exitInfo) process.kill(sc.proc.pid, 'SIGTERM');
  const info = await Promise.race([sc.exited, sleep(ms).then(() => null)]);
  assert.ok(info, `sidecar did not exit within ${ms} ms:\n${tail(sc.logPath)}`);
  return info;
}

async function getPod(cluster, name) {
  const res = await cluster.admin('GET', `/v1/pods/${name}`, { timeoutMs: 2000 });
  return res;
}

function sidecarArgs(cluster, name, address, extra = []) {
  return ['--admin-url', cluster.adminUrl, '--name', name, '--address', address, '--interval', INTERVAL, ...extra];
}

test('heartbeats keep a sidecar-registered pod ready past several pod-ttls, and it serves traffic', { timeout: 60000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'register-heartbeat', pods: 0 });
  const pod = await cluster.startPod('backend-0', { register: false });
  const sc = startSidecar(t, 'heartbeat', sidecarArgs(cluster, 'backend-0', `${HOST}:${pod.port}`, [
    '--capacity-rooms', '7', '--capacity-participants', '21', '--zone', 'e2e-a', '--drain-grace', '0s',
  ]));
  await cluster.waitPodsState(['backend-0'], 'ready', 5000);

  const first = (await getPod(cluster, 'backend-0')).json;
  assert.equal(first.address, `${HOST}:${pod.port}`);
  assert.deepEqual(first.capacity, { rooms: 7, participants: 21 });
  assert.equal(first.zone, 'e2e-a');

  // 10 s is more than three pod-ttls (3 s): without heartbeats it would be down.
  const until = Date.now() + 10000;
  let samples = 0;
  while (Date.now() < until) {
    const res = await getPod(cluster, 'backend-0');
    assert.equal(res.status, 200);
    assert.equal(res.json.state, 'ready', `sample ${samples}: ${res.text}`);
    assert.ok(res.json.last_seen_ms < 2000, `last_seen_ms ${res.json.last_seen_ms}`);
    samples++;
    await sleep(400);
  }
  assert.ok(samples >= 20);

  // The router routes to the pod the sidecar registered.
  const s = cluster.connect('/experiment', { roomId: `room_reg${Date.now().toString(36)}` });
  await waitConnected(s);
  assert.equal((await whoami(s)).pod, 'backend-0');

  assert.equal(sc.exitInfo, null, 'the sidecar keeps running');
  const lines = logLines(sc);
  assert.equal(lines.filter((l) => l.msg === 'registered').length, 1, 'registered once');
  assert.deepEqual(lines.filter((l) => l.level === 'warn' || l.level === 'error'), []);
  const info = await stopSidecar(sc);
  assert.deepEqual(info, { code: 0, signal: null });
  assertNoSanitizerReport(sc.logPath);
});

test('the sidecar survives a router restart on the same admin port and re-registers', { timeout: 60000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'register-restart', pods: 0 });
  const pod = await cluster.startPod('backend-0', { register: false });
  // A DNS name, resolved again on every reconnect.
  const args = sidecarArgs(cluster, 'backend-0', `${HOST}:${pod.port}`, ['--drain-grace', '0s']);
  args[1] = `http://localhost:${cluster.adminPort}`;
  const sc = startSidecar(t, 'restart', args);
  await cluster.waitPodsState(['backend-0'], 'ready', 5000);

  for (let round = 1; round <= 2; round++) {
    // Stop the router; keep its log next to the new one.
    cluster.signalRouter('SIGTERM');
    const exited = await Promise.race([cluster.router.exited, sleep(10000).then(() => null)]);
    if (!exited) {
      process.kill(cluster.router.pid, 'SIGKILL');
      await cluster.router.exited;
    }
    fs.copyFileSync(cluster.routerLog, `${cluster.routerLog}.${round}`);
    // Down for a while: the sidecar backs off (and never exits).
    await sleep(2500);
    assert.equal(sc.exitInfo, null, 'the sidecar is still running while the router is away');
    await cluster.startRouter();
    cluster.expectRouterExit = false;
    const t0 = Date.now();
    await cluster.waitPodsState(['backend-0'], 'ready', 6000);
    const took = Date.now() - t0;
    // Backoff is capped at max(--interval, 1 s): a few intervals at most.
    assert.ok(took < 3000, `re-registered ${took} ms after the router came back`);
  }

  const lines = logLines(sc);
  const unreachable = lines.filter((l) => l.msg === 'router unreachable');
  assert.ok(unreachable.length >= 2, 'router unreachable is logged');
  for (const l of unreachable) {
    assert.equal(l.level, 'warn');
    assert.ok(Number.isInteger(l.retry_in_ms) && l.retry_in_ms > 0 && l.retry_in_ms <= 1000, JSON.stringify(l));
  }
  assert.equal(lines.filter((l) => l.msg === 'registered').length, 3, 'registered at start and after each restart');

  // The restarted router still routes to the pod.
  const s = cluster.connect('/experiment', { roomId: `room_rst${Date.now().toString(36)}` });
  await waitConnected(s);
  assert.equal((await whoami(s)).pod, 'backend-0');
  assert.deepEqual(await stopSidecar(sc), { code: 0, signal: null });
  assertNoSanitizerReport(sc.logPath);
});

test('bearer token: the right one registers, a wrong one is logged and retried until the file is fixed', { timeout: 60000 }, async (t) => {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const tag = Date.now().toString(36);
  const goodToken = `e2e-good-${tag}-0123456789abcdef`;
  const wrongToken = `e2e-wrong-${tag}-fedcba9876543210`;
  const routerToken = path.join(OUT_DIR, `register-router-token-${tag}`);
  const goodFile = path.join(OUT_DIR, `register-good-token-${tag}`);
  const wrongFile = path.join(OUT_DIR, `register-wrong-token-${tag}`);
  fs.writeFileSync(routerToken, `${goodToken}\n`, { mode: 0o600 });
  fs.writeFileSync(goodFile, `${goodToken}\n`, { mode: 0o600 });
  fs.writeFileSync(wrongFile, `${wrongToken}\n`, { mode: 0o600 });
  t.after(() => {
    for (const f of [routerToken, goodFile, wrongFile]) fs.rmSync(f, { force: true });
  });

  const cluster = await startCluster(t, { name: 'register-token', pods: 0, routerArgs: ['--token-file', routerToken] });
  const pod0 = await cluster.startPod('backend-0', { register: false });
  const pod1 = await cluster.startPod('backend-1', { register: false });
  const good = startSidecar(t, 'token-good', sidecarArgs(cluster, 'backend-0', `${HOST}:${pod0.port}`, ['--token-file', goodFile, '--drain-grace', '0s']));
  const wrong = startSidecar(t, 'token-wrong', sidecarArgs(cluster, 'backend-1', `${HOST}:${pod1.port}`, ['--token-file', wrongFile, '--drain-grace', '0s']));
  await cluster.waitPodsState(['backend-0'], 'ready', 5000);

  // The wrong token: rejected (401), logged as an error, retried every interval.
  await waitFor(() => logLines(wrong).filter((l) => l.level === 'error' && l.status === 401).length >= 3, {
    timeoutMs: 5000,
    what: 'three logged 401 rejections',
  });
  assert.equal((await getPod(cluster, 'backend-1')).status, 404, 'a pod with a wrong token is not registered');
  assert.equal(wrong.exitInfo, null, 'the sidecar keeps retrying');
  const rejected = logLines(wrong).find((l) => l.status === 401);
  assert.match(rejected.msg, /token/);

  // Rotate the file (as a re-mounted Secret would): picked up without a restart.
  fs.writeFileSync(wrongFile, `${goodToken}\n`);
  const t0 = Date.now();
  await cluster.waitPodsState(['backend-1'], 'ready', 5000);
  assert.ok(Date.now() - t0 < 3000, 'the rotated token was read within a few intervals');

  // A write without the token is refused by this router: the sidecar's worked.
  const anon = await cluster.admin('PUT', '/v1/pods/backend-9', { body: { address: '127.0.0.1:9' } });
  assert.equal(anon.status, 401);

  assert.deepEqual(await stopSidecar(good), { code: 0, signal: null });
  assert.deepEqual(await stopSidecar(wrong), { code: 0, signal: null });
  assert.equal((await getPod(cluster, 'backend-0')).status, 404, 'DELETE carried the token');
  assert.equal((await getPod(cluster, 'backend-1')).status, 404);
  for (const sc of [good, wrong]) {
    const text = fs.readFileSync(sc.logPath, 'utf8');
    assert.ok(!text.includes(goodToken) && !text.includes(wrongToken), `a token appears in ${sc.logPath}`);
    assert.ok(!text.includes('Bearer'), `Bearer appears in ${sc.logPath}`);
    assertNoSanitizerReport(sc.logPath);
  }
});

test('SIGTERM: draining for --drain-grace while heartbeating, then deleted, exit 0', { timeout: 60000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'register-drain', pods: 0 });
  const pod = await cluster.startPod('backend-0', { register: false });
  const sc = startSidecar(t, 'drain', sidecarArgs(cluster, 'backend-0', `${HOST}:${pod.port}`, ['--drain-grace', '2s']));
  await cluster.waitPodsState(['backend-0'], 'ready', 5000);

  const t0 = Date.now();
  process.kill(sc.proc.pid, 'SIGTERM');
  await waitFor(async () => (await getPod(cluster, 'backend-0')).json?.state === 'draining', {
    timeoutMs: 1000,
    intervalMs: 20,
    what: 'backend-0 draining',
  });
  // Throughout the grace the pod stays draining and keeps being seen (heartbeats).
  const samples = [];
  while (!sc.exitInfo && Date.now() - t0 < 1700) {
    const res = await getPod(cluster, 'backend-0');
    samples.push(res.json ? `${res.json.state}/${res.json.last_seen_ms}` : String(res.status));
    assert.equal(res.status, 200, `during the grace: ${samples.join(' ')}`);
    assert.equal(res.json.state, 'draining', `during the grace: ${samples.join(' ')}`);
    assert.ok(res.json.last_seen_ms < 1500, `heartbeats continue: ${samples.join(' ')}`);
    await sleep(100);
  }
  assert.ok(samples.length >= 5);

  const info = await Promise.race([sc.exited, sleep(8000).then(() => null)]);
  const took = Date.now() - t0;
  assert.deepEqual(info, { code: 0, signal: null });
  assert.ok(took >= 1900 && took < 6000, `exited ${took} ms after SIGTERM (grace 2 s)`);
  const gone = await getPod(cluster, 'backend-0');
  assert.equal(gone.status, 404, `after exit: ${gone.status} ${gone.text}`);

  const msgs = logLines(sc).map((l) => l.msg);
  const i = msgs.indexOf('draining');
  const j = msgs.indexOf('deregistered');
  assert.ok(i >= 0 && j > i, `log order: ${msgs.join(', ')}`);
  assertNoSanitizerReport(sc.logPath);
});

test('SIGTERM with the router gone: bounded retries, exit 0', { timeout: 60000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'register-gone', pods: 0 });
  const sc = startSidecar(t, 'gone', sidecarArgs(cluster, 'backend-5', `${HOST}:9`, ['--drain-grace', '1s']));
  await cluster.waitPodsState(['backend-5'], 'ready', 5000);
  cluster.signalRouter('SIGKILL');
  await cluster.router.exited;
  await sleep(800);
  const t0 = Date.now();
  const info = await stopSidecar(sc, 15000);
  const took = Date.now() - t0;
  assert.deepEqual(info, { code: 0, signal: null });
  assert.ok(took < 10000, `exited ${took} ms after SIGTERM`);
  const msgs = logLines(sc).map((l) => l.msg);
  assert.ok(msgs.includes('router unreachable: giving up'), msgs.join(', '));
  assertNoSanitizerReport(sc.logPath);
});

// A stand-in for the backend's health endpoint whose answer the test sets:
// a status code, or 'close' (connection closed without an answer).
async function startHealthServer(t) {
  const http = require('node:http');
  const state = { answer: 503, hits: 0 };
  const server = http.createServer((req, res) => {
    state.hits++;
    if (state.answer === 'close') {
      req.socket.destroy();
      return;
    }
    res.writeHead(state.answer, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ status: state.answer === 200 ? 'ok' : 'starting' }));
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  state.url = `http://${HOST}:${server.address().port}/health`;
  return state;
}

test('--health-url: not registered while the backend is unhealthy, registered once healthy, down again when it fails (never drained)', { timeout: 60000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'register-health', pods: 0 });
  const pod = await cluster.startPod('backend-0', { register: false });
  const health = await startHealthServer(t);
  const sc = startSidecar(t, 'health', sidecarArgs(cluster, 'backend-0', `${HOST}:${pod.port}`, [
    '--health-url', health.url, '--drain-grace', '0s',
  ]));

  // Starting backend: four intervals of 503, the router never hears of the pod.
  await sleep(2000);
  assert.ok(health.hits >= 3, `${health.hits} health checks in 2 s at ${INTERVAL}`);
  let res = await getPod(cluster, 'backend-0');
  assert.equal(res.status, 404, `pod registered while its health URL answers 503: ${res.text}`);
  health.answer = 'close';
  await sleep(1200);
  assert.equal((await getPod(cluster, 'backend-0')).status, 404, 'registered while the health URL closes connections');

  // Healthy: registered within an interval or two, and it receives rooms.
  health.answer = 200;
  await cluster.waitPodsState(['backend-0'], 'ready', 5000);
  const s = cluster.connect('/experiment', { roomId: `room_health${Date.now().toString(36)}` });
  await waitConnected(s);
  assert.equal((await whoami(s)).pod, 'backend-0');
  s.close();

  // Crash loop: heartbeats stop, the router marks the pod down after its
  // --pod-ttl (3 s); the sidecar does not drain it.
  health.answer = 503;
  const failedAt = Date.now();
  await cluster.waitPodsState(['backend-0'], 'down', 3000 + 2000 + 3000);
  const tookMs = Date.now() - failedAt;
  assert.ok(tookMs >= 2000, `down after ${tookMs} ms, before the pod-ttl could have passed`);
  res = await getPod(cluster, 'backend-0');
  assert.equal(res.json.state, 'down');

  // Back up: the next heartbeat makes it ready again (a drained pod would stay draining).
  health.answer = 200;
  await cluster.waitPodsState(['backend-0'], 'ready', 5000);

  const lines = logLines(sc);
  assert.ok(lines.some((l) => l.msg === 'backend not healthy yet: not registering'), 'logs the wait for health');
  assert.ok(lines.some((l) => l.level === 'warn' && /^backend unhealthy: heartbeats stopped/.test(l.msg)), 'warns when health fails');
  assert.equal(lines.filter((l) => l.msg === 'draining').length, 0, 'an unhealthy backend is not drained');
  const info = await stopSidecar(sc);
  assert.deepEqual(info, { code: 0, signal: null });
  assertNoSanitizerReport(sc.logPath);
});

test('bad flags exit 2 with one line naming the flag', { timeout: 30000 }, () => {
  const base = ['register', '--admin-url', 'http://127.0.0.1:1', '--name', 'backend-0', '--address', '127.0.0.1:3000'];
  const cases = [
    { args: ['register', '--name', 'backend-0', '--address', '127.0.0.1:3000'], flag: '--admin-url' },
    { args: ['register', '--admin-url', 'https://x:3002', '--name', 'backend-0', '--address', '127.0.0.1:3000'], flag: '--admin-url' },
    { args: ['register', '--admin-url', 'http://x:3002', '--address', '127.0.0.1:3000'], flag: '--name' },
    { args: ['register', '--admin-url', 'http://x:3002', '--name', 'Backend_0', '--address', '127.0.0.1:3000'], flag: '--name' },
    { args: ['register', '--admin-url', 'http://x:3002', '--name', 'backend-0'], flag: '--address' },
    { args: ['register', '--admin-url', 'http://x:3002', '--name', 'backend-0', '--address', 'nope'], flag: '--address' },
    { args: [...base, '--interval', 'soon'], flag: '--interval' },
    { args: [...base, '--drain-grace', '-1s'], flag: '--drain-grace' },
    { args: [...base, '--capacity-rooms', '0'], flag: '--capacity-rooms' },
    { args: [...base, '--capacity-participants', 'many'], flag: '--capacity-participants' },
    { args: [...base, '--token-file', '/nonexistent/token'], flag: '--token-file' },
    { args: [...base, '--bogus', '1'], flag: '--bogus' },
  ];
  for (const c of cases) {
    const r = spawnSync(ROUTER_BIN, c.args, { env: childEnv(), encoding: 'utf8', timeout: 10000 });
    const shown = `${c.args.slice(1).join(' ')} -> ${r.status} ${JSON.stringify(r.stderr)}`;
    assert.equal(r.status, 2, shown);
    assert.ok(r.stderr.includes(c.flag), shown);
    assert.doesNotMatch(r.stderr, /Sanitizer|runtime error:/, shown);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.equal(lines.length, 1, shown);
    assert.equal(r.stdout, '', shown);
  }
  // --help is not an error.
  const help = spawnSync(ROUTER_BIN, ['register', '--help'], { env: childEnv(), encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--drain-grace/);
});
