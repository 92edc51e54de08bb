'use strict';
// kill -9 one of three pods: rooms of the other pods never move or drop;
// the dead pod's rooms reconnect (socket.io auto-reconnect) to one other pod
// within pod-ttl + 5 s; the admin API shows the pod down; when it returns,
// nothing moves back.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitConnected, waitUpgraded, whoami, waitFor, sleep } = require('./lib/cluster');

const POD_TTL_MS = 3000;
const RECOVER_MS = POD_TTL_MS + 5000;
const ROOMS = 9;

test('kill -9 of one pod moves only its rooms', { timeout: 120000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'failover', pods: 3 });
  const tag = Date.now().toString(36);
  const rooms = [];
  for (let r = 0; r < ROOMS; r++) {
    const roomId = `room_fo${tag}_${r}`;
    const a = cluster.connect('/experiment', { roomId, participantId: `p_${tag}_${r}_a`, reconnection: true });
    const b = cluster.connect('/experiment', { roomId, participantId: `p_${tag}_${r}_b`, reconnection: true });
    rooms.push({ roomId, a, b, sent: 0, received: 0, ackFailures: [] });
    // Rooms are created one after another so that the policy spreads them.
    await Promise.all([waitConnected(a, 15000), waitConnected(b, 15000)]);
  }
  await Promise.all(rooms.flatMap((r) => [waitUpgraded(r.a), waitUpgraded(r.b)]));
  for (const room of rooms) {
    const [wa, wb] = await Promise.all([whoami(room.a), whoami(room.b)]);
    assert.equal(wa.pod, wb.pod, `${room.roomId} on one pod`);
    room.pod = wa.pod;
    room.b.on('room-msg', () => room.received++);
  }
  const byPod = {};
  for (const room of rooms) byPod[room.pod] = (byPod[room.pod] || 0) + 1;
  t.diagnostic(`rooms per pod before the kill: ${JSON.stringify(byPod)}`);
  assert.equal(Object.keys(byPod).length, 3, 'rooms on all 3 pods');

  const victim = rooms[0].pod;
  const victimRooms = rooms.filter((r) => r.pod === victim);
  const otherRooms = rooms.filter((r) => r.pod !== victim);

  // Every room's participant a keeps sending to the room during the test.
  let messaging = true;
  const loops = rooms.map(async (room) => {
    while (messaging) {
      if (room.a.connected) {
        const before = Date.now();
        try {
          const ack = await room.a.timeout(3000).emitWithAck('room-msg', { n: room.sent });
          room.sent++;
          room.lastAck = { at: before, pod: ack.pod };
        } catch (err) {
          room.ackFailures.push({ at: before, error: err.message });
        }
      }
      await sleep(250);
    }
  });

  await sleep(1000);
  const killedAt = Date.now();
  await cluster.kill(victim, 'SIGKILL');
  t.diagnostic(`killed ${victim}; its rooms: ${victimRooms.map((r) => r.roomId).join(',')}`);

  try {
    // The dead pod's clients come back on another pod, both on the same one.
    await waitFor(async () => {
      for (const room of victimRooms) {
        for (const s of [room.a, room.b]) {
          if (s.record.disconnects.length === 0 || !s.connected) return false;
        }
      }
      return true;
    }, { timeoutMs: RECOVER_MS + 2000, intervalMs: 50, what: "the killed pod's clients to reconnect" });
    const recoveredAt = Math.max(...victimRooms.flatMap((r) => [r.a.record.lastConnectAt, r.b.record.lastConnectAt]));
    t.diagnostic(`reconnected ${recoveredAt - killedAt} ms after the kill`);
    assert.ok(recoveredAt - killedAt <= RECOVER_MS, `reconnected within pod-ttl + 5 s (took ${recoveredAt - killedAt} ms)`);

    for (const room of victimRooms) {
      const [wa, wb] = await Promise.all([whoami(room.a), whoami(room.b)]);
      assert.notEqual(wa.pod, victim, `${room.roomId} left the killed pod`);
      assert.equal(wa.pod, wb.pod, `${room.roomId}: both participants meet on one new pod`);
      room.newPod = wa.pod;
      const res = await cluster.admin('GET', `/v1/rooms/${room.roomId}`);
      assert.equal(res.status, 200);
      assert.equal(res.json.pod, room.newPod, `${room.roomId}: admin API names the new pod`);
    }

    await cluster.waitPodsState([victim], 'down', POD_TTL_MS + 3000);
    const pods = await cluster.podsByName();
    for (const p of pods.values()) {
      if (p.name !== victim) assert.equal(p.state, 'ready', `${p.name} still ready`);
    }

    // Let the messaging loops run a little more on the new placement.
    await sleep(1500);
  } finally {
    messaging = false;
    await Promise.all(loops);
  }

  for (const room of otherRooms) {
    assert.deepEqual(room.a.record.disconnects, [], `${room.roomId} (on ${room.pod}): a never disconnected`);
    assert.deepEqual(room.b.record.disconnects, [], `${room.roomId} (on ${room.pod}): b never disconnected`);
    assert.deepEqual(room.ackFailures, [], `${room.roomId} (on ${room.pod}): every message acked`);
    const [wa, wb] = await Promise.all([whoami(room.a), whoami(room.b)]);
    assert.equal(wa.pod, room.pod, `${room.roomId} did not move`);
    assert.equal(wb.pod, room.pod, `${room.roomId} did not move`);
    await waitFor(() => room.received === room.sent, { timeoutMs: 3000, what: `${room.roomId}: b to receive all ${room.sent} messages (got ${room.received})` });
  }
  for (const room of victimRooms) {
    assert.ok(room.lastAck && room.lastAck.at > killedAt && room.lastAck.pod === room.newPod,
      `${room.roomId}: messages flow again on ${room.newPod}`);
  }

  // The pod comes back: nothing moves back to it (SPEC 5), and a late
  // participant of a moved room joins the room's new pod.
  await cluster.restartPod(victim);
  for (const room of victimRooms) {
    const res = await cluster.admin('GET', `/v1/rooms/${room.roomId}`);
    assert.equal(res.json && res.json.pod, room.newPod, `${room.roomId} stays on ${room.newPod} after ${victim} returns`);
    const late = cluster.connect('/experiment', { roomId: room.roomId, participantId: `p_${tag}_late_${room.roomId}` });
    await waitConnected(late);
    assert.equal((await whoami(late)).pod, room.newPod, `${room.roomId}: a late participant joins ${room.newPod}`);
  }
  for (const room of otherRooms) {
    assert.equal((await whoami(room.a)).pod, room.pod, `${room.roomId} did not move when ${victim} returned`);
  }
});
