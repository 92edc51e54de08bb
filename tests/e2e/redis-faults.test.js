'use strict';
// Redis outages (SPEC 6.3) with two router replicas and live Socket.IO rooms:
// Redis stopped and restarted with its AOF, and Redis restarted without data.

const test = require('node:test');
const assert = require('node:assert/strict');
const { sleep, waitFor, waitConnected, whoami, request } = require('./lib/cluster');
const { startRedis, startReplicas } = require('./lib/redis');

const uniq = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

// 20 rooms, one participant through each replica; resolves [{ roomId, sa, sb, pod }].
async function openRooms(a, b, tag, n = 20) {
  return Promise.all(Array.from({ length: n }, async (_, i) => {
    const roomId = `room_${tag}_${i}`;
    const sa = a.connect('/experiment', { roomId, participantId: `pa${i}` });
    const sb = b.connect('/experiment', { roomId, participantId: `pb${i}` });
    await Promise.all([waitConnected(sa), waitConnected(sb)]);
    const [wa, wb] = await Promise.all([whoami(sa), whoami(sb)]);
    assert.equal(wa.pod, wb.pod, `${roomId}: participants on ${wa.pod} and ${wb.pod}`);
    return { roomId, sa, sb, pod: wa.pod };
  }));
}

// Every participant emits an acknowledged room event every 200 ms until stopped.
function exchange(rooms) {
  const stats = { ok: 0, failed: 0, relayed: 0, errors: [] };
  let running = true;
  for (const r of rooms) {
    for (const s of [r.sa, r.sb]) s.on('room-msg', () => stats.relayed++);
  }
  const loops = rooms.map(async (r) => {
    while (running) {
      for (const s of [r.sa, r.sb]) {
        try {
          await s.timeout(3000).emitWithAck('room-msg', { at: Date.now() });
          stats.ok++;
        } catch (err) {
          stats.failed++;
          if (stats.errors.length < 10) stats.errors.push(`${r.roomId}: ${err.message}`);
        }
      }
      await sleep(200);
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

async function storeState(c) {
  const res = await c.admin('GET', '/readyz');
  assert.equal(res.status, 200, 'a Redis outage must not make the router unready');
  return res.json.store;
}

async function metricStoreUp(c) {
  const res = await c.admin('GET', '/metrics');
  const m = /^podrouter_store_up (\d)$/m.exec(res.text);
  return m ? Number(m[1]) : -1;
}

// New clients through both replicas land on want (or, without want, agree).
async function sameThroughBoth(a, b, roomId, want) {
  const sa = a.connect('/sync', { roomId, participantId: `late-a-${uniq()}` });
  const sb = b.connect('/sync', { roomId, participantId: `late-b-${uniq()}` });
  await Promise.all([waitConnected(sa), waitConnected(sb)]);
  const [wa, wb] = await Promise.all([whoami(sa), whoami(sb)]);
  sa.close();
  sb.close();
  assert.equal(wa.pod, wb.pod, `${roomId}: A routes to ${wa.pod}, B to ${wb.pod}`);
  if (want) assert.equal(wa.pod, want, `${roomId}: moved from ${want} to ${wa.pod}`);
  return wa.pod;
}

test('Redis stopped: rooms keep working, new rooms are routed, the AOF restart gets the write-back', async (t) => {
  const redis = await startRedis(t, 'faults-aof', { appendonly: true });
  const { a, b } = await startReplicas(t, 'redis-faults-aof', `redis://127.0.0.1:${redis.port}`);
  const tag = uniq();
  const rooms = await openRooms(a, b, `live_${tag}`);
  const ex = exchange(rooms);
  await sleep(1000);

  await redis.stop('SIGTERM');
  await waitFor(async () => (await storeState(a)) === 'degraded' && (await storeState(b)) === 'degraded',
    { timeoutMs: 3000, what: 'both replicas degraded' });
  assert.equal(await metricStoreUp(a), 0);
  assert.equal(await metricStoreUp(b), 0);

  // New rooms while Redis is down: routed by bounded hashing through either replica.
  const outage = [];
  for (let i = 0; i < 6; i++) {
    const roomId = `room_outage_${tag}_${i}`;
    const via = i % 2 ? b : a;
    const s = via.connect('/experiment', { roomId, participantId: `o${i}` });
    await waitConnected(s);
    outage.push({ roomId, pod: (await whoami(s)).pod, s });
  }
  await sleep(2000);

  await redis.start();
  await waitFor(async () => (await storeState(a)) === 'up' && (await storeState(b)) === 'up',
    { timeoutMs: 10000, what: 'both replicas up again' });
  assert.equal(await metricStoreUp(a), 1);
  // Everything assigned meanwhile is written back.
  await waitFor(async () => {
    for (const o of outage) {
      if ((await redis.cli('GET', `room:${o.roomId}:pod`)) === '') return false;
    }
    return true;
  }, { timeoutMs: 10000, what: 'outage rooms written back' });
  await sleep(1000);
  const stats = await ex.stop();
  t.diagnostic(`events during the run: ${stats.ok} acknowledged, ${stats.failed} failed, ${stats.relayed} relayed`);
  assert.equal(stats.failed, 0, stats.errors.join('\n'));
  assert.ok(stats.relayed > 0);

  for (const r of rooms) {
    const v = JSON.parse(await redis.cli('GET', `room:${r.roomId}:pod`));
    assert.equal(v.podId, r.pod, `${r.roomId} moved in Redis`);
  }
  for (const o of outage) {
    const v = JSON.parse(await redis.cli('GET', `room:${o.roomId}:pod`));
    assert.equal(await sameThroughBoth(a, b, o.roomId), v.podId);
    assert.equal(v.podId, o.pod, `${o.roomId}: placed on ${o.pod} during the outage, ${v.podId} after`);
  }
});

test('redis-server restarted without data: replicas repopulate it without moving a live room', async (t) => {
  const redis = await startRedis(t, 'faults-empty');
  const { a, b } = await startReplicas(t, 'redis-faults-empty', `redis://127.0.0.1:${redis.port}`);
  const tag = uniq();
  const rooms = await openRooms(a, b, `empty_${tag}`);
  const solo = a.connect('/', { participantId: `solo_${tag}` });
  await waitConnected(solo);
  const soloPod = (await whoami(solo)).pod;
  assert.equal(await redis.cli('GET', `podrouter:participant:solo_${tag}`), soloPod);
  const ex = exchange(rooms);
  await sleep(1000);

  await redis.stop('SIGKILL');
  redis.wipe();
  await redis.start();
  // (No check that it starts empty: the replicas may refill it before redis-cli asks.)
  await waitFor(async () => {
    for (const r of rooms) {
      if ((await redis.cli('GET', `room:${r.roomId}:pod`)) === '') return false;
    }
    return (await redis.cli('GET', `podrouter:participant:solo_${tag}`)) !== '';
  }, { timeoutMs: 10000, what: 'assignments repopulated' });
  await waitFor(async () => (await redis.cli('SCARD', 'podrouter:pods')) === '3', { timeoutMs: 5000, what: 'pods repopulated' });
  await sleep(1000);
  const stats = await ex.stop();
  t.diagnostic(`events during the run: ${stats.ok} acknowledged, ${stats.failed} failed`);
  assert.equal(stats.failed, 0, stats.errors.join('\n'));

  for (const r of rooms) {
    const v = JSON.parse(await redis.cli('GET', `room:${r.roomId}:pod`));
    assert.equal(v.podId, r.pod, `${r.roomId} moved from ${r.pod} to ${v.podId}`);
    const ttl = Number(await redis.cli('PTTL', `room:${r.roomId}:pod`));
    assert.ok(ttl > 0, 'written back with its TTL');
  }
  assert.equal(await redis.cli('GET', `podrouter:participant:solo_${tag}`), soloPod);
  for (const r of rooms.slice(0, 5)) await sameThroughBoth(a, b, r.roomId, r.pod);
  // New rooms are coordinated through the new Redis again.
  const fresh = `room_fresh_${tag}`;
  await sameThroughBoth(a, b, fresh);
  assert.notEqual(await redis.cli('GET', `room:${fresh}:pod`), '');
});

test('a command connection lost and reconnecting: lookups wait for Redis instead of choosing a pod locally (--threads 2)', async (t) => {
  const redis = await startRedis(t, 'faults-reconnect');
  const { a, b, names } = await startReplicas(t, 'redis-faults-reconnect', `redis://127.0.0.1:${redis.port}`, {
    routerArgs: ['--threads', '2'],
  });
  const want = names[names.length - 1];
  const keepAlive = new (require('node:http').Agent)({ keepAlive: true, maxSockets: 32 });
  t.after(() => keepAlive.destroy());
  const ready = async (c) => (await c.admin('GET', '/readyz')).json.store === 'up';
  for (let round = 0; round < 3; round++) {
    await waitFor(async () => (await ready(a)) && (await ready(b)), { timeoutMs: 5000, what: 'store up on both replicas' });
    // Rooms HyperStudy pinned to the last pod, unknown to both replicas' caches: only Redis
    // knows where they go (a degraded choice would spread them over the three pods).
    const tag = uniq();
    const rooms = Array.from({ length: 30 }, (_, i) => `room_rc${round}_${tag}_${i}`);
    for (const r of rooms) {
      await redis.cli('SET', `room:${r}:pod`, JSON.stringify({ podId: want, participantCount: 1, assignedAt: Date.now() }), 'EX', '600');
    }
    // Every replica's command connections go (the subscriptions stay); the lookups follow at once.
    await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal');
    const got = await Promise.all(rooms.map((r, i) => request(`${(i % 2 ? a : b).routerUrl}/api/room/${r}/state`, { agent: keepAlive })));
    got.forEach((res, i) => {
      assert.equal(res.status, 200, `${rooms[i]}: ${res.status}`);
      assert.equal(res.headers['x-pod-router-pod'], want, `round ${round}, ${rooms[i]}: routed to ${res.headers['x-pod-router-pod']}, Redis says ${want}`);
    });
  }
  const metrics = await b.admin('GET', '/metrics');
  t.diagnostic(`B: ${(metrics.text || '').split('\n').filter((l) => l.startsWith('podrouter_assignments_total{kind="room"')).join('; ')}`);
});
