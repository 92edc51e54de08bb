'use strict';
// Router logs (issue 4, SPEC 2): JSON lines on stdout with ts/level/msg, an
// access line per public request carrying the request id that the pod also
// receives, --access-log false, no bearer token in any log line, and
// --log-format text.
//
// The harness writes the router's stdout and stderr into one file; here the
// router's stdout goes to <name>-router.log and its stderr to
// <name>-router.stderr.log so that "every stdout line" means exactly that.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  Cluster, ROUTER_BIN, OUT_DIR, request, rawExchange, parseResponse, waitFor, waitConnected, whoami, sleep, tail,
} = require('./lib/cluster');

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

// Routers started here; killed if the test process exits early.
const started = new Set();
process.on('exit', () => {
  for (const p of started) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

// A Cluster whose router keeps stdout and stderr in separate files (the
// rest of the harness is unchanged: pods, admin calls, stop()).
class SplitLogCluster extends Cluster {
  constructor(name, opts) {
    super(name, opts);
    this.stderrLog = path.join(OUT_DIR, `${this.name}-router.stderr.log`);
  }

  async startRouter() {
    assert.ok(fs.existsSync(ROUTER_BIN), `router binary at ${ROUTER_BIN}`);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('POD_ROUTER_')) env[k] = v;
    const out = fs.openSync(this.routerLog, 'w');
    const err = fs.openSync(this.stderrLog, 'w');
    let child;
    try {
      child = spawn(ROUTER_BIN, this.routerCommand(), { env, stdio: ['ignore', out, err] });
    } finally {
      fs.closeSync(out);
      fs.closeSync(err);
    }
    started.add(child);
    child.exitInfo = null;
    child.exited = new Promise((resolve) => {
      const done = (info) => {
        started.delete(child);
        child.exitInfo = info;
        resolve(info);
      };
      child.on('exit', (code, signal) => done({ code, signal }));
      child.on('error', (error) => done({ code: null, signal: null, error }));
    });
    this.router = child;
    await waitFor(async () => {
      if (child.exitInfo) throw new Error(`router exited during startup ${JSON.stringify(child.exitInfo)}: ${tail(this.stderrLog)}`);
      return (await request(`${this.adminUrl}/healthz`, { timeoutMs: 1000 })).status === 200;
    }, { timeoutMs: 10000, what: 'router /healthz' });
  }

  stdoutLines() {
    return fs.readFileSync(this.routerLog, 'utf8').split('\n').filter((l, i, a) => !(l === '' && i === a.length - 1));
  }

  jsonLines() {
    return this.stdoutLines().map((l) => JSON.parse(l));
  }

  // Waits for a JSON access line matching pred (written once the exchange ends).
  async accessLine(pred, what) {
    return waitFor(() => this.jsonLines().find((j) => j.msg === 'request' && pred(j)),
      { timeoutMs: 5000, what: `access line ${what}` });
  }
}

async function startSplit(t, name, opts) {
  const cluster = new SplitLogCluster(name, opts);
  t.after(() => cluster.stop());
  await cluster.start();
  return cluster;
}

function assertJsonLines(cluster) {
  const lines = cluster.stdoutLines();
  assert.ok(lines.length > 0, 'the router logged something on stdout');
  for (const [i, line] of lines.entries()) {
    let j;
    assert.doesNotThrow(() => {
      j = JSON.parse(line);
    }, `stdout line ${i + 1} is JSON: ${line}`);
    assert.ok(j && typeof j === 'object' && !Array.isArray(j), `line ${i + 1} is an object: ${line}`);
    assert.match(String(j.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, `line ${i + 1}: ts is an ISO-8601 UTC time: ${line}`);
    assert.ok(LEVELS.has(j.level), `line ${i + 1}: level is debug/info/warn/error: ${line}`);
    assert.ok(typeof j.msg === 'string' && j.msg.length > 0, `line ${i + 1}: msg is a non-empty string: ${line}`);
  }
  return lines.length;
}

describe('router logs', { timeout: 120000 }, () => {
  it('JSON lines; access lines carry the X-Request-Id the pod receives', async (t) => {
    const cluster = await startSplit(t, 'logs-json', { pods: 2 });

    // 1. A request id given by the client.
    const given = await cluster.get('/api/headers?probe=given-id', { headers: { 'X-Request-Id': 'test-abc-123' } });
    assert.equal(given.status, 200, given.text);
    assert.equal(given.json['x-request-id'], 'test-abc-123', 'the pod receives the given X-Request-Id unchanged');
    const pod = given.headers['x-pod-router-pod'];
    assert.ok(pod, 'X-Pod-Router-Pod names the pod');
    const line = await cluster.accessLine((j) => j.request_id === 'test-abc-123', 'request_id=test-abc-123');
    assert.equal(line.level, 'info');
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/api/headers?probe=given-id');
    assert.equal(line.status, 200, 'status is the number 200');
    assert.equal(line.pod, pod, 'pod is the pod that answered');
    assert.equal(typeof line.duration_ms, 'number', 'duration_ms is a number');
    assert.ok(line.duration_ms >= 0 && line.duration_ms < 10000, `duration_ms is plausible (${line.duration_ms})`);

    // 2. No id: the router makes one, sends it to the pod and logs it.
    const gen = await cluster.get('/api/headers?probe=no-id');
    assert.equal(gen.status, 200);
    const rid = gen.json['x-request-id'];
    assert.ok(typeof rid === 'string' && rid.length > 0, `the pod receives a generated X-Request-Id (${rid})`);
    const genLine = await cluster.accessLine((j) => j.path === '/api/headers?probe=no-id', 'probe=no-id');
    assert.equal(genLine.request_id, rid, 'the access line carries the id the pod received');
    const gen2 = await cluster.get('/api/headers?probe=no-id-2');
    assert.notEqual(gen2.json['x-request-id'], rid, 'generated ids differ per request');

    // 3. Room, key and a router-made error are logged too.
    const room = await cluster.get('/api/room/room_logs/state', { headers: { 'X-Request-Id': 'test-room-1' } });
    assert.equal(room.status, 200);
    const roomLine = await cluster.accessLine((j) => j.request_id === 'test-room-1', 'request_id=test-room-1');
    assert.equal(roomLine.room, 'room_logs');
    assert.equal(roomLine.key, 'room');
    assert.equal(roomLine.pod, room.json.pod);
    const bad = await cluster.get('/api/headers?roomId=bad!key', { headers: { 'X-Request-Id': 'test-bad-key' } });
    assert.equal(bad.status, 400);
    const badLine = await cluster.accessLine((j) => j.request_id === 'test-bad-key', 'request_id=test-bad-key');
    assert.equal(badLine.status, 400);

    // 4. Characters JSON must escape, in the id and in the path.
    const weird = 'q"uo\\te\'d';
    const r = await rawExchange(cluster.routerPort,
      `GET /api/headers?probe=%22x%22&s=a\\b HTTP/1.1\r\nHost: e2e\r\nX-Request-Id: ${weird}\r\nConnection: close\r\n\r\n`,
      { untilResponse: true });
    const wres = parseResponse(r.data);
    assert.ok(wres, 'response to the request with a quoted id');
    assert.equal(wres.status, 200, wres.head);
    assert.equal(wres.json['x-request-id'], weird);
    const wLine = await cluster.accessLine((j) => j.request_id === weird, 'with a quoted request id');
    assert.equal(wLine.path, '/api/headers?probe=%22x%22&s=a\\b');

    // 5. A websocket tunnel is logged with its 101.
    const socket = cluster.connect('/', { roomId: 'room_logs_ws', transports: ['websocket'], extraHeaders: { 'X-Request-Id': 'test-ws-1' } });
    await waitConnected(socket);
    const me = await whoami(socket);
    const wsLine = await cluster.accessLine((j) => j.request_id === 'test-ws-1', 'request_id=test-ws-1');
    assert.equal(wsLine.status, 101);
    assert.equal(wsLine.pod, me.pod);
    assert.equal(wsLine.room, 'room_logs_ws');
    socket.close();

    // Stop the router so its shutdown lines are in, then check every line.
    await cluster.stop();
    const n = assertJsonLines(cluster);
    assert.ok(n >= 8, `at least the access lines were logged (${n} lines)`);
    const stderr = fs.readFileSync(cluster.stderrLog, 'utf8');
    assert.equal(stderr, '', `nothing on stderr during a normal run: ${stderr.slice(0, 500)}`);
  });

  it('the logged request id is the one the pod receives, also for ids over 47 bytes and empty ids', async (t) => {
    const cluster = await startSplit(t, 'logs-long-id', { pods: 1 });
    const longId = `trace-${'0123456789abcdef'.repeat(4)}`; // 70 bytes
    const res = await cluster.get('/api/headers?probe=long-id', { headers: { 'X-Request-Id': longId } });
    assert.equal(res.status, 200);
    assert.equal(res.json['x-request-id'], longId, 'the pod receives the long id');
    const line = await cluster.accessLine((j) => j.path === '/api/headers?probe=long-id', 'probe=long-id');
    assert.equal(line.request_id, res.json['x-request-id'],
      'the access line carries the X-Request-Id the pod received (otherwise logs and pod traces cannot be joined)');

    const r = await rawExchange(cluster.routerPort,
      'GET /api/headers?probe=empty-id HTTP/1.1\r\nHost: e2e\r\nX-Request-Id: \r\nConnection: close\r\n\r\n', { untilResponse: true });
    const eres = parseResponse(r.data);
    assert.equal(eres.status, 200);
    const eline = await cluster.accessLine((j) => j.path === '/api/headers?probe=empty-id', 'probe=empty-id');
    assert.equal(eline.request_id, eres.json['x-request-id'], 'empty X-Request-Id: the pod receives the id that is logged');
  });

  it('--access-log false: no access lines, other lines still JSON', async (t) => {
    const cluster = await startSplit(t, 'logs-no-access', { pods: 1, routerArgs: ['--access-log', 'false'] });
    for (let i = 0; i < 3; i++) {
      const res = await cluster.get(`/api/headers?probe=quiet-${i}`, { headers: { 'X-Request-Id': `quiet-${i}` } });
      assert.equal(res.status, 200);
    }
    const bad = await cluster.get('/api/headers?roomId=bad!key');
    assert.equal(bad.status, 400);
    await sleep(300);
    await cluster.stop();
    assertJsonLines(cluster);
    const lines = cluster.jsonLines();
    assert.ok(lines.some((j) => j.msg === 'listening'), 'the startup line is there (the right log is read)');
    const access = lines.filter((j) => j.msg === 'request');
    assert.equal(access.length, 0, `no "msg":"request" lines: ${JSON.stringify(access[0])}`);
    assert.ok(!fs.readFileSync(cluster.routerLog, 'utf8').includes('quiet-'), 'no trace of the requests');
  });

  it('--token-file: the token never appears in any log line (debug level)', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podrouter-logs-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const token = `tok-${crypto.randomBytes(16).toString('hex')}`;
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const cluster = await startSplit(t, 'logs-token', {
      pods: 2,
      tokenFile,
      routerArgs: ['--token-file', tokenFile, '--log-level', 'debug'],
    });
    const auth = { authorization: `Bearer ${token}` };
    // Writes with the right token, a wrong one, and none.
    const drain = await cluster.admin('POST', '/v1/pods/backend-1/drain', { headers: auth });
    assert.equal(drain.status, 200, drain.text);
    const wrong = await cluster.admin('POST', '/v1/pods/backend-0/drain', { headers: { authorization: `Bearer ${token}x` } });
    assert.equal(wrong.status, 401);
    const none = await cluster.admin('DELETE', '/v1/pods/backend-0');
    assert.equal(none.status, 401);
    const pin = await cluster.admin('PUT', '/v1/rooms/room_tok', { body: { pod: 'backend-0' }, headers: auth });
    assert.ok(pin.status === 200 || pin.status === 201, pin.text);
    // The token sent to the public listener (it is forwarded, never logged).
    const pub = await cluster.get('/api/headers?roomId=room_tok', { headers: { ...auth, 'X-Request-Id': 'tok-req-1' } });
    assert.equal(pub.status, 200);
    await cluster.accessLine((j) => j.request_id === 'tok-req-1', 'request_id=tok-req-1');
    await cluster.stop();
    assertJsonLines(cluster);
    const all = fs.readFileSync(cluster.routerLog, 'utf8') + fs.readFileSync(cluster.stderrLog, 'utf8');
    assert.ok(all.length > 0);
    const leaks = all.split('\n').filter((l) => l.includes(token));
    assert.equal(leaks.length, 0, `token found in log lines:\n${leaks.join('\n')}`);
  });

  it('--log-format text: lines are not JSON and carry level words', async (t) => {
    const cluster = await startSplit(t, 'logs-text', { pods: 1, routerArgs: ['--log-format', 'text'] });
    const res = await cluster.get('/api/headers?probe=text', { headers: { 'X-Request-Id': 'test-text-1' } });
    assert.equal(res.status, 200);
    await waitFor(() => cluster.stdoutLines().some((l) => l.includes('test-text-1')), { timeoutMs: 5000, what: 'text access line' });
    await cluster.stop();
    const lines = cluster.stdoutLines();
    assert.ok(lines.length >= 2, 'lines were logged');
    for (const line of lines) {
      let parsed;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      assert.ok(parsed === undefined || typeof parsed !== 'object', `text line is not a JSON object: ${line}`);
      assert.match(line, /\b(debug|info|warn|error)\b/, `text line carries a level word: ${line}`);
    }
    const access = lines.find((l) => l.includes('test-text-1'));
    assert.match(access, /\binfo\b/);
    assert.match(access, /request_id=test-text-1/);
    assert.match(access, /status=200/);
  });
});
