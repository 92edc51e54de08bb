'use strict';
// --placement pack (SPEC 5) and desired replicas (SPEC 5.1) through the real router: rooms
// fill the lowest StatefulSet ordinals up to --pack-utilization, desiredReplicas follows the
// active rooms (and drops once they go idle), and is the same on two replicas sharing Redis.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitFor } = require('./lib/cluster');
const { startRedis, startReplicas } = require('./lib/redis');

// A room used twice (created, then its second use makes it live and active); returns its pod.
async function useRoom(c, roomId, other = c) {
  const r1 = await c.get(`/api/room/${roomId}/state`);
  assert.equal(r1.status, 200);
  const r2 = await other.get(`/api/room/${roomId}/state`);
  assert.equal(r2.status, 200);
  assert.equal(r2.headers['x-pod-router-pod'], r1.headers['x-pod-router-pod']);
  return r1.headers['x-pod-router-pod'];
}

function metric(text, name) {
  const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

test('pack: 35 rooms fill backend-0 and backend-1 to 15 (0.75 x 20), then backend-2; desired replicas follow', { timeout: 60000 }, async (t) => {
  const c = await startCluster(t, { name: 'placement-pack', pods: 4, routerArgs: ['--placement', 'pack', '--room-active', '3s'] });
  const tag = Date.now().toString(36);
  const count = new Map();
  for (let i = 0; i < 35; i++) {
    const pod = await useRoom(c, `room_pack_${tag}_${i}`);
    count.set(pod, (count.get(pod) || 0) + 1);
  }
  assert.deepEqual(Object.fromEntries([...count].sort()), { 'backend-0': 15, 'backend-1': 15, 'backend-2': 5 });
  const pods = await c.podsByName();
  assert.equal(pods.get('backend-0').load.rooms, 15);
  assert.equal(pods.get('backend-3').load.rooms, 0);
  // H = 2 -> 3 pods, ceil(35 / 15) = 3, + 1 headroom = 4
  const cl = (await c.admin('GET', '/v1/cluster')).json;
  assert.equal(cl.activeRooms, 35);
  assert.equal(cl.desiredReplicas, 4);
  const m = (await c.admin('GET', '/metrics')).text;
  assert.equal(metric(m, 'podrouter_backend_desired_replicas'), 4);
  assert.equal(metric(m, 'podrouter_rooms_interrupted_total'), 0);
  // idle for --room-active: no load, desired back to --min-replicas
  await waitFor(async () => (await c.admin('GET', '/v1/cluster')).json.activeRooms === 0, { timeoutMs: 8000, what: 'rooms idle' });
  assert.equal((await c.admin('GET', '/v1/cluster')).json.desiredReplicas, 3);
  // rooms keep their pods while idle
  const again = await c.get(`/api/room/room_pack_${tag}_34/state`);
  assert.equal(again.headers['x-pod-router-pod'], 'backend-2');
});

test('pack: a draining pod is skipped; killing a pod with active rooms counts them as interrupted', { timeout: 60000 }, async (t) => {
  const c = await startCluster(t, { name: 'placement-drain', pods: 3, routerArgs: ['--placement', 'pack', '--room-active', '1m'] });
  const tag = Date.now().toString(36);
  assert.equal((await c.admin('POST', '/v1/pods/backend-0/drain')).status, 200);
  const first = await useRoom(c, `room_d_${tag}_0`);
  assert.equal(first, 'backend-1', 'the lowest ready ordinal');
  await useRoom(c, `room_d_${tag}_1`);
  await c.kill('backend-1');
  await waitFor(async () => {
    const m = (await c.admin('GET', '/metrics')).text;
    return metric(m, 'podrouter_rooms_interrupted_total') === 2;
  }, { timeoutMs: 10000, what: 'two interrupted rooms counted' });
  assert.equal((await c.admin('GET', '/v1/cluster')).json.roomsInterrupted, 2);
});

test('least-loaded stays the default', { timeout: 60000 }, async (t) => {
  const c = await startCluster(t, { name: 'placement-default', pods: 3, routerArgs: ['--room-active', '1m'] });
  const tag = Date.now().toString(36);
  const pods = new Set();
  for (let i = 0; i < 6; i++) pods.add(await useRoom(c, `room_ll_${tag}_${i}`));
  assert.equal(pods.size, 3, 'rooms spread over every pod');
});

test('desired replicas: the same on two replicas sharing Redis', { timeout: 90000 }, async (t) => {
  const redis = await startRedis(t, 'placement');
  const { a, b } = await startReplicas(t, 'placement-redis', `redis://127.0.0.1:${redis.port}`, {
    pods: 4, routerArgs: ['--placement', 'pack', '--room-active', '1m', '--min-replicas', '1'],
  });
  const tag = Date.now().toString(36);
  // rooms used through both replicas: 10 via A, 10 via B, each room's second use on the other
  for (let i = 0; i < 20; i++) {
    const [x, y] = i % 2 ? [a, b] : [b, a];
    await useRoom(x, `room_shared_${tag}_${i}`, y);
  }
  // 20 active rooms over all replicas: ceil(20 / 15) = 2 (+1) on both
  await waitFor(async () => {
    const [ca, cb] = await Promise.all([a.admin('GET', '/v1/cluster'), b.admin('GET', '/v1/cluster')]);
    return ca.json.activeRooms === 20 && cb.json.activeRooms === 20;
  }, { timeoutMs: 8000, what: 'both replicas see 20 active rooms' });
  const [ca, cb] = await Promise.all([a.admin('GET', '/v1/cluster'), b.admin('GET', '/v1/cluster')]);
  assert.equal(ca.json.desiredReplicas, cb.json.desiredReplicas);
  assert.ok(ca.json.desiredReplicas >= 3, `desired ${ca.json.desiredReplicas}`);
  const [ma, mb] = await Promise.all([a.admin('GET', '/metrics'), b.admin('GET', '/metrics')]);
  assert.equal(metric(ma.text, 'podrouter_backend_desired_replicas'), metric(mb.text, 'podrouter_backend_desired_replicas'));
  // and the pods' active loads agree
  const [pa, pb] = await Promise.all([a.podsByName(), b.podsByName()]);
  for (const [name, p] of pa) assert.equal(p.load.rooms, pb.get(name).load.rooms, `${name} rooms`);
  // Redis holds the shared activity, one field per active room
  assert.equal(Number(await redis.cli('HLEN', 'podrouter:active')), 20);
});

test('a room whose participants talk only over WebSocket stays active; it goes idle once they leave', { timeout: 60000 }, async (t) => {
  const { waitConnected, sleep } = require('./lib/cluster');
  const c = await startCluster(t, { name: 'placement-ws', pods: 2, routerArgs: ['--room-active', '2s'] });
  const roomId = `room_ws_${Date.now().toString(36)}`;
  await useRoom(c, roomId); // created and live
  const sock = c.connect('/', { roomId, participantId: 'p1', transports: ['websocket'] });
  await waitConnected(sock);
  // Only tunnel bytes for 5 s (> 2 x --room-active): the room must stay active.
  const ticker = setInterval(() => sock.emit('echo', 'x', () => {}), 300);
  try {
    for (let i = 0; i < 10; i++) {
      await sleep(500);
      assert.equal((await c.admin('GET', '/v1/cluster')).json.activeRooms, 1, `active after ${(i + 1) * 500} ms of WebSocket-only traffic`);
    }
  } finally {
    clearInterval(ticker);
    sock.close();
  }
  await waitFor(async () => (await c.admin('GET', '/v1/cluster')).json.activeRooms === 0, { timeoutMs: 8000, what: 'room idle after the tunnel closed' });
});
