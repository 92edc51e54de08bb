'use strict';
// Error answers of the public listener (SPEC 3.4) driven by raw TCP clients,
// connection limits, and the admin API's error codes (SPEC 4). After each
// case the router must still answer /healthz.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Cluster, rawExchange, parseResponse, request, freePort, waitFor, sleep } = require('./lib/cluster');

// Asserts a JSON error body { error: code, message: <text> }.
function assertError(res, status, code, what) {
  assert.ok(res, `${what}: got a complete HTTP response`);
  assert.equal(res.status, status, `${what}: status (body: ${res.text})`);
  assert.ok(res.json && typeof res.json === 'object', `${what}: JSON body (got ${JSON.stringify(res.text)})`);
  assert.equal(res.json.error, code, `${what}: error code`);
  assert.equal(typeof res.json.message, 'string', `${what}: message text`);
}

async function assertHealthy(cluster) {
  const res = await request(`${cluster.adminUrl}/healthz`, { timeoutMs: 3000 });
  assert.equal(res.status, 200, 'router still answers /healthz');
}

// Sends one request on a raw connection and parses the response. Returns
// once a complete response is in, or with waitClose once the router closed.
async function raw(cluster, text, { waitClose = false, ...opts } = {}) {
  const r = await rawExchange(cluster.routerPort, text, { timeoutMs: 5000, untilResponse: !waitClose, ...opts });
  return { ...r, res: parseResponse(r.data) };
}

// A raw keep-alive connection with one completed request on it.
function openWithRequest(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no response on keep-alive connection'));
    }, 5000);
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      reject(new Error('connection closed before a response'));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const res = parseResponse(buf);
      if (res && res.headers['content-length'] !== undefined && res.body.length >= Number(res.headers['content-length'])) {
        clearTimeout(timer);
        sock.removeAllListeners('close');
        sock.on('close', () => {});
        resolve({ sock, res });
      }
    });
    sock.write('GET /healthz HTTP/1.1\r\nHost: e2e\r\nConnection: keep-alive\r\n\r\n');
  });
}

describe('public listener errors (1 pod, --header-timeout 1s, --idle-timeout 2s)', { timeout: 120000 }, () => {
  let cluster;
  before(async () => {
    cluster = new Cluster('errors-public', { pods: 1, routerArgs: ['--header-timeout', '1s', '--idle-timeout', '2s'] });
    await cluster.start();
  });
  after(() => cluster && cluster.stop());

  it('malformed request line: 400 bad_request, then close', async () => {
    const r = await raw(cluster, 'THIS IS NOT HTTP\r\n\r\n', { waitClose: true });
    assertError(r.res, 400, 'bad_request', 'malformed request line');
    assert.ok(r.closed, 'connection closed');
    await assertHealthy(cluster);
  });

  it('Content-Length and Transfer-Encoding together: 400 bad_request, then close', async () => {
    const r = await raw(cluster,
      'POST /api/echo HTTP/1.1\r\nHost: e2e\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', { waitClose: true });
    assertError(r.res, 400, 'bad_request', 'CL+TE');
    assert.ok(r.closed, 'connection closed');
    await assertHealthy(cluster);
  });

  it('request head over 16384 bytes: 431 header_too_large', async () => {
    const r = await raw(cluster, `GET /api/headers HTTP/1.1\r\nHost: e2e\r\nX-Big: ${'a'.repeat(17000)}\r\n\r\n`);
    assertError(r.res, 431, 'header_too_large', 'big head');
    await assertHealthy(cluster);
  });

  it('request head just under the limit is proxied', async () => {
    const head0 = 'GET /api/headers HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\nX-Big: \r\n\r\n';
    const filler = 'b'.repeat(16300 - head0.length);
    const r = await raw(cluster, `GET /api/headers HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\nX-Big: ${filler}\r\n\r\n`);
    assert.ok(r.res, 'response');
    assert.equal(r.res.status, 200, r.res.head);
    assert.equal(r.res.json['x-big'], filler);
    await assertHealthy(cluster);
  });

  it('head not complete within --header-timeout: 408 request_timeout, then close', async () => {
    const r = await raw(cluster, 'GET /api/headers HTTP/1.1\r\nHost: e2e\r\n', { timeoutMs: 6000, waitClose: true });
    assertError(r.res, 408, 'request_timeout', 'stalled head');
    assert.ok(r.closed, 'connection closed');
    assert.ok(r.firstByteMs >= 700 && r.firstByteMs <= 4000, `408 after about 1 s (took ${r.firstByteMs} ms)`);
    await assertHealthy(cluster);
  });

  it('a head dribbled byte by byte past --header-timeout also gets 408', async () => {
    const parts = ['GET /api/headers HTTP/1.1\r\nHost: e2e\r\n'];
    for (let i = 0; i < 15; i++) parts.push(200, `X-Drip-${i}: x\r\n`);
    parts.push('\r\n');
    const r = await raw(cluster, parts, { timeoutMs: 6000, waitClose: true });
    assertError(r.res, 408, 'request_timeout', 'slowloris head');
    assert.ok(r.firstByteMs <= 2500, `the timeout bounds the whole head (answered after ${r.firstByteMs} ms)`);
    await assertHealthy(cluster);
  });

  it('bad affinity keys: 400 bad_key', async () => {
    const cases = [
      '/api/headers?roomId=bad!key',
      `/api/headers?roomId=${'a'.repeat(129)}`,
      '/api/headers?participantId=p%20q',
      `/api/room/room_${'c'.repeat(124)}/state`,
      '/socket.io/?EIO=4&transport=polling&roomId=room%2Fslash',
    ];
    for (const p of cases) {
      const r = await raw(cluster, `GET ${p} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n`);
      assertError(r.res, 400, 'bad_key', p);
    }
    const hdr = await raw(cluster, 'GET /api/headers HTTP/1.1\r\nHost: e2e\r\nX-Participant-Id: a$b\r\nConnection: close\r\n\r\n');
    assertError(hdr.res, 400, 'bad_key', 'X-Participant-Id');
    // 128 bytes from the allowed set is a valid key (':' needs no escaping
    // in a query or a path).
    const okKey = `A1_.:-${'z'.repeat(122)}`;
    const ok = await request(`${cluster.routerUrl}/api/headers?roomId=${okKey}`);
    assert.equal(ok.status, 200, `a 128-byte key is accepted: ${ok.text}`);
    const room = await cluster.admin('GET', `/v1/rooms/${okKey}`);
    assert.equal(room.status, 200);
    const bad = await cluster.admin('GET', '/v1/rooms/bad!key');
    assert.ok(bad.status === 400 || bad.status === 404, `admin lookup of a bad key is rejected (${bad.status})`);
    await assertHealthy(cluster);
  });
});

describe('upstream failures', { timeout: 120000 }, () => {
  it('no pod registered: 503 no_pod with Retry-After: 1', async (t) => {
    const cluster = new Cluster('errors-no-pod', { pods: 0 });
    t.after(() => cluster.stop());
    await cluster.start();
    for (const p of ['/api/headers', '/socket.io/?EIO=4&transport=polling', '/api/room/room_nopod/state']) {
      const r = await raw(cluster, `GET ${p} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n`);
      assertError(r.res, 503, 'no_pod', p);
      assert.equal(r.res.headers['retry-after'], '1');
    }
    await assertHealthy(cluster);
  });

  it('pod registered where nothing listens: 502 upstream_unavailable', async (t) => {
    // --pod-fall 0: the default (2) marks the only pod down after two refused connects, and
    // the third request gets 503 no_pod (passive-health.test.js checks that).
    const cluster = new Cluster('errors-refused', { pods: 0, routerArgs: ['--pod-fall', '0'] });
    t.after(() => cluster.stop());
    await cluster.start();
    const deadPort = await freePort();
    await cluster.fakePod('dead-0', `127.0.0.1:${deadPort}`);
    for (const p of ['/api/headers', '/api/room/room_refused/state', '/socket.io/?EIO=4&transport=polling']) {
      const r = await raw(cluster, `GET ${p} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n`);
      assertError(r.res, 502, 'upstream_unavailable', p);
    }
    await assertHealthy(cluster);
  });

  it('pod accepts but never answers: 504 upstream_timeout after --idle-timeout', async (t) => {
    const cluster = new Cluster('errors-timeout', { pods: 0, routerArgs: ['--idle-timeout', '2s'] });
    t.after(() => cluster.stop());
    await cluster.start();
    const hole = await cluster.blackhole();
    await cluster.fakePod('silent-0', `127.0.0.1:${hole.address().port}`);
    const r = await raw(cluster, 'GET /api/room/room_silent/state HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n', { timeoutMs: 10000 });
    assertError(r.res, 504, 'upstream_timeout', 'silent pod');
    assert.ok(r.firstByteMs >= 1500 && r.firstByteMs <= 6000, `504 after about 2 s (took ${r.firstByteMs} ms)`);
    await assertHealthy(cluster);
  });

  it('sid pinned to a pod that died: 400 Session ID unknown', async (t) => {
    const cluster = new Cluster('errors-sid-gone', { pods: 2 });
    t.after(() => cluster.stop());
    await cluster.start();
    const hs = await cluster.get('/socket.io/?EIO=4&transport=polling');
    assert.equal(hs.status, 200, hs.text);
    const sid = JSON.parse(hs.text.slice(1)).sid;
    const pod = hs.headers['x-pod'];
    const pinned = await cluster.get(`/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '40', headers: { 'content-type': 'text/plain' } });
    assert.equal(pinned.headers['x-pod'], pod, 'sid pinned to the handshake pod');
    await cluster.kill(pod, 'SIGKILL');
    await cluster.waitPodsState([pod], 'down', 8000);
    for (const method of ['GET', 'POST']) {
      const r = await raw(cluster, method === 'GET'
        ? `GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n`
        : `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: e2e\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\n3`);
      assert.ok(r.res, `${method}: response`);
      assert.equal(r.res.status, 400, `${method}: ${r.res.head}`);
      assert.deepEqual(r.res.json, { code: 1, message: 'Session ID unknown' }, `${method}: Engine.IO's own error body`);
    }
    await assertHealthy(cluster);
  });

  it("the router's own answers honour Connection: close (RFC 9112 9.6)", async (t) => {
    const cluster = new Cluster('errors-conn-close', { pods: 0 });
    t.after(() => cluster.stop());
    await cluster.start();
    const cases = [
      ['/api/headers', 503, 'no_pod'],
      ['/api/headers?roomId=bad!key', 400, 'bad_key'],
    ];
    for (const [p, status, code] of cases) {
      const r = await raw(cluster, `GET ${p} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n`, { waitClose: true, timeoutMs: 3000 });
      assertError(r.res, status, code, p);
      assert.ok(r.closed && r.elapsedMs < 1000, `${p}: connection closed after the ${status} (closed=${r.closed}, ${r.elapsedMs} ms)`);
    }
  });

  it('--max-connections 5: the 6th concurrent connection is closed at once', async (t) => {
    const cluster = new Cluster('errors-max-conn', { pods: 1, routerArgs: ['--max-connections', '5'] });
    t.after(() => cluster.stop());
    await cluster.start();
    const open = [];
    t.after(() => open.forEach((o) => o.sock.destroy()));
    for (let i = 0; i < 5; i++) {
      const o = await openWithRequest(cluster.routerPort);
      assert.equal(o.res.status, 200, `connection ${i + 1} served`);
      open.push(o);
    }
    const sixth = await rawExchange(cluster.routerPort, 'GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n', { timeoutMs: 3000 });
    assert.ok(sixth.closed, 'the 6th connection is closed');
    assert.ok(sixth.elapsedMs < 1000, `closed at once (${sixth.elapsedMs} ms)`);
    assert.ok(!/^HTTP\/1\.1 200/.test(sixth.data.toString('latin1')), 'the 6th connection is not served');
    await assertHealthy(cluster);
    open.pop().sock.destroy();
    await waitFor(async () => {
      const r = await rawExchange(cluster.routerPort, 'GET /healthz HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n', { timeoutMs: 2000 });
      const res = parseResponse(r.data);
      return res && res.status !== 503 && res.status < 500;
    }, { timeoutMs: 3000, what: 'a new connection to be served once one closed' });
  });
});

describe('admin API errors', { timeout: 120000 }, () => {
  let cluster;
  before(async () => {
    cluster = new Cluster('errors-admin', { pods: 1 });
    await cluster.start();
  });
  after(() => cluster && cluster.stop());

  const json = { 'content-type': 'application/json' };

  it('PUT pod with bad JSON: 400 bad_json', async () => {
    const res = await cluster.admin('PUT', '/v1/pods/backend-9', { body: '{"address": "127.0.0.1:1",', headers: json });
    assertError(res, 400, 'bad_json', 'bad JSON');
  });

  it('PUT pod with a bad field: 400 bad_field', async () => {
    const bodies = [
      { address: 'not an address' },
      { address: '127.0.0.1:70000' },
      { address: '127.0.0.1:4000', capacity: { rooms: 0, participants: 80 } },
      { address: '127.0.0.1:4000', capacity: { rooms: 'many' } },
      { capacity: { rooms: 1, participants: 1 } },
    ];
    for (const body of bodies) {
      const res = await cluster.admin('PUT', '/v1/pods/backend-9', { body: JSON.stringify(body), headers: json });
      assertError(res, 400, 'bad_field', JSON.stringify(body));
    }
    const pods = await cluster.podsByName();
    assert.ok(!pods.has('backend-9'), 'nothing registered by bad requests');
  });

  it('PUT pod as text/plain: 415 unsupported_media_type', async () => {
    const res = await cluster.admin('PUT', '/v1/pods/backend-9', {
      body: JSON.stringify({ address: '127.0.0.1:4000' }), headers: { 'content-type': 'text/plain' },
    });
    assertError(res, 415, 'unsupported_media_type', 'text/plain');
  });

  it('70 KB body: 413 body_too_large', async () => {
    const body = JSON.stringify({ address: '127.0.0.1:4000', zone: 'z'.repeat(70 * 1024) });
    const res = await cluster.admin('PUT', '/v1/pods/backend-9', { body, headers: json });
    assertError(res, 413, 'body_too_large', '70 KB');
  });

  it('unknown route: 404 not_found; wrong method: 405 method_not_allowed', async () => {
    assertError(await cluster.admin('GET', '/v1/nothing-here'), 404, 'not_found', 'unknown route');
    assertError(await cluster.admin('GET', '/v1/pods/no-such-pod'), 404, 'not_found', 'unknown pod');
    assertError(await cluster.admin('GET', '/v1/rooms/room_never_seen'), 404, 'not_found', 'unknown room');
    assertError(await cluster.admin('POST', '/v1/cluster', { body: '{}', headers: json }), 405, 'method_not_allowed', 'POST /v1/cluster');
    assertError(await cluster.admin('PATCH', '/v1/pods/backend-0', { body: '{}', headers: json }), 405, 'method_not_allowed', 'PATCH pod');
  });

  it('pin a room to an unknown pod: 409 conflict; to a known pod: 200', async () => {
    const res = await cluster.admin('PUT', '/v1/rooms/room_pin', { body: { pod: 'backend-77' } });
    assertError(res, 409, 'conflict', 'unknown pod');
    const ok = await cluster.admin('PUT', '/v1/rooms/room_pin', { body: { pod: 'backend-0' } });
    assert.ok(ok.status === 200 || ok.status === 201, `pin to backend-0: ${ok.status} ${ok.text}`);
    const got = await cluster.admin('GET', '/v1/rooms/room_pin');
    assert.equal(got.json.pod, 'backend-0');
    const routed = await cluster.get('/api/room/room_pin/state');
    assert.equal(routed.json.pod, 'backend-0', 'the pin routes');
  });
});

describe('admin API with --token-file', { timeout: 60000 }, () => {
  let cluster;
  let dir;
  const token = `e2e-token-${process.pid}-${Date.now()}`;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pod-router-e2e-'));
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    // The example pod reads the same file (ROUTER_TOKEN_FILE) to register.
    cluster = new Cluster('errors-token', { pods: 1, routerArgs: ['--token-file', tokenFile], tokenFile });
    await cluster.start();
  });
  after(async () => {
    if (cluster) await cluster.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const body = { address: '127.0.0.1:4999', capacity: { rooms: 20, participants: 80 } };

  it('writes without or with a wrong bearer token: 401 unauthorized', async () => {
    assertError(await cluster.admin('PUT', '/v1/pods/tok-1', { body }), 401, 'unauthorized', 'no token');
    assertError(await cluster.admin('PUT', '/v1/pods/tok-1', { body, headers: { authorization: 'Bearer wrong' } }), 401, 'unauthorized', 'wrong token');
    assertError(await cluster.admin('PUT', '/v1/pods/tok-1', { body, headers: { authorization: `Bearer ${token}x` } }), 401, 'unauthorized', 'token plus a byte');
    assertError(await cluster.admin('POST', '/v1/pods/backend-0/drain'), 401, 'unauthorized', 'drain without token');
    assertError(await cluster.admin('DELETE', '/v1/pods/backend-0'), 401, 'unauthorized', 'delete without token');
    const pods = await cluster.podsByName();
    assert.ok(!pods.has('tok-1'));
    assert.equal(pods.get('backend-0').state, 'ready');
  });

  it('the right bearer token: 201 then 200; reads stay open', async () => {
    const auth = { authorization: `Bearer ${token}` };
    const first = await cluster.admin('PUT', '/v1/pods/tok-1', { body, headers: auth });
    assert.equal(first.status, 201, first.text);
    const again = await cluster.admin('PUT', '/v1/pods/tok-1', { body, headers: auth });
    assert.equal(again.status, 200, again.text);
    const read = await cluster.admin('GET', '/v1/pods/tok-1');
    assert.equal(read.status, 200);
    assert.equal(read.json.name, 'tok-1');
    assert.equal(read.json.address, '127.0.0.1:4999');
    const del = await cluster.admin('DELETE', '/v1/pods/tok-1', { headers: auth });
    assert.equal(del.status, 204);
  });

  it('an example pod with ROUTER_TOKEN_FILE registered itself', async () => {
    const pods = await cluster.podsByName();
    assert.equal(pods.get('backend-0').state, 'ready');
    await sleep(100);
  });
});
