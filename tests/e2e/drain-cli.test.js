'use strict';
// `pod-router drain` (SPEC 2): exit codes, --wait-empty with an active room that goes idle,
// the timeout while a room stays active, tokens and POD_ROUTER_* variables.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startCluster, ROUTER_BIN, freePort, sleep } = require('./lib/cluster');

// Runs `pod-router drain args...`; resolves {code, stderr, stdout, ms}. Killed after limitMs.
function drain(args, { env = {}, limitMs = 60000 } = {}) {
  return new Promise((resolve) => {
    const start = Date.now();
    const base = { ...process.env };
    for (const k of Object.keys(base)) if (k.startsWith('POD_ROUTER_')) delete base[k];
    const child = spawn(ROUTER_BIN, ['drain', ...args], { env: { ...base, ...env } });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdout.on('data', (d) => { stdout += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, stdout, ms: Date.now() - start });
    });
  });
}

const ACTIVE = '2s';

// A room made active (two requests: the second use makes it live and active) on some pod.
async function activeRoom(cluster, roomId) {
  const r1 = await cluster.get(`/api/room/${roomId}/state`);
  assert.equal(r1.status, 200);
  const r2 = await cluster.get(`/api/room/${roomId}/state`);
  assert.equal(r2.status, 200);
  const pod = r2.headers['x-pod-router-pod'];
  assert.equal(pod, r1.headers['x-pod-router-pod']);
  return pod;
}

test('drain CLI: usage errors exit 2, unknown pod 4, unreachable router 1', async (t) => {
  const cluster = await startCluster(t, { name: 'drain-cli-codes', pods: 1 });
  let r = await drain([]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--admin-url/);
  r = await drain(['--admin-url', cluster.adminUrl]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /NAME/);
  r = await drain(['--admin-url', cluster.adminUrl, '--timeout', 'soon', 'backend-0']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--timeout/);
  r = await drain(['--admin-url', cluster.adminUrl, 'Bad_Name']);
  assert.equal(r.code, 2, r.stderr);
  r = await drain(['--admin-url', cluster.adminUrl, '--token-file', '/nonexistent/token', 'backend-0']);
  assert.equal(r.code, 2, r.stderr);
  r = await drain(['--admin-url', 'ftp://x', 'backend-0']);
  assert.equal(r.code, 2, r.stderr);
  r = await drain(['--admin-url', cluster.adminUrl, 'backend-9']);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /not registered/);
  const closed = await freePort();
  r = await drain(['--admin-url', `http://127.0.0.1:${closed}`, 'backend-0']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /unreachable/);
  r = await drain(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--wait-empty/);
  // the pod was never drained by the failed attempts
  const pods = await cluster.podsByName();
  assert.equal(pods.get('backend-0').state, 'ready');
});

test('drain CLI: without --wait-empty it drains and returns at once (env variables work)', async (t) => {
  const cluster = await startCluster(t, { name: 'drain-cli-plain', pods: 2, routerArgs: ['--room-active', ACTIVE] });
  const pod = await activeRoom(cluster, `room_plain_${Date.now()}`);
  const r = await drain([pod], { env: { POD_ROUTER_ADMIN_URL: cluster.adminUrl } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /is draining/);
  const pods = await cluster.podsByName();
  assert.equal(pods.get(pod).state, 'draining');
  assert.equal(pods.get(pod).load.rooms, 1, 'its active room keeps running');
});

test('drain CLI: --wait-empty waits for the active room to go idle, then exits 0', { timeout: 60000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'drain-cli-wait', pods: 2, routerArgs: ['--room-active', ACTIVE] });
  const roomId = `room_wait_${Date.now()}`;
  const pod = await activeRoom(cluster, roomId);
  const before = await cluster.podsByName();
  assert.equal(before.get(pod).load.rooms, 1);
  // Keep the room busy for ~2 s more, then let it go idle.
  const busyUntil = Date.now() + 2000;
  const keepBusy = (async () => {
    while (Date.now() < busyUntil) {
      const res = await cluster.get(`/api/room/${roomId}/state`);
      assert.equal(res.headers['x-pod-router-pod'], pod, 'a draining pod keeps its room');
      await sleep(200);
    }
  })();
  const r = await drain(['--admin-url', cluster.adminUrl, '--wait-empty', '--timeout', '30s',
    '--poll-interval', '200ms', pod]);
  await keepBusy;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`${pod} draining: 1 active room`));
  assert.match(r.stderr, /holds no active room/);
  // busy for 2 s, then idle for --room-active (2 s): at least ~3.5 s of waiting
  assert.ok(r.ms >= 3500, `returned after ${r.ms} ms, before the room went idle`);
  const after = await cluster.podsByName();
  assert.equal(after.get(pod).load.rooms, 0);
  assert.equal(after.get(pod).state, 'draining');
  // the idle room still has its pod
  const again = await cluster.admin('GET', `/v1/rooms/${roomId}`);
  assert.equal(again.status, 200);
  assert.equal(again.json.pod, pod);
});

test('drain CLI: --wait-empty times out with exit 3 while the room stays active', { timeout: 60000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'drain-cli-timeout', pods: 2, routerArgs: ['--room-active', ACTIVE] });
  const roomId = `room_busy_${Date.now()}`;
  const pod = await activeRoom(cluster, roomId);
  let stop = false;
  const keepBusy = (async () => {
    while (!stop) {
      await cluster.get(`/api/room/${roomId}/state`);
      await sleep(250);
    }
  })();
  const r = await drain(['--admin-url', cluster.adminUrl, '--wait-empty', '--timeout', '3s',
    '--poll-interval', '250ms', pod]);
  stop = true;
  await keepBusy;
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /timed out/);
  assert.ok(r.ms >= 2900, `gave up after ${r.ms} ms`);
  const pods = await cluster.podsByName();
  assert.equal(pods.get(pod).state, 'draining', 'it stays draining');
  assert.equal(pods.get(pod).load.rooms, 1, 'and its room keeps running');
});

test('drain CLI: --token-file is sent as a bearer token; without it the router refuses (exit 1)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drain-cli-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, 'drain-secret-token\n');
  const cluster = await startCluster(t, { name: 'drain-cli-token', pods: 1, tokenFile, routerArgs: ['--token-file', tokenFile] });
  let r = await drain(['--admin-url', cluster.adminUrl, 'backend-0']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /refused the drain: 401/);
  r = await drain(['backend-0'], { env: { POD_ROUTER_ADMIN_URL: cluster.adminUrl, POD_ROUTER_TOKEN_FILE: tokenFile } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await cluster.podsByName()).get('backend-0').state, 'draining');
  assert.equal(r.stderr.includes('drain-secret-token'), false);
});
