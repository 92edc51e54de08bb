'use strict';
// Redis high availability (issue 3 item 6): routers on
// redis-sentinel://…/mymaster, a master with one replica and a real
// redis-sentinel. Killing the master makes Sentinel promote the replica; the
// routers follow +switch-master and keep routing.

const test = require('node:test');
const assert = require('node:assert/strict');
const { sleep, waitFor, waitConnected, whoami } = require('./lib/cluster');
const { startRedis, startSentinel, startReplicas } = require('./lib/redis');

const uniq = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

test('sentinel failover: routing continues and later assignments land on the new master', async (t) => {
  const master = await startRedis(t, 'sentinel-master');
  const replica = await startRedis(t, 'sentinel-replica', { replicaof: master.port });
  await waitFor(async () => /master_link_status:up/.test(await replica.cli('INFO', 'replication')),
    { timeoutMs: 10000, what: 'replica in sync' });
  const sentinel = await startSentinel(t, 'sentinel', 'mymaster', master.port);
  await waitFor(async () => (await sentinel.cli('SENTINEL', 'replicas', 'mymaster')).includes(String(replica.port)),
    { timeoutMs: 15000, intervalMs: 200, what: 'sentinel knows the replica' });

  const url = `redis-sentinel://127.0.0.1:${sentinel.port}/mymaster`;
  const { a, b } = await startReplicas(t, 'redis-sentinel', url);
  const tag = uniq();
  const before = [];
  for (let i = 0; i < 5; i++) {
    const roomId = `room_sent_${tag}_${i}`;
    const sa = a.connect('/experiment', { roomId, participantId: `a${i}` });
    const sb = b.connect('/experiment', { roomId, participantId: `b${i}` });
    await Promise.all([waitConnected(sa), waitConnected(sb)]);
    const [wa, wb] = await Promise.all([whoami(sa), whoami(sb)]);
    assert.equal(wa.pod, wb.pod);
    assert.equal(JSON.parse(await master.cli('GET', `room:${roomId}:pod`)).podId, wa.pod);
    before.push({ roomId, sa, sb, pod: wa.pod });
  }
  // The replica has the assignments too (Redis replication).
  await waitFor(async () => (await replica.cli('GET', `room:${before[4].roomId}:pod`)) !== '',
    { timeoutMs: 5000, what: 'replicated' });

  // Events keep flowing while the master dies and Sentinel fails over.
  let failed = 0;
  let ok = 0;
  let running = true;
  const loops = before.map(async (r) => {
    while (running) {
      for (const s of [r.sa, r.sb]) {
        try {
          await s.timeout(3000).emitWithAck('room-msg', {});
          ok++;
        } catch {
          failed++;
        }
      }
      await sleep(200);
    }
  });

  try {
    const killedAt = Date.now();
    await master.stop('SIGKILL');
    await waitFor(async () => (await sentinel.masterPortNow()) === replica.port,
      { timeoutMs: 30000, intervalMs: 200, what: 'sentinel promotes the replica' });
    t.diagnostic(`sentinel promoted the replica ${Date.now() - killedAt} ms after the kill`);
    await waitFor(async () => {
      const [ra, rb] = await Promise.all([a.admin('GET', '/readyz'), b.admin('GET', '/readyz')]);
      return ra.json.store === 'up' && rb.json.store === 'up';
    }, { timeoutMs: 15000, what: 'both routers on the new master' });
    t.diagnostic(`routers up on the new master ${Date.now() - killedAt} ms after the kill`);
    // /readyz says up once every worker's command connection is; a lookup reaching a worker
    // still reconnecting waits for it (the store's waiting room) instead of choosing locally, so
    // the next assignments need no pause here.
    assert.match(await replica.cli('ROLE'), /^master/);

    // Later assignments land on the new master and both replicas agree.
    for (let i = 0; i < 5; i++) {
      const roomId = `room_after_${tag}_${i}`;
      const sa = a.connect('/sync', { roomId, participantId: `x${i}` });
      const sb = b.connect('/sync', { roomId, participantId: `y${i}` });
      await Promise.all([waitConnected(sa), waitConnected(sb)]);
      const [wa, wb] = await Promise.all([whoami(sa), whoami(sb)]);
      assert.equal(wa.pod, wb.pod, `${roomId}: ${wa.pod} vs ${wb.pod}`);
      const stored = JSON.parse(await replica.cli('GET', `room:${roomId}:pod`));
      assert.equal(stored.podId, wa.pod);
    }
    // Rooms from before the failover kept their pods.
    for (const r of before) {
      const stored = JSON.parse(await replica.cli('GET', `room:${r.roomId}:pod`));
      assert.equal(stored.podId, r.pod);
    }
  } finally {
    running = false; // also when an assertion failed: the loops must not keep the test alive
    await Promise.all(loops);
  }
  t.diagnostic(`events across the failover: ${ok} acknowledged, ${failed} failed`);
  assert.equal(failed, 0);
});
