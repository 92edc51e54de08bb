'use strict';
// 30 rooms x 4 participants, default transports (polling, then websocket
// upgrade): every room meets on one pod, the admin API agrees, and the rooms
// spread over all pods.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, waitConnected, waitUpgraded, whoami } = require('./lib/cluster');

const ROOMS = 30;
const PER_ROOM = 4;

test('30 rooms x 4 participants meet on one pod per room', { timeout: 90000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'rooms', pods: 3 });
  const tag = Date.now().toString(36);
  const rooms = [];
  for (let r = 0; r < ROOMS; r++) {
    const roomId = `room_e2e${tag}_${r}`;
    const sockets = [];
    for (let p = 0; p < PER_ROOM; p++) {
      sockets.push(cluster.connect('/experiment', { roomId, participantId: `p_${tag}_${r}_${p}` }));
    }
    rooms.push({ roomId, sockets });
  }
  const all = rooms.flatMap((r) => r.sockets);

  // All participants of a room connect at the same moment (a race the
  // router must resolve to one pod); no connect error is tolerated.
  const results = await Promise.allSettled(all.map((s) => waitConnected(s, 20000)));
  const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
  assert.deepEqual(failed, [], 'every client connects');
  const connectErrors = all.flatMap((s) => s.record.connectErrors);
  assert.deepEqual(connectErrors, [], 'zero connect_error');

  // Default transports: each session upgrades to websocket on the same pod.
  await Promise.all(all.map((s) => waitUpgraded(s, 15000)));

  const podsUsed = new Set();
  for (const room of rooms) {
    const infos = await Promise.all(room.sockets.map((s) => whoami(s)));
    const pods = new Set(infos.map((i) => i.pod));
    assert.equal(pods.size, 1, `${room.roomId}: all participants on one pod, got ${[...pods]}`);
    for (let i = 0; i < infos.length; i++) {
      assert.equal(infos[i].roomId, room.roomId);
      assert.equal(infos[i].transport, 'websocket', `${room.roomId}: upgraded`);
      assert.equal(infos[i].sid, room.sockets[i].io.engine.id, 'whoami answers for this session');
    }
    room.pod = infos[0].pod;
    podsUsed.add(room.pod);
  }

  // They really share a room: a message reaches the three others.
  await Promise.all(rooms.map(async (room) => {
    const [sender, ...others] = room.sockets;
    const received = others.map((s) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${room.roomId}: room-msg not received`)), 5000);
      s.once('room-msg', (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
    }));
    const ack = await sender.timeout(5000).emitWithAck('room-msg', { room: room.roomId });
    assert.equal(ack.pod, room.pod);
    for (const msg of await Promise.all(received)) {
      assert.deepEqual(msg.payload, { room: room.roomId });
      assert.equal(msg.pod, room.pod);
    }
  }));

  for (const room of rooms) {
    const res = await cluster.admin('GET', `/v1/rooms/${room.roomId}`);
    assert.equal(res.status, 200, `GET /v1/rooms/${room.roomId}: ${res.text}`);
    assert.equal(res.json.room, room.roomId);
    assert.equal(res.json.pod, room.pod, `${room.roomId}: admin API names the pod the clients reached`);
    assert.equal(res.json.participantCount, PER_ROOM, `${room.roomId}: participantCount`);
    assert.equal(typeof res.json.assignedAt, 'number');
  }

  assert.deepEqual([...podsUsed].sort(), ['backend-0', 'backend-1', 'backend-2'], 'rooms spread over all 3 pods');
  assert.deepEqual(all.flatMap((s) => s.record.disconnects), [], 'no disconnects');
});
