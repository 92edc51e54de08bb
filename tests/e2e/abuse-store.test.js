'use strict';
// SPEC 3.6 tentative assignments and --max-assignments: a flood of one-shot room keys (from
// loopback, so never rate limited) leaves nothing behind once --room-active has passed,
// neither in the memory store nor in Redis, and adds no load; a room used twice stays.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startCluster, request, sleep, waitFor } = require('./lib/cluster');
const { startRedis, startReplicas } = require('./lib/redis');

const FLOOD = 5000;
const ACTIVE = '2s';

// FLOOD one-shot requests, each with a new room key, alternating over the given clusters.
async function flood(clusters, tag) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let i = 0;
  const codes = {};
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (i < FLOOD) {
      const k = i++;
      const c = clusters[k % clusters.length];
      const res = await request(`${c.routerUrl}/api/room/room_flood_${tag}_${k}/state`, { agent });
      codes[res.status] = (codes[res.status] || 0) + 1;
    }
  }));
  agent.destroy();
  return codes;
}

async function cluster(c) {
  const res = await c.admin('GET', '/v1/cluster');
  assert.equal(res.status, 200);
  return res.json;
}

test('memory store: 5,000 one-shot room keys are gone after --room-active; a room used twice stays', { timeout: 120000 }, async (t) => {
  const c = await startCluster(t, { name: 'abuse-store-memory', pods: 3, routerArgs: ['--room-active', ACTIVE] });
  const tag = Date.now().toString(36);
  const kept = `room_kept_${tag}`;
  const base = await cluster(c);
  const first = await c.get(`/api/room/${kept}/state`);
  const second = await c.get(`/api/room/${kept}/state`);
  const codes = await flood([c], tag);
  assert.deepEqual(codes, { 200: FLOOD }, 'every flood request is routed');
  assert.equal(second.headers['x-pod-router-pod'], first.headers['x-pod-router-pod']);
  const during = await cluster(c);
  // The flood outlasts --room-active here, so its first keys are already gone: the last
  // ones are stored, tentatively.
  const last = await c.admin('GET', `/v1/rooms/room_flood_${tag}_${FLOOD - 1}`);
  assert.equal(last.status, 200, 'the flood\'s newest keys are stored meanwhile');
  assert.ok(during.rooms >= 100, `the flood's keys are stored meanwhile (${during.rooms})`);
  assert.ok(during.activeRooms <= 1, `one-shot keys are no load (activeRooms ${during.activeRooms})`);
  const pods = (await c.admin('GET', '/v1/pods')).json.pods;
  assert.ok(pods.reduce((n, p) => n + p.load.rooms, 0) <= 1);
  // After --room-active (2 s) plus the 1 s housekeeping, the store is back near its baseline.
  await waitFor(async () => (await cluster(c)).rooms <= base.rooms + 5, { timeoutMs: 8000, what: 'rooms back to baseline' });
  const after = await cluster(c);
  t.diagnostic(`memory store rooms: baseline ${base.rooms}, during flood ${during.rooms}, after ${after.rooms}`);
  const room = await c.admin('GET', `/v1/rooms/${kept}`);
  assert.equal(room.status, 200, 'the room used twice is live');
  assert.equal(room.json.pod, first.headers['x-pod-router-pod']);
  const gone = await c.admin('GET', `/v1/rooms/room_flood_${tag}_7`);
  assert.equal(gone.status, 404);
});

test('Redis store (two replicas): one-shot room keys expire from Redis after --room-active', { timeout: 120000 }, async (t) => {
  const redis = await startRedis(t, 'abuse-store');
  const { a, b } = await startReplicas(t, 'abuse-store-redis', `redis://127.0.0.1:${redis.port}`, {
    routerArgs: ['--room-active', ACTIVE],
  });
  const tag = Date.now().toString(36);
  const kept = `room_kept_${tag}`;
  const first = await a.get(`/api/room/${kept}/state`);
  // its second use, through the other replica
  const second = await b.get(`/api/room/${kept}/state`);
  await sleep(1500); // activity reports (P active) and pod rows settle
  const baseKeys = Number(await redis.cli('DBSIZE'));
  const codes = await flood([a, b], tag);
  assert.deepEqual(codes, { 200: FLOOD });
  assert.equal(second.headers['x-pod-router-pod'], first.headers['x-pod-router-pod']);
  const duringKeys = Number(await redis.cli('DBSIZE'));
  assert.ok(duringKeys >= baseKeys + 100, `flood keys stored meanwhile (${duringKeys})`);
  assert.equal(await redis.cli('EXISTS', `room:room_flood_${tag}_${FLOOD - 1}:pod`), '1');
  const ttl = Number(await redis.cli('PTTL', `room:room_flood_${tag}_${FLOOD - 2}:pod`));
  assert.ok(ttl > 0 && ttl <= 2000, `a one-shot key has the short TTL (${ttl} ms)`);
  await waitFor(async () => Number(await redis.cli('DBSIZE')) <= baseKeys + 5, { timeoutMs: 10000, what: 'DBSIZE back to baseline' });
  const afterKeys = Number(await redis.cli('DBSIZE'));
  t.diagnostic(`redis DBSIZE: baseline ${baseKeys}, during flood ${duringKeys}, after ${afterKeys}`);
  const keptTtl = Number(await redis.cli('PTTL', `room:${kept}:pod`));
  assert.ok(keptTtl > 3600 * 1000, `the room used twice lives for --room-ttl (${keptTtl} ms)`);
  // both replicas' caches let the flood go too
  await waitFor(async () => (await cluster(a)).rooms <= 5 && (await cluster(b)).rooms <= 5, { timeoutMs: 8000, what: 'caches back to baseline' });
  for (const c of [a, b]) {
    const j = await cluster(c);
    assert.ok(j.activeRooms <= 1, `no flood load on ${c.name} (${j.activeRooms})`);
  }
});

test('--max-assignments: beyond the cap new keys are routed, not stored, and counted as overflow', { timeout: 60000 }, async (t) => {
  const c = await startCluster(t, { name: 'abuse-store-cap', pods: 3, routerArgs: ['--max-assignments', '50', '--room-active', '1m'] });
  const tag = Date.now().toString(36);
  for (let i = 0; i < 80; i++) {
    const res = await c.get(`/api/room/room_cap_${tag}_${i}/state`);
    assert.equal(res.status, 200);
    assert.ok(res.headers['x-pod-router-pod']);
  }
  const j = await cluster(c);
  assert.equal(j.rooms, 50, 'the store holds at most --max-assignments rooms');
  const metrics = (await c.admin('GET', '/metrics')).text;
  const m = metrics.match(/podrouter_assignments_total\{kind="room",outcome="overflow"\} (\d+)/);
  assert.ok(m, 'overflow series exported');
  assert.equal(Number(m[1]), 30);
  // stored keys still work
  const again = await c.get(`/api/room/room_cap_${tag}_0/state`);
  assert.equal(again.status, 200);
});
