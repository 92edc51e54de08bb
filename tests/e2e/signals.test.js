'use strict';
// Process behaviour: graceful drain on SIGTERM/SIGINT, SIGHUP ignored, bad
// configuration exits 2 with one line naming the flag, --version.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Cluster, REPO, ROUTER_BIN, request, freePort, waitFor, waitConnected, sleep, tail } = require('./lib/cluster');

// Resolves 'refused' if a TCP connect to port is refused, else what happened.
function tryConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('accepted-silent');
    }, 500);
    sock.on('connect', () => {
      sock.write('GET /healthz HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n');
    });
    sock.on('data', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('served');
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED' ? 'refused' : err.code);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve('accepted-closed');
    });
  });
}

function withTimeout(promise, ms, what) {
  return Promise.race([promise, sleep(ms).then(() => { throw new Error(`${what}: not within ${ms} ms`); })]);
}

test('SIGTERM drains: readyz 503, in-flight request completes, listener closed, exit 0', { timeout: 60000 }, async (t) => {
  const cluster = new Cluster('signals-sigterm', { pods: 1, routerArgs: ['--drain-timeout', '5s'] });
  t.after(() => cluster.stop());
  await cluster.start();
  const ready = await cluster.admin('GET', '/readyz');
  assert.equal(ready.status, 200);
  assert.equal(ready.json.status, 'ready');

  const slow = request(`${cluster.routerUrl}/api/slow?ms=1500`, { timeoutMs: 10000 });
  await sleep(300);
  const sigAt = Date.now();
  cluster.signalRouter('SIGTERM');

  const draining = await waitFor(async () => {
    const r = await cluster.admin('GET', '/readyz', { timeoutMs: 1000 });
    return r.status === 503 ? r : null;
  }, { timeoutMs: 1000, intervalMs: 25, what: '/readyz 503 after SIGTERM' });
  assert.deepEqual(draining.json, { status: 'draining' });

  const outcome = await waitFor(async () => {
    const o = await tryConnect(cluster.routerPort);
    return o === 'refused' ? o : null;
  }, { timeoutMs: 1000, intervalMs: 50, what: 'new public connections to be refused' });
  assert.equal(outcome, 'refused');

  const res = await slow;
  assert.equal(res.status, 200, 'the in-flight request completes');
  assert.deepEqual(res.json, { pod: 'backend-0', ms: 1500 });

  const exit = await withTimeout(cluster.router.exited, 5000 + 2000 - (Date.now() - sigAt), 'router exit after SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `exit status 0\n${tail(cluster.routerLog)}`);
  t.diagnostic(`exited ${Date.now() - sigAt} ms after SIGTERM`);
});

test('SIGINT with an open WebSocket tunnel exits 0 within --drain-timeout', { timeout: 60000 }, async (t) => {
  const cluster = new Cluster('signals-sigint-tunnel', { pods: 1, routerArgs: ['--drain-timeout', '3s'] });
  t.after(() => cluster.stop());
  await cluster.start();
  const s = cluster.connect('/experiment', { roomId: 'room_sigint', transports: ['websocket'] });
  await waitConnected(s);
  assert.equal((await s.timeout(3000).emitWithAck('echo', 'before')), 'before');
  const sigAt = Date.now();
  cluster.signalRouter('SIGINT');
  // The tunnel may keep working during the drain window.
  const exit = await withTimeout(cluster.router.exited, 3000 + 2000, 'router exit after SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, `exit status 0\n${tail(cluster.routerLog)}`);
  t.diagnostic(`exited ${Date.now() - sigAt} ms after SIGINT`);
});

test('SIGHUP is ignored', { timeout: 30000 }, async (t) => {
  const cluster = new Cluster('signals-sighup', { pods: 1 });
  t.after(() => cluster.stop());
  await cluster.start();
  process.kill(cluster.router.pid, 'SIGHUP');
  await sleep(500);
  assert.equal(cluster.router.exitInfo, null, 'still running');
  assert.equal((await cluster.admin('GET', '/healthz')).status, 200);
  assert.equal((await cluster.admin('GET', '/readyz')).status, 200);
  assert.equal((await cluster.get('/api/room/room_hup/state')).status, 200);
});

test('bad configuration exits 2 with one stderr line naming the flag', { timeout: 60000 }, async () => {
  assert.ok(fs.existsSync(ROUTER_BIN), `router binary at ${ROUTER_BIN}`);
  const listen = `127.0.0.1:${await freePort()}`;
  const admin = `127.0.0.1:${await freePort()}`;
  const safe = ['--listen', listen, '--admin-listen', admin];
  const cases = [
    { args: ['serve', ...safe, '--no-such-flag'], names: ['no-such-flag'] },
    { args: ['serve', ...safe, '--pod-ttl', 'soon'], names: ['pod-ttl'] },
    { args: ['serve', ...safe, '--idle-timeout', '10parsecs'], names: ['idle-timeout'] },
    { args: ['serve', '--admin-listen', admin, '--listen', '127.0.0.1:99999'], names: ['listen'] },
    { args: ['serve', ...safe, '--store', 'mongodb://127.0.0.1'], names: ['store'] },
    { args: ['serve', ...safe, '--log-level', 'chatty'], names: ['log-level'] },
    { args: ['serve', ...safe, '--max-connections', 'lots'], names: ['max-connections'] },
    { args: ['serve', ...safe], env: { POD_ROUTER_POD_TTL: 'bogus' }, names: ['pod-ttl', 'POD_ROUTER_POD_TTL'] },
  ];
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('POD_ROUTER_')) env[k] = v;
  for (const c of cases) {
    const r = spawnSync(ROUTER_BIN, c.args, { env: { ...env, ...(c.env || {}) }, timeout: 5000, killSignal: 'SIGKILL', encoding: 'utf8' });
    const what = `${c.env ? JSON.stringify(c.env) + ' ' : ''}${c.args.join(' ')}`;
    assert.equal(r.status, 2, `${what}: exit status 2 (got ${r.status}, signal ${r.signal}; stderr ${JSON.stringify(r.stderr)})`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${what}: one line on stderr (got ${JSON.stringify(r.stderr)})`);
    assert.ok(c.names.some((n) => lines[0].includes(n)), `${what}: the line names the flag (got ${JSON.stringify(lines[0])})`);
  }
});

test('--version prints the version', { timeout: 10000 }, () => {
  const meson = fs.readFileSync(path.join(REPO, 'meson.build'), 'utf8');
  const version = (/version\s*:\s*'([^']+)'/.exec(meson) || [])[1];
  const r = spawnSync(ROUTER_BIN, ['--version'], { timeout: 5000, killSignal: 'SIGKILL', encoding: 'utf8' });
  assert.equal(r.status, 0, `exit 0 (stderr ${JSON.stringify(r.stderr)})`);
  assert.ok(version, 'version in meson.build');
  assert.ok(r.stdout.includes(version), `stdout names version ${version} (got ${JSON.stringify(r.stdout)})`);
});
