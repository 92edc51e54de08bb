'use strict';
// Edge hardening (issue 8, SPEC 3.5, 3.6, 4.3): one test per attack that used to crash,
// desync or leak, driven by raw sockets through the real router to a raw capture pod that
// records every byte it receives. Each must be rejected (nothing forwarded) or relayed
// exactly, and the router must survive.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crypto = require('node:crypto');
const { Cluster, rawExchange, parseResponse, request, freePort, waitFor, sleep } = require('./lib/cluster');

const HOST = '127.0.0.1';

// Splits a byte stream into HTTP/1.1 requests (strict: CRLF, CL or chunked); returns
// { messages: [{head, body}], rest }.
function splitRequests(buf) {
  const messages = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1');
    let p = end + 4;
    const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
    const chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
    let body = Buffer.alloc(0);
    if (chunked) {
      const parts = [];
      let ok = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString('latin1').split(';')[0], 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const te = buf.indexOf('\r\n\r\n', le);
          if (te < 0) break;
          p = te + 4;
          ok = true;
          break;
        }
        if (buf.length < le + 2 + size + 2) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      if (!ok) break;
      body = Buffer.concat(parts);
    } else if (cl) {
      if (buf.length < p + Number(cl[1])) break;
      body = buf.subarray(p, p + Number(cl[1]));
      p += Number(cl[1]);
    }
    messages.push({ head, body });
    off = p;
  }
  return { messages, rest: buf.subarray(off) };
}

// A pod that records what it receives and answers each complete request with
// respond(req, conn) (bytes), or as the test's current mode says.
class CapturePod {
  constructor() {
    this.conns = [];
    this.respond = (req) => okResponse(`seen ${req.head.split(' ')[1]}`);
    this.closeAfter = false;
    this.server = net.createServer((sock) => {
      sock.setNoDelay(true);
      const conn = { sock, data: Buffer.alloc(0), answered: 0, parsed: 0, messages: [] };
      this.conns.push(conn);
      sock.on('data', (d) => {
        conn.data = Buffer.concat([conn.data, d]);
        const { messages, rest } = splitRequests(conn.data.subarray(conn.parsed));
        conn.messages.push(...messages);
        conn.parsed = conn.data.length - rest.length;
        while (conn.answered < conn.messages.length) {
          const req = conn.messages[conn.answered++];
          const out = this.respond(req, conn);
          if (out === null) continue;
          sock.write(out);
          if (this.closeAfter) {
            sock.end();
            break;
          }
        }
      });
      sock.on('error', () => {});
    });
  }

  async start() {
    this.port = await freePort();
    await new Promise((resolve) => this.server.listen(this.port, HOST, resolve));
  }

  reset() {
    for (const c of this.conns) c.sock.destroy();
    this.conns = [];
    this.respond = (req) => okResponse(`seen ${req.head.split(' ')[1]}`);
    this.closeAfter = false;
  }

  // Every request the pod received, over all connections.
  requests() {
    return this.conns.flatMap((c) => c.messages);
  }

  received() {
    return Buffer.concat(this.conns.map((c) => c.data)).toString('latin1');
  }

  stop() {
    this.reset();
    this.server.close();
  }
}

function okResponse(body, extra = '') {
  return `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

// Parses every response in buf (in order); stops at the first incomplete one.
function allResponses(buf, max = Infinity) {
  const out = [];
  let rest = buf;
  out.consumed = 0;
  while (out.length < max) {
    const r = parseResponse(rest);
    if (!r) break;
    const end = rest.indexOf('\r\n\r\n') + 4;
    let len = 0;
    if (r.headers['content-length'] !== undefined) len = Number(r.headers['content-length']);
    else if (/chunked/i.test(r.headers['transfer-encoding'] || '')) {
      const z = rest.indexOf('\r\n0\r\n\r\n', end - 2);
      if (z < 0) break;
      len = z + 7 - end;
    }
    if (rest.length < end + len) break;
    out.push(r);
    rest = rest.subarray(end + len);
    out.consumed += end + len;
  }
  return out;
}

describe('edge hardening (SPEC 3.5, 3.6, 4.3)', () => {
  let cluster;
  let pod;
  let heartbeat;

  // Writes text on one connection and collects until n complete responses arrived
  // (parsed incrementally: a 20,000-response pipeline stays linear).
  function pipeline(text, n, timeoutMs) {
    return new Promise((resolve) => {
      const sock = net.connect({ host: HOST, port: cluster.routerPort });
      let rest = Buffer.alloc(0);
      const got = [];
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(got);
      };
      const timer = setTimeout(finish, timeoutMs);
      sock.on('connect', () => sock.write(text));
      sock.on('data', (d) => {
        rest = Buffer.concat([rest, d]);
        for (;;) {
          const one = allResponses(rest, 1);
          if (one.length === 0) break;
          got.push(one[0]);
          rest = rest.subarray(one.consumed);
        }
        if (got.length >= n) finish();
      });
      sock.on('error', () => {});
      sock.on('close', finish);
    });
  }

  before(async () => {
    pod = new CapturePod();
    await pod.start();
    // --pod-ttl 15s (the default): the bursts below keep the one loop busy for seconds on a
    // loaded machine, and the test's heartbeats go through it too.
    cluster = new Cluster('hardening', { pods: 0, routerArgs: ['--threads', '1', '--pod-ttl', '15s', '--send-timeout', '2s', '--key-rate', '50', '--key-burst', '500'] });
    await cluster.start();
    const res = await cluster.admin('PUT', '/v1/pods/capture-0', { body: { address: `${HOST}:${pod.port}` } });
    assert.equal(res.status, 201);
    heartbeat = setInterval(() => {
      cluster.admin('PUT', '/v1/pods/capture-0', { body: { address: `${HOST}:${pod.port}` } }).catch(() => {});
    }, 500);
  });

  after(async () => {
    clearInterval(heartbeat);
    if (cluster) await cluster.stop();
    if (pod) pod.stop();
  });

  async function alive() {
    const res = await request(`${cluster.adminUrl}/healthz`, { timeoutMs: 3000 });
    assert.equal(res.status, 200, 'router still answers /healthz');
  }

  async function rejected(text, what) {
    pod.reset();
    const r = await rawExchange(cluster.routerPort, text, { timeoutMs: 3000 });
    const res = parseResponse(r.data);
    assert.ok(res, `${what}: a response`);
    assert.equal(res.status, 400, `${what}: 400 (got ${res && res.head})`);
    assert.equal(res.json && res.json.error, 'bad_request', `${what}: bad_request`);
    assert.ok(r.closed, `${what}: connection closed`);
    await sleep(50);
    assert.equal(pod.received(), '', `${what}: nothing reached the pod`);
    await alive();
  }

  it('refuses Connection headers that name framing (no smuggling)', async () => {
    const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
    for (const conn of ['Content-Length', 'close, content-length', 'Transfer-Encoding', 'host']) {
      await rejected(`POST /a HTTP/1.1\r\nHost: x\r\nConnection: ${conn}\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`, `Connection: ${conn}`);
    }
  });

  it('refuses obs-fold in any header, also X-Forwarded-Host and Upgrade', async () => {
    for (const name of ['X-Test', 'X-Forwarded-Host', 'Upgrade']) {
      for (const ws of [' ', '\t']) {
        await rejected(`GET /f HTTP/1.1\r\nHost: x\r\n${name}: a\r\n${ws}b\r\n\r\n`, `fold ${JSON.stringify(name + ws)}`);
      }
    }
  });

  it('refuses HTTP/0.9, a missing Host, two Hosts, bare LF and NUL', async () => {
    await rejected('GET /x\r\n\r\n', 'HTTP/0.9');
    await rejected('GET /x HTTP/1.1\r\n\r\n', 'no Host');
    await rejected('GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'two Hosts');
    await rejected('GET /x HTTP/1.1\r\nHost: a\nX: y\r\n\r\n', 'bare LF');
    await rejected('GET /x HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 'NUL in a value');
    await rejected('POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n', 'CL + TE');
    await rejected('POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 'TE not chunked');
  });

  it('relays a chunked POST with a 20 KB trailer, in one write and split', async () => {
    const trailer = `X-Big: ${'t'.repeat(20000)}\r\n`;
    const msg = `POST /trailer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n${trailer}\r\n`;
    for (const chunks of [[msg], [msg.slice(0, 120), 30, msg.slice(120, 9000), 30, msg.slice(9000)]]) {
      pod.reset();
      const r = await rawExchange(cluster.routerPort, chunks, { timeoutMs: 5000, untilResponse: true });
      const res = parseResponse(r.data);
      assert.ok(res, 'a response');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'seen /trailer');
      assert.ok(r.data.length < 2000, `no heap bytes in the response (${r.data.length} bytes)`);
      const reqs = pod.requests();
      assert.equal(reqs.length, 1, 'the pod saw exactly one request');
      assert.equal(reqs[0].body.toString(), 'hello');
      await alive();
    }
  });

  it('delivers the bytes a pod sends right after its 101', async () => {
    pod.reset();
    const extra = crypto.randomBytes(40000);
    pod.respond = () => Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), extra]);
    const r = await rawExchange(cluster.routerPort, 'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', { timeoutMs: 3000 });
    const end = r.data.indexOf('\r\n\r\n');
    assert.ok(end > 0 && r.data.subarray(0, 12).toString() === 'HTTP/1.1 101', '101 head');
    const body = r.data.subarray(end + 4);
    assert.equal(body.length, extra.length, 'all 40 KB after the 101');
    assert.ok(body.equals(extra), 'byte for byte');
    await alive();
  });

  it('answers 3,000 pipelined locally answered requests in order, without recursion', async () => {
    const one = 'GET /?sid=! HTTP/1.1\r\nHost: x\r\n\r\n';
    const all = await pipeline(one.repeat(3000), 3000, 20000);
    assert.equal(all.length, 3000, `3000 answers (got ${all.length})`);
    assert.ok(all.every((x) => x.status === 400 && x.json && x.json.error === 'bad_key'));
    await alive();
  });

  it('forwards 700 pipelined GETs (73 KiB in one write), none dropped', async () => {
    pod.reset();
    let text = '';
    for (let i = 0; i < 700; i++) text += `GET /p/${String(i).padStart(4, '0')}?roomId=room_pipe HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(40)}\r\n\r\n`;
    assert.ok(text.length > 64 * 1024);
    const all = await pipeline(text, 700, 20000);
    assert.equal(all.length, 700, `700 answers (got ${all.length})`);
    all.forEach((x, i) => assert.equal(x.text, `seen /p/${String(i).padStart(4, '0')}?roomId=room_pipe`));
    assert.equal(pod.requests().length, 700);
    await alive();
  });

  it('resends a pipelined POST whole when the pod closed the pooled connection', async () => {
    pod.reset();
    pod.closeAfter = true;
    const body = 'x'.repeat(300);
    const text = `GET /one?roomId=room_close HTTP/1.1\r\nHost: x\r\n\r\nPOST /two?roomId=room_close HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const r = await rawExchange(cluster.routerPort, [text], { timeoutMs: 5000 });
    const all = allResponses(r.data);
    assert.equal(all.length, 2, `two answers (got ${all.length}: ${r.data.toString().slice(0, 300)})`);
    assert.equal(all[0].text, 'seen /one?roomId=room_close');
    assert.ok(all[1].status === 200 || all[1].status === 502, `POST: 200 or 502, got ${all[1].status}`);
    const posts = pod.requests().filter((q) => q.head.startsWith('POST'));
    for (const p of posts) assert.equal(p.body.toString(), body, 'the pod never sees a POST without its body');
    if (all[1].status === 200) assert.equal(all[1].text, 'seen /two?roomId=room_close');
    for (const c of pod.conns) assert.equal(c.parsed, c.data.length, 'no partial request left at the pod');
    await alive();
  });

  it('de-chunks for an HTTP/1.0 client', async () => {
    pod.reset();
    pod.respond = () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n';
    const r = await rawExchange(cluster.routerPort, 'GET /old HTTP/1.0\r\n\r\n', { timeoutMs: 3000 });
    const text = r.data.toString('latin1');
    assert.ok(r.closed, 'closed after the body');
    assert.ok(!/transfer-encoding/i.test(text), `no chunked framing for HTTP/1.0 (${text})`);
    assert.ok(text.endsWith('\r\n\r\nhello world'), text);
    await alive();
  });

  it('refuses broken pod responses with 502 and does not reuse the connection', async () => {
    const cases = [
      ['duplicate Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc'],
      ['101 without Upgrade', 'HTTP/1.1 101 Switching Protocols\r\n\r\n'],
      ['1xx storm', 'HTTP/1.1 100 Continue\r\n\r\n'.repeat(40) + 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
      ['folded response header', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n'],
    ];
    for (const [what, resp] of cases) {
      pod.reset();
      pod.respond = () => resp;
      const r = await rawExchange(cluster.routerPort, 'GET /bad HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
      const res = allResponses(r.data).find((x) => x.status >= 200);
      assert.ok(res, `${what}: a response`);
      assert.equal(res.status, 502, `${what}: 502 (got ${res.head})`);
      assert.ok(r.closed, `${what}: closed`);
    }
    // Garbage after a complete response: the client gets the response, the next request
    // goes on a fresh pod connection.
    pod.reset();
    pod.respond = (req) => okResponse('ok') + (req.head.includes('/g1') ? 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!' : '');
    const r1 = await rawExchange(cluster.routerPort, 'GET /g1 HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000, untilResponse: true });
    assert.equal(parseResponse(r1.data).text, 'ok');
    await sleep(50);
    const r2 = await rawExchange(cluster.routerPort, 'GET /g2 HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000, untilResponse: true });
    assert.equal(parseResponse(r2.data).text, 'ok', 'no response smuggled from the earlier exchange');
    await alive();
  });

  it('closes a client that does not read within --send-timeout', async () => {
    pod.reset();
    const big = 'z'.repeat(8 * 1024 * 1024);
    pod.respond = () => okResponse(big);
    const sock = net.connect({ host: HOST, port: cluster.routerPort });
    await new Promise((resolve) => sock.on('connect', resolve));
    sock.pause(); // reads nothing for a while
    sock.on('error', () => {});
    sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(5000); // > --send-timeout 2s
    let got = 0;
    const closed = new Promise((resolve) => sock.on('close', resolve));
    sock.on('data', (d) => { got += d.length; });
    sock.resume();
    await Promise.race([closed, sleep(5000)]);
    assert.ok(sock.destroyed || sock.readableEnded, 'the router closed the stalled client');
    assert.ok(got < big.length, `the response was cut (${got} of ${big.length} bytes)`);
    sock.destroy();
    await alive();
  });

  it('rate-limits a 20,000-key flood from one client address, never loopback or known keys', async () => {
    pod.reset();
    const metric = async () => {
      const m = await request(`${cluster.adminUrl}/metrics`);
      return Number((/^podrouter_rate_limited_total (\d+)/m.exec(m.text) || [])[1]);
    };
    const before = await metric();
    let text = '';
    for (let i = 0; i < 20000; i++) text += `GET /f?roomId=room_flood_${i} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.50\r\n\r\n`;
    const all = await pipeline(text, 20000, 60000);
    assert.equal(all.length, 20000, `every request answered (got ${all.length})`);
    const limited = all.filter((x) => x.status === 429);
    const ok = all.filter((x) => x.status === 200);
    assert.ok(ok.length >= 500 && ok.length < 1000, `about the burst got through (${ok.length})`);
    assert.equal(limited.length + ok.length, 20000);
    assert.equal(limited[0].json.error, 'rate_limited');
    assert.equal(limited[0].headers['retry-after'], '1');
    assert.ok(pod.requests().length < 1000, 'the flood did not reach the pod');
    assert.equal(await metric() - before, limited.length, 'podrouter_rate_limited_total counts them');
    // A room the flooding client already has is not limited; nor is another client.
    const known = await pipeline('GET /f?roomId=room_flood_0 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.50\r\n\r\n', 1, 5000);
    assert.equal(known[0].status, 200, 'known key from the same client');
    const other = await pipeline('GET /f?roomId=room_legit HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.9\r\n\r\n', 1, 5000);
    assert.equal(other[0].status, 200, 'a new key from another client');
    // Loopback clients are never limited.
    let lo = '';
    for (let i = 0; i < 600; i++) lo += `GET /f?roomId=room_lo_${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const loAll = await pipeline(lo, 600, 30000);
    assert.equal(loAll.filter((x) => x.status === 200).length, 600);
    await alive();
  });

  it('resolves DNS pod addresses off the event loop, with a negative cache', async () => {
    let res = await cluster.admin('PUT', '/v1/pods/dns-0', { body: { address: 'no-such-pod.invalid:3000' } });
    assert.equal(res.status, 201);
    res = await cluster.admin('PUT', '/v1/rooms/room_dns', { body: { pod: 'dns-0' } });
    assert.equal(res.status, 200, res.text);
    const t0 = Date.now();
    const answers = await Promise.all([1, 2, 3].map(() => request(`${cluster.routerUrl}/x?roomId=room_dns`, { timeoutMs: 15000 })));
    for (const a of answers) assert.equal(a.status, 502, `unresolvable pod: 502 (${a.text})`);
    // Meanwhile the loop kept serving; a second round hits the negative cache at once.
    const t1 = Date.now();
    const again = await request(`${cluster.routerUrl}/x?roomId=room_dns`, { timeoutMs: 5000 });
    assert.equal(again.status, 502);
    assert.ok(Date.now() - t1 < 1000, `negative cache answers at once (${Date.now() - t1} ms; first round ${t1 - t0} ms)`);
    await cluster.admin('DELETE', '/v1/pods/dns-0');
    await alive();
  });

  it('gives memory back after a burst of 2,000 connections closes', { skip: /asan|sanit/.test(process.env.POD_ROUTER_BIN || '') && 'ASan keeps freed memory in quarantine' }, async () => {
    const rss = async () => {
      const m = await request(`${cluster.adminUrl}/metrics`);
      return Number((/^process_resident_memory_bytes (\d+)/m.exec(m.text) || [])[1]);
    };
    // Warm up (pools, first allocations) so the baseline is the steady state.
    await pipeline('GET /w?roomId=room_mem HTTP/1.1\r\nHost: x\r\n\r\n', 1, 5000);
    await sleep(1500);
    const base = await rss();
    const socks = [];
    for (let i = 0; i < 2000; i++) {
      const s = net.connect({ host: HOST, port: cluster.routerPort });
      s.on('error', () => {});
      s.on('connect', () => s.write(`GET /m${i}?roomId=room_mem HTTP/1.1\r\nHost: x\r\nX-Pad: ${'m'.repeat(3000)}\r\n\r\n`));
      socks.push(s);
    }
    let atPod = 0;
    await waitFor(async () => (atPod = pod.requests().filter((q) => q.head.startsWith('GET /m')).length) >= 2000, { timeoutMs: 60000, what: `2000 requests at the pod (${atPod}, conns ${pod.conns.length})` });
    const peak = await rss();
    for (const s of socks) s.destroy();
    let after = 0;
    await waitFor(async () => {
      after = await rss();
      if (after <= base * 1.1) return true;
      throw new Error(`RSS ${after}, base ${base}, peak ${peak}`);
    }, { timeoutMs: 20000, intervalMs: 500, what: 'RSS back within 10% of its pre-burst value' });
    assert.ok(peak > base, 'the burst used memory');
  });

  it('refuses cross-site admin writes (Origin, DNS-rebinding Host) with 403', async () => {
    const cases = [
      [{ origin: 'http://evil.example' }, 403],
      [{ host: 'evil.example:3002' }, 403],
      [{ 'sec-fetch-site': 'cross-site' }, 403],
      [{ origin: `http://127.0.0.1:${cluster.adminPort}` }, 200],
      [{}, 200],
    ];
    for (const [headers, want] of cases) {
      const res = await cluster.admin('POST', '/v1/pods/capture-0/drain', { headers });
      assert.equal(res.status, want, `${JSON.stringify(headers)}: ${res.status} ${res.text}`);
      if (want === 403) assert.equal(res.json.error, 'forbidden');
      assert.ok(!Object.keys(res.headers).some((k) => k.startsWith('access-control-')), 'no CORS headers');
    }
  });

  it('accepts a long bearer token (1,000 bytes)', async () => {
    const fs = require('node:fs');
    const os = require('node:os');
    const path = require('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pr-token-'));
    const token = crypto.randomBytes(500).toString('hex');
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const c2 = new Cluster('hardening-token', { pods: 0, routerArgs: ['--token-file', tokenFile] });
    try {
      await c2.start();
      const ok = await c2.admin('PUT', '/v1/pods/x-0', { body: { address: '127.0.0.1:9' }, headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 201, ok.text);
      const bad = await c2.admin('PUT', '/v1/pods/x-0', { body: { address: '127.0.0.1:9' }, headers: { authorization: `Bearer ${token.slice(0, -1)}x` } });
      assert.equal(bad.status, 401);
    } finally {
      await c2.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
