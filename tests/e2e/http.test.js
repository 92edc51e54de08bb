'use strict';
// Plain HTTP proxying through the router: room routes, streamed bodies both
// ways, forwarding headers, keep-alive, the browser redirect, and the
// affinity cookie / sid pin of a polling handshake.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');
const { Cluster, request, pattern, sha256, waitFor } = require('./lib/cluster');

const MB = 1024 * 1024;

// Streams `size` random bytes to POST /api/echo; chunked unless withLength.
// Resolves { status, headers, sentHash, gotHash, gotLength }.
function postEcho(port, size, { withLength }) {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/octet-stream' };
    if (withLength) headers['content-length'] = String(size);
    const req = http.request({ host: '127.0.0.1', port, path: '/api/echo', method: 'POST', headers, agent: false });
    const sent = crypto.createHash('sha256');
    const got = crypto.createHash('sha256');
    let gotLength = 0;
    const timer = setTimeout(() => req.destroy(new Error('echo timed out')), 60000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      res.on('data', (c) => {
        got.update(c);
        gotLength += c.length;
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, sentHash: sent.digest('hex'), gotHash: got.digest('hex'), gotLength });
      });
      res.on('error', reject);
    });
    let left = size;
    const CHUNK = 64 * 1024;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(CHUNK, left);
        const chunk = crypto.randomBytes(n);
        sent.update(chunk);
        left -= n;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe('HTTP proxying', { timeout: 180000 }, () => {
  let cluster;
  const tag = Date.now().toString(36);

  before(async () => {
    cluster = new Cluster('http', { pods: 3 });
    await cluster.start();
  });
  after(() => cluster && cluster.stop());

  it('GET /api/room/room_abc/state reaches the room pod and names it', async () => {
    const res = await cluster.get('/api/room/room_abc/state');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.roomId, 'room_abc');
    assert.equal(res.headers['x-pod-router-pod'], res.json.pod, 'x-pod-router-pod names the pod');
    assert.equal(res.headers['x-pod'], res.json.pod);
    const room = await cluster.admin('GET', '/v1/rooms/room_abc');
    assert.equal(room.status, 200, room.text);
    assert.equal(room.json.pod, res.json.pod);
    for (let i = 0; i < 5; i++) {
      const again = await cluster.get('/api/room/room_abc/state');
      assert.equal(again.json.pod, res.json.pod, 'the room stays on its pod');
    }
  });

  it('POST /api/echo: 5 MiB chunked body comes back identical', async () => {
    const r = await postEcho(cluster.routerPort, 5 * MB, { withLength: false });
    assert.equal(r.status, 200);
    assert.equal(r.gotLength, 5 * MB);
    assert.equal(r.gotHash, r.sentHash);
    assert.match(String(r.headers['x-pod-router-pod']), /^backend-\d$/);
  });

  it('POST /api/echo: 5 MiB Content-Length body comes back identical', async () => {
    const r = await postEcho(cluster.routerPort, 5 * MB, { withLength: true });
    assert.equal(r.status, 200);
    assert.equal(r.gotLength, 5 * MB);
    assert.equal(r.gotHash, r.sentHash);
  });

  it('GET /api/big?bytes=20000000 arrives intact', async () => {
    const n = 20000000;
    const res = await request(`${cluster.routerUrl}/api/big?bytes=${n}`, { timeoutMs: 60000 });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, n);
    assert.equal(sha256(res.body), sha256(pattern(0, n)));
  });

  it('forwarding headers are added and hop-by-hop headers removed', async () => {
    const res = await cluster.get('/api/headers', {
      headers: {
        host: 'study.example.org',
        connection: 'keep-alive, x-hop-secret',
        'keep-alive': 'timeout=5',
        'x-hop-secret': 'must-not-reach-the-pod',
        'x-end-to-end': 'kept',
      },
    });
    res.socket.destroy();
    assert.equal(res.status, 200, res.text);
    const h = res.json;
    assert.match(String(h['x-forwarded-for']), /(^|,\s*)127\.0\.0\.1$/, 'x-forwarded-for ends with the peer');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], 'study.example.org');
    assert.ok(h['x-request-id'] && h['x-request-id'].length > 0, 'x-request-id added');
    assert.equal(h['x-hop-secret'], undefined, 'connection-listed header removed');
    assert.equal(h['keep-alive'], undefined, 'keep-alive removed');
    assert.equal(h['x-end-to-end'], 'kept');
    assert.ok(!/x-hop-secret/i.test(String(h.connection || '')), 'connection header does not carry client tokens');
  });

  it('incoming X-Forwarded-* and X-Request-Id are kept (XFF appended)', async () => {
    const res = await cluster.get('/api/headers', {
      headers: {
        'x-forwarded-for': '203.0.113.7',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'front.example.org',
        'x-request-id': 'req-e2e-42',
      },
    });
    assert.equal(res.status, 200);
    const h = res.json;
    assert.match(String(h['x-forwarded-for']), /^203\.0\.113\.7,\s*127\.0\.0\.1$/);
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h['x-forwarded-host'], 'front.example.org');
    assert.equal(h['x-request-id'], 'req-e2e-42');
  });

  it('keep-alive: 200 sequential requests over one client connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set();
      for (let i = 0; i < 200; i++) {
        const path = i % 2 ? '/api/room/room_keepalive/state' : `/api/headers?i=${i}`;
        const res = await request(`${cluster.routerUrl}${path}`, { agent, timeoutMs: 5000 });
        assert.equal(res.status, 200, `request ${i}`);
        sockets.add(res.socket);
      }
      assert.equal(sockets.size, 1, 'all 200 requests used one connection');
    } finally {
      agent.destroy();
    }
  });

  it('browser GET /experiment/room_xyz redirects to the room pod', async () => {
    const res = await cluster.get('/experiment/room_xyz', { headers: { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8' } });
    assert.equal(res.status, 302, res.text);
    const room = await cluster.admin('GET', '/v1/rooms/room_xyz');
    assert.equal(room.status, 200, 'the redirect assigned the room');
    assert.equal(res.headers.location, `/experiment?roomId=room_xyz&pod=${room.json.pod}`);
  });

  it('non-browser GET /experiment/room_xyz is proxied to the room pod', async () => {
    const res = await cluster.get('/experiment/room_xyz', { headers: { accept: 'application/json' } });
    assert.equal(res.status, 200);
    const room = await cluster.admin('GET', '/v1/rooms/room_xyz');
    assert.equal(res.headers['x-pod'], room.json.pod);
    assert.equal(res.headers['x-pod-router-pod'], room.json.pod);
  });

  it('the affinity cookie routes plain requests to its pod; a forged one is ignored', async () => {
    const hs = await cluster.get(`/socket.io/?EIO=4&transport=polling&t=ck${tag}`);
    const pod = hs.headers['x-pod'];
    const cookie = [].concat(hs.headers['set-cookie'] || []).find((c) => /^pr_affinity=/.test(c));
    assert.ok(cookie, 'pr_affinity set');
    const pair = cookie.split(';')[0];
    for (let i = 0; i < 10; i++) {
      const res = await cluster.get('/api/headers', { headers: { cookie: `other=1; ${pair}` } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-pod'], pod, 'cookie affinity');
    }
    const other = ['backend-0', 'backend-1', 'backend-2'].find((p) => p !== pod);
    const forged = await cluster.get('/api/headers', { headers: { cookie: `pr_affinity=${other}.${'0'.repeat(64)}` } });
    assert.equal(forged.status, 200, 'a forged cookie is ignored, not an error');
  });
  it('a client that aborts a pending long-poll is let go (SPEC 7 connection gauge)', async () => {
    const gauge = async () => {
      const res = await cluster.admin('GET', '/metrics');
      const m = /^podrouter_connections_active\{kind="client"\} (\d+)/m.exec(res.text);
      assert.ok(m, 'podrouter_connections_active{kind="client"} exported');
      return Number(m[1]);
    };
    const hs = await cluster.get(`/socket.io/?EIO=4&transport=polling&t=abort${tag}`);
    const sid = JSON.parse(hs.text.slice(1)).sid;
    await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '40', headers: { 'content-type': 'text/plain' } });
    const first = await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    assert.match(first.text, /^40/);
    // The requests above asked for Connection: close; the router lingers on
    // each until the client's FIN (RFC 9112 9.6), so the gauge still counts
    // them for a moment after their answers arrived. Take the baseline once
    // it has stopped moving.
    let base = await gauge();
    await waitFor(async () => {
      await new Promise((r) => setTimeout(r, 150));
      const now = await gauge();
      const still = now === base;
      base = now;
      return still;
    }, { timeoutMs: 5000, what: 'the client connection gauge to settle' });
    // The next GET is held by the pod (nothing to send until its ping).
    const sock = net.connect({ host: '127.0.0.1', port: cluster.routerPort });
    sock.on('error', () => {});
    sock.write(`GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: e2e\r\n\r\n`);
    await waitFor(async () => (await gauge()) >= base + 1, { timeoutMs: 3000, what: 'the long-poll to be counted' });
    sock.destroy();
    // <= base: a keep-alive connection of an earlier request that the router closes meanwhile
    // (idle timeout on a loaded machine) lowers the gauge too; the long-poll's must go.
    await waitFor(async () => (await gauge()) <= base, { timeoutMs: 3000, what: 'the aborted long-poll connection to be closed by the router' });
  });

  // Runs last: it drains pods of the shared cluster.
  it('polling handshake sets pr_affinity and pins the sid to its pod', async (t) => {
    const sessions = [];
    for (let i = 0; i < 10; i++) {
      const hs = await cluster.get(`/socket.io/?EIO=4&transport=polling&t=hs${tag}${i}`);
      assert.equal(hs.status, 200, hs.text);
      assert.match(hs.text, /^0\{"sid":"/);
      const sid = JSON.parse(hs.text.slice(1)).sid;
      const pod = hs.headers['x-pod'];
      assert.equal(hs.headers['x-pod-router-pod'], pod);
      const cookies = [].concat(hs.headers['set-cookie'] || []);
      const aff = cookies.find((c) => /^pr_affinity=/.test(c));
      assert.ok(aff, `pr_affinity cookie set (got ${JSON.stringify(cookies)})`);
      assert.match(aff, new RegExp(`^pr_affinity=${pod}\\.[0-9a-f]+`), 'cookie value is <pod>.<hex hmac>');
      assert.match(aff, /;\s*HttpOnly/i);
      assert.match(aff, /;\s*Path=\/(;|$)/);
      assert.match(aff, /;\s*SameSite=Lax/i);

      // Connect the default namespace, then long-poll: both by sid alone.
      const post = await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
        method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '40',
      });
      assert.equal(post.status, 200, `POST with sid: ${post.text}`);
      assert.equal(post.headers['x-pod'], pod, 'POST reaches the handshake pod');
      const poll = await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`);
      assert.equal(poll.status, 200, `GET with sid: ${poll.text}`);
      assert.equal(poll.headers['x-pod'], pod, 'GET reaches the handshake pod');
      assert.match(poll.text, /^40\{"sid":"/);
      sessions.push({ sid, pod });
    }
    const used = [...new Set(sessions.map((x) => x.pod))].sort();
    t.diagnostic(`handshake pods: ${used.join(',')}`);

    // Drain the pods that took the handshakes (when one is left over), so
    // the policy alone would now send these requests elsewhere: only the
    // sid pin keeps them on their pod.
    if (used.length < 3) {
      for (const pod of used) {
        const d = await cluster.admin('POST', `/v1/pods/${pod}/drain`);
        assert.equal(d.status, 200, `drain ${pod}: ${d.text}`);
      }
      const fresh = await cluster.get(`/socket.io/?EIO=4&transport=polling&t=fresh${tag}`);
      assert.equal(fresh.status, 200);
      assert.ok(!used.includes(fresh.headers['x-pod']), 'a new handshake avoids the draining pods');
    }
    for (const { sid, pod } of sessions) {
      const post = await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
        method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '421["whoami"]',
      });
      assert.equal(post.status, 200, `POST whoami: ${post.text}`);
      assert.equal(post.headers['x-pod'], pod, 'POST stays on the handshake pod');
      const poll = await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`);
      assert.equal(poll.status, 200, `GET: ${poll.text}`);
      assert.equal(poll.headers['x-pod'], pod, 'GET stays on the handshake pod');
      const m = /431(\[[^\x1e]*\])/.exec(poll.text);
      assert.ok(m, `whoami ack in the poll (got ${JSON.stringify(poll.text)})`);
      const who = JSON.parse(m[1])[0];
      assert.equal(who.pod, pod);
      assert.equal(who.sid, sid);
    }
  });
});
