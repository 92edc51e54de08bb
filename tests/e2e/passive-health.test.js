'use strict';
// Passive failure detection (--pod-fall, --pod-check-interval): a killed pod whose heartbeat
// has not expired is marked down after its failed connects, its rooms move on their next
// use, a TCP probe brings it back; with --pod-fall 0 the old behaviour (down only when the
// heartbeat expires). The heartbeats come from the test (fakePod) so that they go on while
// the pod process is dead, as with a sidecar or an orchestrator that still reports it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitFor, sleep, freePort } = require('./lib/cluster');
const { startRedis, startReplicas } = require('./lib/redis');

const CHECK_MS = 500;

function uniq() {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

// Two example pods, heartbeated by the test with a long --pod-ttl.
async function twoPods(t, name, routerArgs) {
  const cluster = await startCluster(t, {
    name,
    pods: 2,
    register: false,
    routerArgs: ['--pod-ttl', '30s', '--pod-check-interval', `${CHECK_MS}ms`, ...routerArgs],
  });
  for (const [podName, pod] of cluster.pods) await cluster.fakePod(podName, `127.0.0.1:${pod.port}`, { intervalMs: 300 });
  await cluster.waitPodsState(['backend-0', 'backend-1'], 'ready');
  return cluster;
}

// A room (its state URL carries the room key) placed on pod `want`.
async function roomOn(cluster, want, tag) {
  for (let i = 0; i < 40; i++) {
    const roomId = `room_ph${tag}_${i}`;
    const res = await cluster.get(`/api/room/${roomId}/state`);
    assert.equal(res.status, 200, `${roomId}: ${res.status} ${res.text}`);
    if (res.json.pod === want) return roomId;
  }
  throw new Error(`no room landed on ${want}`);
}

async function markedDown(cluster, pod) {
  const res = await cluster.admin('GET', '/metrics');
  const m = new RegExp(`^podrouter_pod_marked_down_total\\{pod="${pod}",reason="unreachable"\\} (\\d+)$`, 'm').exec(res.text);
  return m ? Number(m[1]) : null;
}

test('a killed pod is marked down after 2 failed connects, its room moves, a probe brings it back', { timeout: 60000 }, async (t) => {
  const cluster = await twoPods(t, 'passive-health', []);
  const tag = uniq();
  const roomId = await roomOn(cluster, 'backend-0', tag);
  const hs = await cluster.get(`/socket.io/?EIO=4&transport=polling&roomId=${roomId}`);
  assert.equal(hs.status, 200);
  const sid = JSON.parse(hs.text.slice(1)).sid;
  assert.equal(await markedDown(cluster, 'backend-0'), 0);

  await cluster.kill('backend-0', 'SIGKILL');
  const statuses = [];
  let servedBy = null;
  for (let i = 0; i < 2 && servedBy !== 'backend-1'; i++) {
    const res = await cluster.get(`/api/room/${roomId}/state`);
    statuses.push(res.status);
    if (res.status === 200) servedBy = res.json.pod;
  }
  t.diagnostic(`after the kill: ${statuses.join(', ')}`);
  assert.equal(servedBy, 'backend-1', `the room is served by backend-1 within 2 requests (${statuses.join(', ')})`);
  const room = await cluster.admin('GET', `/v1/rooms/${roomId}`);
  assert.equal(room.json.pod, 'backend-1', '/v1/rooms says backend-1');

  const pods = await cluster.podsByName();
  assert.equal(pods.get('backend-0').state, 'down');
  assert.equal(pods.get('backend-0').down_reason, 'unreachable');
  assert.ok(pods.get('backend-0').expires_in_ms > 0, 'its heartbeat has not expired');
  assert.equal(pods.get('backend-1').state, 'ready');
  assert.equal(pods.get('backend-1').down_reason, undefined, 'a ready pod has no down_reason');
  assert.equal(await markedDown(cluster, 'backend-0'), 1);
  assert.equal(await markedDown(cluster, 'backend-1'), 0);

  // The sid pinned to the dead pod is not moved: Engine.IO's own answer, the client
  // re-handshakes.
  const pinned = await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}&roomId=${roomId}`);
  assert.equal(pinned.status, 400);
  assert.match(pinned.text, /Session ID unknown/);

  // Still down while its heartbeat goes on (same address): the probe decides.
  await sleep(3 * CHECK_MS);
  assert.equal((await cluster.podsByName()).get('backend-0').state, 'down');
  for (let i = 0; i < 5; i++) {
    const res = await cluster.get(`/api/room/${roomId}/state`);
    assert.equal(res.json.pod, 'backend-1', 'the room stays on backend-1');
  }

  // Back on the same port: ready again within about two check intervals.
  await cluster.startPod('backend-0', { register: false });
  const upAt = Date.now();
  await cluster.waitPodsState(['backend-0'], 'ready', 4 * CHECK_MS + 1000);
  const took = Date.now() - upAt;
  t.diagnostic(`backend-0 ready ${took} ms after it answered again`);
  assert.ok(took <= 2 * CHECK_MS + 500, `ready within ~2 x --pod-check-interval (took ${took} ms)`);
  assert.equal((await cluster.podsByName()).get('backend-0').down_reason, undefined);
  const res = await cluster.get(`/api/room/${roomId}/state`);
  assert.equal(res.json.pod, 'backend-1', 'nothing moves back');
  const fresh = await roomOn(cluster, 'backend-0', `${tag}n`);
  assert.ok(fresh, 'new rooms are placed on backend-0 again');
});

test('--pod-fall 0: a killed pod keeps its rooms until its heartbeat expires', { timeout: 60000 }, async (t) => {
  const cluster = await twoPods(t, 'passive-health-off', ['--pod-fall', '0']);
  const roomId = await roomOn(cluster, 'backend-0', uniq());
  await cluster.kill('backend-0', 'SIGKILL');
  for (let i = 0; i < 6; i++) {
    const res = await cluster.get(`/api/room/${roomId}/state`);
    assert.equal(res.status, 502, `request ${i + 1}: ${res.status}`);
  }
  const pods = await cluster.podsByName();
  assert.equal(pods.get('backend-0').state, 'ready');
  assert.equal((await cluster.admin('GET', `/v1/rooms/${roomId}`)).json.pod, 'backend-0');
  assert.equal(await markedDown(cluster, 'backend-0'), 0);
});

test('Redis store, two replicas: replica A detects the dead pod, both route its room to the same pod', { timeout: 90000 }, async (t) => {
  const redis = await startRedis(t, 'passive-health');
  const { a, b } = await startReplicas(t, 'passive-health-redis', `redis://127.0.0.1:${redis.port}`, {
    pods: 2,
    routerArgs: ['--pod-ttl', '30s', '--pod-check-interval', `${CHECK_MS}ms`],
  });
  const tag = uniq();
  const roomId = await roomOn(a, 'backend-0', tag);
  const viaB = await b.get(`/api/room/${roomId}/state`);
  assert.equal(viaB.json.pod, 'backend-0', 'B routes the room like A');

  await a.kill('backend-0', 'SIGKILL');
  let servedBy = null;
  for (let i = 0; i < 2 && servedBy !== 'backend-1'; i++) {
    const res = await a.get(`/api/room/${roomId}/state`);
    if (res.status === 200) servedBy = res.json.pod;
  }
  assert.equal(servedBy, 'backend-1', 'A moved the room within 2 requests');
  assert.equal(JSON.parse(await redis.cli('GET', `room:${roomId}:pod`)).podId, 'backend-1');
  assert.equal((await a.podsByName()).get('backend-0').down_reason, 'unreachable');

  // B never failed a connect itself: it follows the store (or, routing to the dead pod
  // from its own cache, marks it down after 2 failures and loses the compare-and-set).
  let bServed = null;
  const bStatuses = [];
  for (let i = 0; i < 3 && bServed === null; i++) {
    const res = await b.get(`/api/room/${roomId}/state`);
    bStatuses.push(res.status);
    if (res.status === 200) bServed = res.json.pod;
  }
  t.diagnostic(`replica B after the move: ${bStatuses.join(', ')}`);
  assert.equal(bServed, 'backend-1', `B routes the room to backend-1 (${bStatuses.join(', ')})`);
  for (let i = 0; i < 5; i++) {
    const [ra, rb] = await Promise.all([a.get(`/api/room/${roomId}/state`), b.get(`/api/room/${roomId}/state`)]);
    assert.equal(ra.json.pod, 'backend-1');
    assert.equal(rb.json.pod, 'backend-1');
  }
  assert.equal(JSON.parse(await redis.cli('GET', `room:${roomId}:pod`)).podId, 'backend-1', 'one assignment');
  const roomB = await b.admin('GET', `/v1/rooms/${roomId}`);
  assert.equal(roomB.json.pod, 'backend-1');
  await waitFor(async () => (await a.podsByName()).get('backend-0').state === 'down', { timeoutMs: 2000, what: 'A: backend-0 down' });
});

test('the only pod refuses: 502 twice, then it is down and requests get 503 no_pod', { timeout: 30000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'passive-health-only', pods: 0 });
  await cluster.fakePod('dead-0', `127.0.0.1:${await freePort()}`);
  await cluster.waitPodsState(['dead-0'], 'ready');
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await cluster.get(`/api/room/room_only${i}/state`)).status);
  assert.deepEqual(statuses, [502, 502, 503, 503]);
  const pods = await cluster.podsByName();
  assert.equal(pods.get('dead-0').state, 'down');
  assert.equal(pods.get('dead-0').down_reason, 'unreachable');
  const log = require('node:fs').readFileSync(cluster.routerLog, 'utf8');
  const lines = log.split('\n').filter((l) => l.includes('"pod marked down"'));
  assert.equal(lines.length, 1, 'one warn line when the pod is marked down');
  const rec = JSON.parse(lines[0]);
  assert.equal(rec.level, 'warn');
  assert.equal(rec.pod, 'dead-0');
  assert.equal(rec.reason, 'unreachable');
  assert.equal(rec.failures, 2);
});
