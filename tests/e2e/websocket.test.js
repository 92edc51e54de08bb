'use strict';
// WebSocket tunnels: a raw Engine.IO session over `ws` (the 101 names the
// pod), and a websocket-only Socket.IO client moving 10 MB of binary echo
// events intact in both directions.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { startCluster, waitConnected, whoami, sha256 } = require('./lib/cluster');

// Resolves the next message of ws as a string (text) or Buffer (binary).
function nextMessage(ws, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no websocket message')), ms);
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer);
      resolve(isBinary ? data : data.toString());
    });
  });
}

test('websocket tunnels', { timeout: 120000 }, async (t) => {
  const cluster = await startCluster(t, { name: 'websocket', pods: 3 });
  const tag = Date.now().toString(36);

  await t.test('raw Engine.IO over ws: 101 names the pod, packets relayed', async (st) => {
    const roomId = `room_ws${tag}`;
    const url = `ws://127.0.0.1:${cluster.routerPort}/socket.io/?EIO=4&transport=websocket&roomId=${roomId}`;
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 5000 });
    st.after(() => ws.terminate());
    const upgrade = new Promise((resolve, reject) => {
      ws.once('upgrade', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    });
    const firstMsg = nextMessage(ws);
    const res = await upgrade;
    const pod = res.headers['x-pod-router-pod'];
    assert.match(String(pod), /^backend-[0-2]$/, 'the 101 carries x-pod-router-pod');
    assert.equal(res.headers['x-pod'], pod, 'x-pod-router-pod names the pod that answered');

    const open = await firstMsg;
    assert.match(open, /^0\{"sid":"/, 'the Engine.IO open packet is the first frame');
    const sid = JSON.parse(open.slice(1)).sid;
    ws.send('40');
    const connect = await nextMessage(ws);
    assert.match(connect, /^40\{"sid":"/);
    ws.send('420["whoami"]');
    const reply = await nextMessage(ws);
    assert.match(reply, /^430\[/);
    const who = JSON.parse(reply.slice(3))[0];
    assert.equal(who.pod, pod);
    assert.equal(who.sid, sid);
    assert.equal(who.roomId, roomId);
    assert.equal(who.transport, 'websocket');

    // A binary event: placeholder packet plus one binary frame each way.
    const blob = crypto.randomBytes(256 * 1024);
    ws.send('451-1["echo",{"_placeholder":true,"num":0}]');
    ws.send(blob);
    const head = await nextMessage(ws);
    assert.match(head, /^461-1\[\{"_placeholder":true,"num":0\}\]$/);
    const back = await nextMessage(ws);
    assert.ok(Buffer.isBuffer(back));
    assert.equal(sha256(back), sha256(blob));

    const room = await cluster.admin('GET', `/v1/rooms/${roomId}`);
    assert.equal(room.json && room.json.pod, pod, 'the websocket handshake assigned the room');
  });

  await t.test('websocket-only Socket.IO client: 10 x 1 MiB binary echoes intact', async () => {
    const s = cluster.connect('/experiment', { roomId: `room_wsbin${tag}`, participantId: `p_${tag}`, transports: ['websocket'] });
    await waitConnected(s);
    const who = await whoami(s);
    assert.equal(who.transport, 'websocket');

    const blobs = Array.from({ length: 10 }, () => crypto.randomBytes(1024 * 1024));
    const sentHash = crypto.createHash('sha256');
    for (const b of blobs) sentHash.update(b);
    // Five at a time in flight, so the tunnel carries data both ways at once.
    const echoed = new Array(blobs.length);
    for (let i = 0; i < blobs.length; i += 5) {
      const batch = blobs.slice(i, i + 5).map(async (b, j) => {
        const back = await s.timeout(30000).emitWithAck('echo', b);
        assert.ok(Buffer.isBuffer(back), 'echoed as binary');
        echoed[i + j] = back;
      });
      await Promise.all(batch);
    }
    const backHash = crypto.createHash('sha256');
    for (let i = 0; i < blobs.length; i++) {
      assert.equal(echoed[i].length, blobs[i].length, `blob ${i} length`);
      assert.equal(sha256(echoed[i]), sha256(blobs[i]), `blob ${i} content`);
      backHash.update(echoed[i]);
    }
    assert.equal(backHash.digest('hex'), sentHash.digest('hex'), '10 MiB intact both ways');
    assert.equal((await whoami(s)).pod, who.pod, 'same pod throughout');
    assert.deepEqual(s.record.disconnects, []);
  });
});
