'use strict';
// Redis store, end to end (SPEC 5, 6): two router replicas on one real
// redis-server, the example Socket.IO pods registered through replica A only.

const test = require('node:test');
const assert = require('node:assert/strict');
const { request, sleep, waitFor, waitConnected, whoami } = require('./lib/cluster');
const { startRedis, startReplicas } = require('./lib/redis');

const uniq = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

// The Engine.IO open packet of a polling handshake body: { sid, ... }.
function openPacket(text) {
  assert.match(text, /^0\{/, `not an open packet: ${text.slice(0, 80)}`);
  return JSON.parse(text.slice(1).split('\x1e')[0]);
}

test('registry: pods registered through A are routable through B; drain and delete apply on both', async (t) => {
  const redis = await startRedis(t, 'registry');
  const { a, b, names } = await startReplicas(t, 'redis-registry', `redis://${'127.0.0.1'}:${redis.port}`);
  assert.deepEqual(names, ['backend-0', 'backend-1', 'backend-2']);
  const podsB = await b.podsByName();
  for (const n of names) assert.equal(podsB.get(n).address, a.pods.get(n) ? `127.0.0.1:${a.pods.get(n).port}` : undefined);
  assert.equal(await redis.cli('SCARD', 'podrouter:pods'), '3');

  // A pod registered through B (no heartbeat) shows up on A within a second.
  const t0 = Date.now();
  const put = await b.admin('PUT', '/v1/pods/extra-0', { body: { address: '127.0.0.1:9', capacity: { rooms: 5, participants: 10 } } });
  assert.equal(put.status, 201);
  await waitFor(async () => (await a.podsByName()).has('extra-0'), { timeoutMs: 1000, what: 'extra-0 on A' });
  t.diagnostic(`pod registered through B visible on A after ${Date.now() - t0} ms`);
  const extra = (await a.podsByName()).get('extra-0');
  assert.equal(extra.capacity.rooms, 5);

  // Drain through A applies on B; delete through B applies on A.
  assert.equal((await a.admin('POST', '/v1/pods/extra-0/drain')).status, 200);
  await waitFor(async () => (await b.podsByName()).get('extra-0').state === 'draining', { timeoutMs: 1000, what: 'drain on B' });
  assert.equal((await b.admin('DELETE', '/v1/pods/extra-0')).status, 204);
  await waitFor(async () => !(await a.podsByName()).has('extra-0'), { timeoutMs: 1000, what: 'delete on A' });
  await sleep(1200); // a reload must not bring it back
  assert.equal((await a.podsByName()).has('extra-0'), false);
  assert.equal(await redis.cli('EXISTS', 'podrouter:pod:extra-0'), '0');

  const ready = await b.admin('GET', '/readyz');
  assert.deepEqual(ready.json, { status: 'ready', store: 'up' });
});

test('polling: a handshake through A continues with its sid through B (20 sessions, zero 400s)', async (t) => {
  const redis = await startRedis(t, 'polling');
  const { a, b } = await startReplicas(t, 'redis-polling', `redis://127.0.0.1:${redis.port}`);
  const statuses = [];
  await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const hs = await a.get(`/socket.io/?EIO=4&transport=polling&t=h${i}`);
    assert.equal(hs.status, 200);
    const pod = hs.headers['x-pod-router-pod'];
    const { sid } = openPacket(hs.text);
    // Straight to the other replica: the pin must already be in Redis.
    const post = await request(`${b.routerUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '40',
    });
    statuses.push(post.status);
    assert.equal(post.status, 200, `POST via B: ${post.status} ${post.text}`);
    assert.equal(post.headers['x-pod-router-pod'], pod);
    const poll = await b.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}&t=p${i}`);
    statuses.push(poll.status);
    assert.equal(poll.status, 200, `GET via B: ${poll.text}`);
    assert.equal(poll.headers['x-pod-router-pod'], pod);
    assert.match(poll.text, /^40/);
    // And back through A.
    const ping = await request(`${a.routerUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '42["whoami"]',
    });
    statuses.push(ping.status);
    assert.equal(ping.status, 200);
    assert.equal(await redis.cli('GET', `podrouter:sid:${sid}`), pod);
  }));
  assert.equal(statuses.filter((s) => s === 400).length, 0);
  assert.equal(statuses.length, 60);
});

// A TCP relay to Redis that delays every command by delayMs (replies pass at once).
async function slowLink(t, port, delayMs) {
  const net = require('node:net');
  const conns = new Set();
  const srv = net.createServer((c) => {
    const r = net.connect(port, '127.0.0.1');
    conns.add(c);
    conns.add(r);
    for (const s of [c, r]) s.on('error', () => { c.destroy(); r.destroy(); });
    c.on('close', () => r.destroy());
    r.on('close', () => c.destroy());
    c.on('data', (d) => setTimeout(() => r.write(d), delayMs));
    r.pipe(c);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of conns) s.destroy();
    srv.close();
  });
  return srv.address().port;
}

test('polling: with a slow Redis link on A, the sid reaches the client only once it is pinned', async (t) => {
  const redis = await startRedis(t, 'polling-slow');
  const slow = await slowLink(t, redis.port, 80);
  const { a, b } = await startReplicas(t, 'redis-polling-slow', `redis://127.0.0.1:${redis.port}`, {
    storeUrlA: `redis://127.0.0.1:${slow}`,
  });
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    const hs = await a.get(`/socket.io/?EIO=4&transport=polling&t=s${i}`);
    const took = Date.now() - t0;
    assert.equal(hs.status, 200);
    const { sid } = openPacket(hs.text);
    // B asks Redis directly: the pin A wrote over its slow link must already be there.
    const post = await request(`${b.routerUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '40',
    });
    assert.equal(post.status, 200, `POST via B: ${post.status} ${post.text} (handshake took ${took} ms)`);
    assert.equal(post.headers['x-pod-router-pod'], hs.headers['x-pod-router-pod']);
    assert.ok(took >= 80, `the handshake answer did not wait for the pin (${took} ms)`);
  }
});

test('polling: with a slow Redis link on A, a handshake routed by a stored room is answered before its pin lands; the session continues through B by the room', async (t) => {
  const redis = await startRedis(t, 'polling-room');
  const slow = await slowLink(t, redis.port, 400);
  const { a, b } = await startReplicas(t, 'redis-polling-room', `redis://127.0.0.1:${redis.port}`, {
    storeUrlA: `redis://127.0.0.1:${slow}`,
  });
  const room = `room_fast${uniq()}`;
  // The room's creation goes over the slow link once; then A's cache holds it.
  const first = await a.get(`/socket.io/?EIO=4&transport=polling&roomId=${room}&t=f`);
  assert.equal(first.status, 200);
  const pod = first.headers['x-pod-router-pod'];
  assert.equal(JSON.parse(await redis.cli('GET', `room:${room}:pod`)).podId, pod);
  for (let i = 0; i < 4; i++) {
    const t0 = Date.now();
    const hs = await a.get(`/socket.io/?EIO=4&transport=polling&roomId=${room}&t=r${i}`);
    const took = Date.now() - t0;
    assert.equal(hs.status, 200);
    assert.equal(hs.headers['x-pod-router-pod'], pod);
    const { sid } = openPacket(hs.text);
    // The pin is still on its way (400 ms); Redis cannot know the sid yet.
    assert.ok(took < 350, `the answer waited for the pin (${took} ms)`);
    assert.equal(await redis.cli('EXISTS', `podrouter:sid:${sid}`), '0', 'pinned before the answer');
    // B does not know the sid: it falls through to the room, which leads to the same pod.
    const q = `EIO=4&transport=polling&roomId=${room}&sid=${sid}`;
    const post = await request(`${b.routerUrl}/socket.io/?${q}`, {
      method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '40',
    });
    assert.equal(post.status, 200, `POST via B: ${post.status} ${post.text}`);
    assert.equal(post.headers['x-pod-router-pod'], pod);
    const poll = await b.get(`/socket.io/?${q}&t=p${i}`);
    assert.equal(poll.status, 200, `GET via B: ${poll.text}`);
    assert.equal(poll.headers['x-pod-router-pod'], pod);
    assert.match(poll.text, /^40/);
    // And the pin lands all the same.
    await waitFor(async () => (await redis.cli('GET', `podrouter:sid:${sid}`)) === pod,
      { timeoutMs: 5000, what: `the pin of ${sid}` });
  }
});

// A raw pod answering every request with an Engine.IO open packet (a new sid), then closing
// ('end') or resetting ('reset') the connection at once: the close arrives while the answer
// waits for its pin on a slow Redis link.
async function closingPod(t, mode) {
  const net = require('node:net');
  const pod = { accepted: 0, answered: 0 };
  const conns = new Set();
  const srv = net.createServer((sock) => {
    pod.accepted++;
    conns.add(sock);
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      buf = '';
      const body = `0{"sid":"raw${pod.answered++}${uniq()}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`;
      sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      if (mode === 'end') sock.end();
      else sock.resetAndDestroy();
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of conns) s.destroy();
    srv.close();
  });
  pod.port = srv.address().port;
  return pod;
}

for (const mode of ['end', 'reset']) {
  test(`polling: the pod ${mode === 'end' ? 'closes' : 'resets'} its connection while the handshake answer waits for its pin: the client gets it whole, the next request a new pod connection`, async (t) => {
    const redis = await startRedis(t, `polling-pod-${mode}`);
    const slow = await slowLink(t, redis.port, 80);
    const { a } = await startReplicas(t, `redis-polling-pod-${mode}`, `redis://127.0.0.1:${redis.port}`, {
      pods: 0, storeUrlA: `redis://127.0.0.1:${slow}`,
    });
    const pod = await closingPod(t, mode);
    const put = () => a.admin('PUT', '/v1/pods/raw-0', { body: { address: `127.0.0.1:${pod.port}` } });
    assert.equal((await put()).status, 201);
    const beat = setInterval(() => put().catch(() => {}), 500);
    t.after(() => clearInterval(beat));
    await a.waitPodsState(['raw-0'], 'ready', 5000);
    // A's own store connection (through the slow link) must be up, or the pin is not awaited
    // (degraded mode answers at once): the pod above is registered in A's memory first.
    await waitFor(async () => JSON.parse((await a.admin('GET', '/v1/cluster')).text).store === 'up',
      { timeoutMs: 10000, what: "A's Redis connection over the slow link" });
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const hs = await a.get(`/socket.io/?EIO=4&transport=polling&t=c${i}`);
      const took = Date.now() - t0;
      assert.equal(hs.status, 200, `handshake ${i}: ${hs.status} ${hs.text}`);
      const { sid } = openPacket(hs.text);
      assert.match(sid, /^raw/);
      assert.equal(hs.headers['content-length'], String(Buffer.byteLength(hs.text)));
      assert.ok(took >= 80, `the handshake answer did not wait for the pin (${took} ms)`);
      assert.equal(await redis.cli('GET', `podrouter:sid:${sid}`), 'raw-0', 'the pin');
      assert.equal(pod.accepted, i + 1, 'a closed pod connection was reused');
    }
    const m = await a.admin('GET', '/metrics');
    assert.doesNotMatch(m.text, /podrouter_proxy_errors_total\{reason="reset"\} [1-9]/, 'a complete answer counted as a reset');
  });
}

test('rooms: two participants arriving at once through different replicas meet on one pod (20 rooms)', async (t) => {
  const redis = await startRedis(t, 'rooms');
  const { a, b } = await startReplicas(t, 'redis-rooms', `redis://127.0.0.1:${redis.port}`);
  const tag = uniq();
  const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const roomId = `room_race_${tag}_${i}`;
    const sa = a.connect('/experiment', { roomId, participantId: `pa${i}` });
    const sb = b.connect('/experiment', { roomId, participantId: `pb${i}` });
    await Promise.all([waitConnected(sa), waitConnected(sb)]);
    const [wa, wb] = await Promise.all([whoami(sa), whoami(sb)]);
    // They share a Socket.IO room only when they share a pod.
    const got = new Promise((resolve) => sb.once('room-msg', resolve));
    await sa.timeout(3000).emitWithAck('room-msg', { n: i });
    const msg = await Promise.race([got, sleep(3000).then(() => null)]);
    const stored = JSON.parse(await redis.cli('GET', `room:${roomId}:pod`));
    return { roomId, wa: wa.pod, wb: wb.pod, msg, stored };
  }));
  const pods = new Set();
  for (const r of results) {
    assert.equal(r.wa, r.wb, `${r.roomId}: A ${r.wa} vs B ${r.wb}`);
    assert.ok(r.msg, `${r.roomId}: message not relayed`);
    assert.equal(r.stored.podId, r.wa, `${r.roomId}: redis says ${r.stored.podId}`);
    assert.ok(r.stored.assignedAt > 0);
    pods.add(r.wa);
  }
  t.diagnostic(`20 rooms spread over ${pods.size} pods`);
  // Both participants are counted once each, whichever replica saw them.
  await waitFor(async () => {
    const st = JSON.parse(await redis.cli('GET', `room:${results[0].roomId}:pod`));
    return st.participantCount === 2;
  }, { timeoutMs: 3000, what: 'participantCount 2' });
  const infoB = await b.admin('GET', `/v1/rooms/${results[0].roomId}`);
  assert.equal(infoB.status, 200);
  assert.equal(infoB.json.pod, results[0].wa);
  // Each replica learns the other's join from the count messages on P events (a replica skips
  // only its own, which its store's answer has counted): both caches say 2 for every room.
  for (const [name, r] of [['A', a], ['B', b]]) {
    await waitFor(async () => {
      for (const { roomId } of results) {
        const info = await r.admin('GET', `/v1/rooms/${roomId}`);
        if (info.status !== 200 || info.json.participantCount !== 2) return false;
      }
      return true;
    }, { timeoutMs: 3000, what: `participantCount 2 in ${name}'s cache for all 20 rooms` });
  }
});

test('rooms: a room pinned by HyperStudy writing its JSON into Redis is honoured', async (t) => {
  const redis = await startRedis(t, 'hyperstudy');
  const { a, b } = await startReplicas(t, 'redis-hyperstudy', `redis://127.0.0.1:${redis.port}`);
  const tag = uniq();
  for (const [i, podId] of [['1', 'backend-2'], ['2', 'backend-1'], ['3', 'backend-0.backend.hyperstudy.svc.cluster.local']]) {
    const roomId = `room_hs_${tag}_${i}`;
    const want = podId.split('.')[0];
    await redis.cli('SET', `room:${roomId}:pod`, JSON.stringify({ podId, participantCount: 2, assignedAt: Date.now() }), 'EX', '600');
    const sa = a.connect('/experiment', { roomId, participantId: 'x' });
    const sb = b.connect('/sync', { roomId, participantId: 'y' });
    await Promise.all([waitConnected(sa), waitConnected(sb)]);
    assert.equal((await whoami(sa)).pod, want);
    assert.equal((await whoami(sb)).pod, want);
    const http = await b.get(`/api/room/${roomId}/state`);
    assert.equal(http.json.pod, want);
    // HyperStudy's browser redirect names the same pod.
    const page = await a.get(`/experiment/${roomId}`, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 302);
    assert.match(page.headers.location, new RegExp(`pod=${want}$`));
    const stored = JSON.parse(await redis.cli('GET', `room:${roomId}:pod`));
    assert.equal(stored.podId, podId, 'the writer\'s value is left as it was');
  }
});

test('steady state: requests for known keys cost no Redis command (INFO commandstats)', async (t) => {
  const redis = await startRedis(t, 'bench');
  // Slow heartbeats so the background is small and measurable.
  const { a, b } = await startReplicas(t, 'redis-bench', `redis://127.0.0.1:${redis.port}`, {
    routerArgs: ['--pod-ttl', '10s'], podEnv: { HEARTBEAT_MS: '2000' },
  });
  const rooms = Array.from({ length: 20 }, (_, i) => `room_bench_${uniq()}_${i}`);
  // Twice through each replica: a room's second use on a replica makes it live there (one
  // TTL renewal, SPEC 3.6 tentative assignments), after which it is in steady state.
  for (let round = 0; round < 2; round++) {
    for (const r of rooms) {
      assert.equal((await a.get(`/api/room/${r}/state`)).status, 200);
      assert.equal((await b.get(`/api/room/${r}/state`)).status, 200);
    }
  }
  await sleep(1500); // the first activity reports of these rooms (P active) go out
  const total = async () => (await redis.commandStats()).total;
  // Background (heartbeats, pod reloads) over an idle window.
  await redis.cli('CONFIG', 'RESETSTAT');
  const idleStart = Date.now();
  await sleep(3000);
  const idle = await total();
  const idleMs = Date.now() - idleStart;
  await redis.cli('CONFIG', 'RESETSTAT');
  const n = 2000;
  const start = Date.now();
  const agent = new (require('node:http').Agent)({ keepAlive: true, maxSockets: 16 });
  let i = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (i < n) {
      const k = i++;
      const c = k % 2 ? a : b;
      const res = await request(`${c.routerUrl}/api/room/${rooms[k % rooms.length]}/state`, { agent });
      assert.equal(res.status, 200);
    }
  }));
  const busyMs = Date.now() - start;
  const stats = await redis.commandStats();
  agent.destroy();
  const background = (idle * busyMs) / idleMs;
  const perRequest = Math.max(0, stats.total - 1 - background) / n; // -1: the INFO itself
  t.diagnostic(`steady state: ${n} proxied requests in ${busyMs} ms, ${stats.total} Redis commands ` +
    `(${JSON.stringify(stats.per)}), background ~${background.toFixed(1)} ` +
    `(${idle} in ${idleMs} ms idle) => ${perRequest.toFixed(4)} commands per request`);
  assert.ok(perRequest < 0.01, `expected ~0 commands per request, got ${perRequest}`);
});

test('AUTH and SELECT: redis://:password@host:port/db keeps its keys in that database', async (t) => {
  const password = `pw-${uniq()}`;
  const redis = await startRedis(t, 'auth', { password });
  const { a } = await startReplicas(t, 'redis-auth', `redis://:${password}@127.0.0.1:${redis.port}/2`, { pods: 1 });
  const room = `room_auth_${uniq()}`;
  const r = await a.get(`/api/room/${room}/state`);
  assert.equal(r.status, 200);
  const pod = r.headers['x-pod-router-pod'];
  const stored = JSON.parse(await redis.cli('-n', '2', 'GET', `room:${room}:pod`));
  assert.equal(stored.podId, pod);
  assert.equal(await redis.cli('-n', '0', 'EXISTS', `room:${room}:pod`), '0');
  assert.equal(await redis.cli('-n', '2', 'SISMEMBER', 'podrouter:pods', pod), '1');
  const ready = await a.admin('GET', '/readyz');
  assert.deepEqual(ready.json, { status: 'ready', store: 'up' });
  // The password never reaches a log line.
  const fs = require('node:fs');
  // (the harness's own first line, '# <command line>', is not the router's output)
  const log = fs.readFileSync(a.routerLog, 'utf8').split('\n').filter((l) => !l.startsWith('#')).join('\n');
  assert.ok(log.includes('"msg"'));
  assert.equal(log.includes(password), false, 'password found in the router log');
});

test('admin reads: B shows rooms and participants assigned through A or written into Redis by HyperStudy', async (t) => {
  const redis = await startRedis(t, 'admin-reads');
  const { a, b } = await startReplicas(t, 'redis-admin-reads', `redis://127.0.0.1:${redis.port}`);
  const room = `room_reads_${uniq()}`;
  const who = `p_${uniq()}`;
  const r1 = await a.get(`/api/room/${room}/state`);
  assert.equal(r1.status, 200);
  const r2 = await a.get(`/api/headers?participantId=${who}`);
  assert.equal(r2.status, 200);
  const viaB = await b.admin('GET', `/v1/rooms/${room}`);
  assert.equal(viaB.status, 200, JSON.stringify(viaB.json));
  assert.equal(viaB.json.pod, r1.headers['x-pod-router-pod']);
  assert.equal(viaB.json.room, room);
  const partB = await b.admin('GET', `/v1/participants/${who}`);
  assert.equal(partB.status, 200, JSON.stringify(partB.json));
  assert.equal(partB.json.pod, r2.headers['x-pod-router-pod']);
  // Written by another writer (HyperStudy's backend) straight into Redis, announced nowhere.
  const pinned = `room_hs_${uniq()}`;
  const assignedAt = Date.now() - 5000;
  await redis.cli('SET', `room:${pinned}:pod`, JSON.stringify({ podId: 'backend-1', participantCount: 3, assignedAt }));
  const hs = await b.admin('GET', `/v1/rooms/${pinned}`);
  assert.equal(hs.status, 200, JSON.stringify(hs.json));
  assert.equal(hs.json.pod, 'backend-1');
  assert.equal(hs.json.participantCount, 3);
  assert.equal((await b.admin('GET', `/v1/rooms/room_nobody_${uniq()}`)).status, 404);
  assert.equal((await b.admin('GET', '/v1/rooms/bad%20key')).status, 400);
});
