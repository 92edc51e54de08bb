'use strict';
// POST /v1/pods/backend-0/drain: no new room lands on backend-0, while its
// existing room keeps working and still admits new participants.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitConnected, whoami, sleep } = require('./lib/cluster');

function nextMsg(socket, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('room-msg not received')), ms);
    socket.once('room-msg', (m) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
}

// a sends to the room; every socket in `others` must receive it.
async function exchange(a, others, payload) {
  const got = others.map((s) => nextMsg(s));
  const ack = await a.timeout(5000).emitWithAck('room-msg', payload);
  for (const m of await Promise.all(got)) assert.deepEqual(m.payload, payload);
  return ack.pod;
}

test('a draining pod takes no new rooms but keeps its own', { timeout: 90000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'drain', pods: 3 });
  const tag = Date.now().toString(36);

  // Rooms are created one at a time; the least-loaded policy puts one of the
  // first three on each pod. Keep the one on backend-0.
  let home = null;
  const warmup = [];
  for (let r = 0; r < 6 && !home; r++) {
    const roomId = `room_dr${tag}_${r}`;
    const a = cluster.connect('/experiment', { roomId, participantId: `p_${tag}_${r}_a` });
    const b = cluster.connect('/experiment', { roomId, participantId: `p_${tag}_${r}_b` });
    await Promise.all([waitConnected(a), waitConnected(b)]);
    const [wa, wb] = await Promise.all([whoami(a), whoami(b)]);
    assert.equal(wa.pod, wb.pod);
    if (wa.pod === 'backend-0') home = { roomId, a, b };
    else warmup.push({ roomId, pod: wa.pod });
  }
  assert.ok(home, `one of the first rooms lands on backend-0 (got ${JSON.stringify(warmup)})`);
  assert.equal(await exchange(home.a, [home.b], { step: 'before drain' }), 'backend-0');

  const res = await cluster.admin('POST', '/v1/pods/backend-0/drain');
  assert.equal(res.status, 200, `drain: ${res.status} ${res.text}`);
  let pods = await cluster.podsByName();
  assert.equal(pods.get('backend-0').state, 'draining');
  // Heartbeats (every 500 ms) do not make it ready again.
  await sleep(1500);
  pods = await cluster.podsByName();
  assert.equal(pods.get('backend-0').state, 'draining', 'a draining pod stays draining across heartbeats');

  // 20 new rooms never land on backend-0.
  const placed = [];
  await Promise.all(Array.from({ length: 20 }, async (_, r) => {
    const roomId = `room_new${tag}_${r}`;
    const s = cluster.connect('/experiment', { roomId, participantId: `p_new_${tag}_${r}` });
    await waitConnected(s);
    const w = await whoami(s);
    placed.push({ roomId, pod: w.pod });
    const adm = await cluster.admin('GET', `/v1/rooms/${roomId}`);
    assert.equal(adm.json && adm.json.pod, w.pod);
  }));
  const onDrained = placed.filter((p) => p.pod === 'backend-0');
  assert.deepEqual(onDrained, [], 'no new room on the draining pod');

  // The existing room keeps working and admits a new participant on backend-0.
  assert.equal(await exchange(home.a, [home.b], { step: 'after drain' }), 'backend-0');
  const c = cluster.connect('/experiment', { roomId: home.roomId, participantId: `p_${tag}_late` });
  await waitConnected(c);
  assert.equal((await whoami(c)).pod, 'backend-0', 'a new participant of the existing room reaches backend-0');
  assert.equal(await exchange(c, [home.a, home.b], { step: 'late joiner' }), 'backend-0');
  const c2 = cluster.connect('/experiment', { roomId: home.roomId, participantId: `p_${tag}_late2`, transports: ['websocket'] });
  await waitConnected(c2);
  assert.equal((await whoami(c2)).pod, 'backend-0', 'also over websocket-only');
  assert.deepEqual([home.a, home.b].flatMap((s) => s.record.disconnects), [], 'existing clients never dropped');
  const room = await cluster.admin('GET', `/v1/rooms/${home.roomId}`);
  assert.equal(room.json.pod, 'backend-0');
  assert.equal(room.json.participantCount, 4);
});
