'use strict';
// 20 anonymous long-polling clients (no room, no participant) exchange echo
// events for 30 s: they stay pinned to their pod by sid alone, also when
// their pod starts draining.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitConnected, whoami, sleep } = require('./lib/cluster');

const CLIENTS = 20;
const DURATION_MS = 30000;
const EVERY_MS = 500;

test('anonymous polling-only clients stay on one pod for 30 s', { timeout: 90000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'polling', pods: 3 });
  const sockets = [];
  for (let i = 0; i < CLIENTS; i++) {
    sockets.push(cluster.connect('/', { transports: ['polling'] }));
  }
  await Promise.all(sockets.map((s) => waitConnected(s, 15000)));
  const first = await Promise.all(sockets.map((s) => whoami(s)));
  for (let i = 0; i < CLIENTS; i++) {
    assert.equal(first[i].transport, 'polling');
    assert.equal(first[i].sid, sockets[i].io.engine.id);
    assert.equal(first[i].roomId, null);
  }

  const failures = [];
  let echoes = 0;
  const deadline = Date.now() + DURATION_MS;

  // A third of the way in, drain the pods these sessions use (when one is
  // left over): from then on only the sid pin keeps them where they are.
  const used = [...new Set(first.map((w) => w.pod))].sort();
  const drainer = (async () => {
    await sleep(DURATION_MS / 3);
    if (used.length >= 3) return;
    for (const pod of used) {
      const res = await cluster.admin('POST', `/v1/pods/${pod}/drain`);
      if (res.status !== 200) failures.push(`drain ${pod}: ${res.status} ${res.text}`);
    }
    t.diagnostic(`drained ${used.join(',')} mid-run`);
  })();
  await Promise.all(sockets.map(async (s, i) => {
    let n = 0;
    while (Date.now() < deadline) {
      const payload = { i, n, text: `client ${i} message ${n}` };
      try {
        const back = await s.timeout(5000).emitWithAck('echo', payload);
        assert.deepEqual(back, payload);
        echoes++;
      } catch (err) {
        failures.push(`client ${i} echo ${n}: ${err.message}`);
      }
      if (n % 10 === 0) {
        try {
          const who = await whoami(s);
          if (who.pod !== first[i].pod || who.sid !== first[i].sid) {
            failures.push(`client ${i} moved from ${first[i].pod}/${first[i].sid} to ${who.pod}/${who.sid}`);
          }
        } catch (err) {
          failures.push(`client ${i} whoami: ${err.message}`);
        }
      }
      n++;
      await sleep(EVERY_MS);
    }
  }));

  await drainer;
  const last = await Promise.all(sockets.map((s) => whoami(s)));
  for (let i = 0; i < CLIENTS; i++) {
    assert.equal(last[i].pod, first[i].pod, `client ${i} stays on its pod`);
    assert.equal(last[i].sid, first[i].sid, `client ${i} keeps its session`);
  }
  const disconnects = sockets.flatMap((s, i) => s.record.disconnects.map((d) => `client ${i}: ${d.reason} ${d.detail || ''}`));
  const connectErrors = sockets.flatMap((s, i) => s.record.connectErrors.map((e) => `client ${i}: ${e}`));
  const engineErrors = sockets.flatMap((s, i) => s.record.engineErrors.map((e) => `client ${i}: ${e}`));
  assert.deepEqual(disconnects, [], 'no disconnect');
  assert.deepEqual(connectErrors, [], 'no connect_error');
  assert.deepEqual(engineErrors, [], 'no engine error (e.g. "Session ID unknown")');
  assert.deepEqual(failures, [], 'every echo acked intact');
  assert.ok(echoes >= CLIENTS * (DURATION_MS / EVERY_MS) * 0.5, `enough echoes exchanged (${echoes})`);
  t.diagnostic(`echoes: ${echoes}; pods used: ${used.join(',')}`);
});
