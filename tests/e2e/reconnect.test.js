'use strict';
// A client whose underlying Engine.IO transport is closed reconnects (new
// session, fresh handshake) to the same pod: by room, and by participant
// alone.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitConnected, waitUpgraded, whoami } = require('./lib/cluster');

const RECONNECTS = 3;

// Closes the engine under socket and waits for socket.io's auto-reconnect.
async function dropAndReconnect(socket, timeoutMs = 10000) {
  const oldSid = socket.io.engine.id;
  const reconnected = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reconnect within ${timeoutMs} ms`)), timeoutMs);
    socket.io.once('reconnect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  socket.io.engine.close();
  await reconnected;
  await waitConnected(socket, timeoutMs);
  assert.notEqual(socket.io.engine.id, oldSid, 'a new Engine.IO session');
}

// Connects each spec, then drops and reconnects it RECONNECTS times; the pod
// must never change.
async function checkSticky(cluster, specs) {
  const sockets = specs.map((s) => cluster.connect(s.ns || '/', { reconnection: true, ...s.opts }));
  await Promise.all(sockets.map((s) => waitConnected(s, 15000)));
  const home = [];
  for (const s of sockets) {
    if (!specs[sockets.indexOf(s)].opts.transports) await waitUpgraded(s, 10000);
    home.push((await whoami(s)).pod);
  }
  for (let round = 0; round < RECONNECTS; round++) {
    await Promise.all(sockets.map((s) => dropAndReconnect(s)));
    const who = await Promise.all(sockets.map((s) => whoami(s)));
    for (let i = 0; i < sockets.length; i++) {
      assert.equal(who[i].pod, home[i], `${JSON.stringify(specs[i].opts.query || specs[i].opts)} round ${round}: same pod after reconnect`);
      assert.equal(who[i].sid, sockets[i].io.engine.id);
    }
  }
  return { sockets, home };
}

test('reconnect after the transport closes returns to the same pod', { timeout: 120000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'reconnect', pods: 3 });
  const tag = Date.now().toString(36);

  await t.test('room clients (default and websocket-only transports)', async () => {
    const specs = [];
    for (let r = 0; r < 6; r++) {
      const roomId = `room_rc${tag}_${r}`;
      specs.push({ ns: '/experiment', opts: { roomId, participantId: `p_${tag}_${r}_a` } });
      specs.push({ ns: '/sync', opts: { roomId, participantId: `p_${tag}_${r}_b`, transports: ['websocket'] } });
    }
    const { home } = await checkSticky(cluster, specs);
    for (let r = 0; r < 6; r++) {
      assert.equal(home[2 * r], home[2 * r + 1], 'both participants of a room on one pod');
      const res = await cluster.admin('GET', `/v1/rooms/${specs[2 * r].opts.roomId}`);
      assert.equal(res.status, 200);
      assert.equal(res.json.pod, home[2 * r]);
    }
  });

  await t.test('participant-only clients (no room)', async () => {
    const specs = [];
    for (let i = 0; i < 6; i++) {
      specs.push({ ns: '/waiting', opts: { participantId: `p_only_${tag}_${i}`, transports: i % 2 ? ['websocket'] : undefined } });
    }
    for (const s of specs) if (!s.opts.transports) delete s.opts.transports;
    const { home } = await checkSticky(cluster, specs);
    for (let i = 0; i < specs.length; i++) {
      const res = await cluster.admin('GET', `/v1/participants/${specs[i].opts.participantId}`);
      assert.equal(res.status, 200, `GET /v1/participants: ${res.text}`);
      assert.equal(res.json.participant, specs[i].opts.participantId);
      assert.equal(res.json.pod, home[i]);
    }
  });
});
