'use strict';
// Prometheus metrics (SPEC 7): scrape the admin /metrics before and after
// real traffic through a 3-pod cluster and check that each series moves the
// way the traffic says it must; check the exposition itself (HELP/TYPE of
// every SPEC metric, cumulative histograms) and, when promtool is on PATH
// (CI installs it), `promtool check metrics`.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { Cluster, freePort, waitFor, waitConnected, whoami } = require('./lib/cluster');

// SPEC 7: name -> type.
const SPEC_METRICS = {
  podrouter_build_info: 'gauge',
  podrouter_http_requests_total: 'counter',
  podrouter_request_duration_seconds: 'histogram',
  podrouter_upstream_connect_duration_seconds: 'histogram',
  podrouter_connections_active: 'gauge',
  podrouter_websocket_tunnels_total: 'counter',
  podrouter_routed_requests_total: 'counter',
  podrouter_assignments_total: 'counter',
  podrouter_pods: 'gauge',
  podrouter_pod_load: 'gauge',
  podrouter_proxy_errors_total: 'counter',
  podrouter_store_up: 'gauge',
  podrouter_store_operation_duration_seconds: 'histogram',
  podrouter_bytes_total: 'counter',
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  process_open_fds: 'gauge',
  process_start_time_seconds: 'gauge',
};

// ---------------------------------------------------------------- parser

function unescapeLabel(s) {
  return s.replace(/\\(["\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
}

function parseValue(s) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new Error(`bad sample value ${JSON.stringify(s)}`);
  return v;
}

// Parses Prometheus text format 0.0.4. Returns { help, type, samples } where
// help/type map metric family names to text, samples is [{ name, labels, value }].
// Throws on a line it cannot parse.
function parseExposition(text) {
  const help = new Map();
  const type = new Map();
  const samples = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s+(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest = ''] = m;
      const map = kind === 'HELP' ? help : type;
      if (map.has(name)) throw new Error(`duplicate ${kind} for ${name} (${where})`);
      if (kind === 'TYPE' && !/^(counter|gauge|histogram|summary|untyped)$/.test(rest)) {
        throw new Error(`bad TYPE ${rest} (${where})`);
      }
      map.set(name, rest);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^]*\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line);
    if (!m) throw new Error(`unparsable sample (${where})`);
    const [, name, rawLabels, value] = m;
    const labels = {};
    if (rawLabels) {
      const body = rawLabels.slice(1, -1);
      const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/gy;
      let pos = 0;
      while (pos < body.length) {
        re.lastIndex = pos;
        const lm = re.exec(body);
        if (!lm) throw new Error(`bad labels (${where})`);
        if (Object.prototype.hasOwnProperty.call(labels, lm[1])) throw new Error(`duplicate label ${lm[1]} (${where})`);
        labels[lm[1]] = unescapeLabel(lm[2]);
        pos = re.lastIndex;
        if (lm[3] === '') break;
      }
    }
    samples.push({ name, labels, value: parseValue(value) });
  }
  return { help, type, samples, text };
}

// The samples of `name` whose labels include all of `want`.
function select(scrape, name, want = {}) {
  return scrape.samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
}

// The value of the one sample of `name` with exactly the labels `want`
// (absent series count as 0 only when allowMissing).
function value(scrape, name, want = {}, { allowMissing = false } = {}) {
  const hits = select(scrape, name, want).filter((s) => Object.keys(s.labels).length === Object.keys(want).length);
  if (hits.length === 0) {
    if (allowMissing) return 0;
    throw new Error(`no sample ${name}${JSON.stringify(want)} in the scrape`);
  }
  assert.equal(hits.length, 1, `exactly one sample ${name}${JSON.stringify(want)}`);
  return hits[0].value;
}

function delta(a, b, name, want, opts) {
  return value(b, name, want, opts) - value(a, name, want, opts);
}

function histogramBuckets(scrape, name) {
  return select(scrape, `${name}_bucket`)
    .map((s) => ({ le: parseValue(s.labels.le), v: s.value }))
    .sort((x, y) => x.le - y.le);
}

function assertHistogram(scrape, name) {
  const buckets = histogramBuckets(scrape, name);
  assert.ok(buckets.length >= 2, `${name}: has buckets`);
  assert.equal(buckets[buckets.length - 1].le, Infinity, `${name}: has a +Inf bucket`);
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(buckets[i].v >= buckets[i - 1].v,
      `${name}: buckets are cumulative (le=${buckets[i - 1].le}: ${buckets[i - 1].v} > le=${buckets[i].le}: ${buckets[i].v})`);
  }
  const count = value(scrape, `${name}_count`);
  assert.equal(buckets[buckets.length - 1].v, count, `${name}: +Inf bucket equals _count`);
  const sum = value(scrape, `${name}_sum`);
  assert.ok(sum >= 0 && Number.isFinite(sum), `${name}: _sum is a finite non-negative number (${sum})`);
  return { buckets, count, sum };
}

// ---------------------------------------------------------------- test

function hasPromtool() {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

describe('metrics (3 pods)', { timeout: 90000 }, () => {
  let cluster;
  const scrapes = [];

  async function scrape() {
    const res = await cluster.admin('GET', '/metrics');
    assert.equal(res.status, 200, `GET /metrics: ${res.status}`);
    assert.match(String(res.headers['content-type']), /^text\/plain/, 'text exposition content type');
    const s = parseExposition(res.text);
    scrapes.push(s);
    return s;
  }

  before(async () => {
    cluster = new Cluster('metrics', { pods: 3 });
    await cluster.start();
  });
  after(() => cluster && cluster.stop());

  it('exposes every SPEC 7 metric with HELP and TYPE', async () => {
    const s = await scrape();
    for (const [name, t] of Object.entries(SPEC_METRICS)) {
      assert.ok(s.help.has(name) && s.help.get(name).length > 0, `# HELP ${name}`);
      assert.equal(s.type.get(name), t, `# TYPE ${name} ${t}`);
      const samples = select(s, name).concat(t === 'histogram' ? select(s, `${name}_count`) : []);
      assert.ok(samples.length > 0, `${name}: at least one sample`);
    }
    assert.equal(value(s, 'podrouter_build_info', { version: select(s, 'podrouter_build_info')[0].labels.version }), 1);
    assert.equal(value(s, 'podrouter_store_up'), 1, 'memory store is up');
    for (const code of ['1xx', '2xx', '3xx', '4xx', '5xx']) {
      for (const listener of ['public', 'admin']) value(s, 'podrouter_http_requests_total', { listener, code });
    }
    for (const kind of ['client', 'upstream', 'websocket']) value(s, 'podrouter_connections_active', { kind });
    for (const kind of ['room', 'participant', 'sid', 'cookie', 'none']) {
      for (const outcome of ['hit', 'created', 'reassigned', 'degraded']) value(s, 'podrouter_assignments_total', { kind, outcome });
    }
    for (const reason of ['connect', 'reset', 'timeout', 'no_pod', 'bad_request']) value(s, 'podrouter_proxy_errors_total', { reason });
    for (const direction of ['to_pod', 'to_client']) value(s, 'podrouter_bytes_total', { direction });
    assert.equal(value(s, 'podrouter_pods', { state: 'ready' }), 3, 'podrouter_pods{state="ready"} = 3');
    assert.equal(value(s, 'podrouter_pods', { state: 'draining' }), 0);
    assert.equal(value(s, 'podrouter_pods', { state: 'down' }), 0);
    for (const pod of ['backend-0', 'backend-1', 'backend-2']) {
      for (const resource of ['rooms', 'participants', 'connections']) value(s, 'podrouter_pod_load', { pod, resource });
      value(s, 'podrouter_routed_requests_total', { pod });
      value(s, 'podrouter_websocket_tunnels_total', { pod });
    }
    assert.ok(value(s, 'process_start_time_seconds') > 1e9, 'process_start_time_seconds is an epoch time');
    assert.ok(value(s, 'process_resident_memory_bytes') > 0);
    assert.ok(value(s, 'process_open_fds') > 0);
  });

  it('HTTP traffic moves request, routing, byte and histogram series', async () => {
    const s0 = await scrape();
    let ok2xx = 0;
    const routed = new Map();
    // Without a key: assigned by policy (kind none).
    for (let i = 0; i < 6; i++) {
      const res = await cluster.get(`/api/headers?n=${i}`);
      assert.equal(res.status, 200, res.text);
      ok2xx++;
      const pod = res.headers['x-pod-router-pod'];
      routed.set(pod, (routed.get(pod) || 0) + 1);
    }
    // A body both ways.
    const echo = await cluster.get('/api/echo', { method: 'POST', body: 'x'.repeat(5000), headers: { 'content-type': 'text/plain' } });
    assert.equal(echo.status, 200);
    assert.equal(echo.body.length, 5000);
    ok2xx++;
    routed.set(echo.headers['x-pod-router-pod'], (routed.get(echo.headers['x-pod-router-pod']) || 0) + 1);
    // 4xx answered by the router itself (bad key) and by a pod (404).
    const bad = await cluster.get('/api/headers?roomId=bad!key');
    assert.equal(bad.status, 400);
    assert.equal(bad.json && bad.json.error, 'bad_key');
    const nf = await cluster.get('/no/such/route');
    assert.equal(nf.status, 404);
    routed.set(nf.headers['x-pod-router-pod'], (routed.get(nf.headers['x-pod-router-pod']) || 0) + 1);
    const s1 = await scrape();

    const d = (name, want) => delta(s0, s1, name, want);
    assert.ok(d('podrouter_http_requests_total', { listener: 'public', code: '2xx' }) >= ok2xx,
      `public 2xx grew by >= ${ok2xx} (by ${d('podrouter_http_requests_total', { listener: 'public', code: '2xx' })})`);
    assert.ok(d('podrouter_http_requests_total', { listener: 'public', code: '4xx' }) >= 2, 'public 4xx grew by >= 2');
    assert.ok(d('podrouter_http_requests_total', { listener: 'admin', code: '2xx' }) >= 1, 'admin 2xx grew (the scrape itself)');
    assert.ok(d('podrouter_assignments_total', { kind: 'none', outcome: 'created' }) >= 8, 'keyless requests counted as kind=none created');
    for (const [pod, n] of routed) {
      assert.ok(d('podrouter_routed_requests_total', { pod }) >= n, `routed_requests_total{pod="${pod}"} grew by >= ${n}`);
    }
    const bytesTo = d('podrouter_bytes_total', { direction: 'to_pod' });
    const bytesFrom = d('podrouter_bytes_total', { direction: 'to_client' });
    assert.ok(bytesTo >= 5000, `bytes to_pod grew by >= the 5000-byte body (by ${bytesTo})`);
    assert.ok(bytesFrom >= 5000, `bytes to_client grew by >= the 5000-byte echo (by ${bytesFrom})`);
    const h0 = assertHistogram(s0, 'podrouter_request_duration_seconds');
    const h1 = assertHistogram(s1, 'podrouter_request_duration_seconds');
    assert.ok(h1.count - h0.count >= ok2xx + 1, `request_duration _count grew by >= ${ok2xx + 1} (by ${h1.count - h0.count})`);
    assert.ok(h1.sum > h0.sum, 'request_duration _sum grew');
    const c1 = assertHistogram(s1, 'podrouter_upstream_connect_duration_seconds');
    assert.ok(c1.count >= 1, 'upstream connects observed');
    assertHistogram(s1, 'podrouter_store_operation_duration_seconds');
    assert.equal(value(s1, 'podrouter_proxy_errors_total', { reason: 'connect' }), value(s0, 'podrouter_proxy_errors_total', { reason: 'connect' }), 'no connect errors yet');
  });

  it('rooms: created once, hit on reuse; pod_load follows', async () => {
    const room = 'room_metrics_http';
    const s0 = await scrape();
    const first = await cluster.get(`/api/room/${room}/state?participantId=alice`);
    assert.equal(first.status, 200, first.text);
    const pod = first.json.pod;
    const s1 = await scrape();
    assert.equal(delta(s0, s1, 'podrouter_assignments_total', { kind: 'room', outcome: 'created' }), 1, 'room created +1');
    assert.equal(delta(s0, s1, 'podrouter_assignments_total', { kind: 'room', outcome: 'hit' }), 0, 'no room hit yet');
    for (const who of ['bob', 'carol', 'alice']) {
      const res = await cluster.get(`/api/headers?roomId=${room}&participantId=${who}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-pod-router-pod'], pod, 'the room stays on its pod');
    }
    const s2 = await scrape();
    assert.equal(delta(s1, s2, 'podrouter_assignments_total', { kind: 'room', outcome: 'created' }), 0, 'no second creation');
    assert.ok(delta(s1, s2, 'podrouter_assignments_total', { kind: 'room', outcome: 'hit' }) >= 3, 'room hit grew by >= 3');
    assert.ok(delta(s0, s2, 'podrouter_routed_requests_total', { pod }) >= 4, `routed_requests_total{pod="${pod}"} grew by >= 4`);

    const api = await cluster.podsByName();
    for (const [name, p] of api) {
      assert.equal(value(s2, 'podrouter_pod_load', { pod: name, resource: 'rooms' }), p.load.rooms, `pod_load{pod="${name}",rooms} = /v1/pods load.rooms`);
      assert.equal(value(s2, 'podrouter_pod_load', { pod: name, resource: 'participants' }), p.load.participants, `pod_load{pod="${name}",participants} = /v1/pods load.participants`);
    }
    assert.ok(value(s2, 'podrouter_pod_load', { pod, resource: 'rooms' }) >= 1, `pod_load{pod="${pod}",resource="rooms"} >= 1`);
    assert.equal(delta(s0, s2, 'podrouter_pod_load', { pod, resource: 'rooms' }), 1, `the room's pod carries one more room`);
    const cl = await cluster.admin('GET', '/v1/cluster');
    const totalRooms = ['backend-0', 'backend-1', 'backend-2'].reduce((n, p) => n + value(s2, 'podrouter_pod_load', { pod: p, resource: 'rooms' }), 0);
    assert.equal(totalRooms, cl.json.rooms, 'sum of pod_load rooms = /v1/cluster rooms');
  });

  it('websocket: tunnel counted on the pod whoami reports; gauge up while open, 0 after close', async () => {
    const s0 = await scrape();
    assert.equal(value(s0, 'podrouter_connections_active', { kind: 'websocket' }), 0, 'no tunnel open before');
    const socket = cluster.connect('/', { roomId: 'room_metrics_ws', participantId: 'ws-1', transports: ['websocket'] });
    await waitConnected(socket);
    const me = await whoami(socket);
    assert.equal(me.transport, 'websocket');
    assert.equal(me.roomId, 'room_metrics_ws');
    const echoed = await socket.timeout(5000).emitWithAck('echo', 'y'.repeat(3000));
    assert.equal(echoed.length, 3000);
    const s1 = await scrape();
    assert.ok(value(s1, 'podrouter_connections_active', { kind: 'websocket' }) >= 1, 'connections_active{kind="websocket"} >= 1 while open');
    assert.ok(value(s1, 'podrouter_connections_active', { kind: 'client' }) >= 1, 'the tunnel client counts as a client connection');
    assert.ok(value(s1, 'podrouter_pod_load', { pod: me.pod, resource: 'connections' }) >= 1, `pod_load{pod="${me.pod}",resource="connections"} >= 1 while the tunnel is open`);
    assert.equal(delta(s0, s1, 'podrouter_websocket_tunnels_total', { pod: me.pod }), 1, `websocket_tunnels_total{pod="${me.pod}"} +1`);
    for (const other of ['backend-0', 'backend-1', 'backend-2'].filter((p) => p !== me.pod)) {
      assert.equal(delta(s0, s1, 'podrouter_websocket_tunnels_total', { pod: other }), 0, `no tunnel counted on ${other}`);
    }
    assert.equal(delta(s0, s1, 'podrouter_assignments_total', { kind: 'room', outcome: 'created' }), 1, 'the websocket room was created');
    assert.equal(value(s1, 'podrouter_http_requests_total', { listener: 'public', code: '1xx' }) - value(s0, 'podrouter_http_requests_total', { listener: 'public', code: '1xx' }), 1, 'the 101 counted as 1xx');
    // Tunnelled bytes count too (the 3000-byte echo went both ways).
    assert.ok(delta(s0, s1, 'podrouter_bytes_total', { direction: 'to_pod' }) >= 3000, 'tunnel bytes to_pod');
    assert.ok(delta(s0, s1, 'podrouter_bytes_total', { direction: 'to_client' }) >= 3000, 'tunnel bytes to_client');

    socket.close();
    let last;
    await waitFor(async () => {
      last = await scrape();
      return value(last, 'podrouter_connections_active', { kind: 'websocket' }) === 0;
    }, { timeoutMs: 5000, intervalMs: 200, what: 'connections_active{kind="websocket"} back to 0' });
  });

  it('5xx: a dead pod gives 502 (connect error), no ready pod gives 503 (no_pod)', async () => {
    const s0 = await scrape();
    // A pod entry whose address refuses connections, drained at once so it
    // takes no new assignments; a room pinned to it must fail with 502.
    const deadPort = await freePort();
    const fake = await cluster.fakePod('dead-0', `127.0.0.1:${deadPort}`);
    const dr = await cluster.admin('POST', '/v1/pods/dead-0/drain');
    assert.equal(dr.status, 200, dr.text);
    const pin = await cluster.admin('PUT', '/v1/rooms/room_metrics_dead', { body: { pod: 'dead-0' } });
    assert.ok(pin.status === 200 || pin.status === 201, `pin room to dead-0: ${pin.status} ${pin.text}`);
    const r502 = await cluster.get('/api/headers?roomId=room_metrics_dead');
    assert.equal(r502.status, 502, r502.text);
    assert.equal(r502.json && r502.json.error, 'upstream_unavailable');
    fake.stop();
    const del = await cluster.admin('DELETE', '/v1/pods/dead-0');
    assert.equal(del.status, 204, del.text);
    const s1 = await scrape();
    assert.ok(delta(s0, s1, 'podrouter_http_requests_total', { listener: 'public', code: '5xx' }) >= 1, 'public 5xx grew');
    assert.ok(delta(s0, s1, 'podrouter_proxy_errors_total', { reason: 'connect' }) >= 1, 'proxy_errors{reason="connect"} grew');
    assert.equal(value(s1, 'podrouter_pods', { state: 'ready' }), 3, 'the fake pod is gone again');
    assert.equal(value(s1, 'podrouter_pods', { state: 'draining' }), 0);
    assert.equal(select(s1, 'podrouter_pod_load', { pod: 'dead-0' }).length, 0, 'no series left for a deleted pod');

    // Drain one pod: the state gauges follow.
    const d1 = await cluster.admin('POST', '/v1/pods/backend-1/drain');
    assert.equal(d1.status, 200, d1.text);
    const s2 = await scrape();
    assert.equal(value(s2, 'podrouter_pods', { state: 'ready' }), 2, 'podrouter_pods{state="ready"} = 2 after a drain');
    assert.equal(value(s2, 'podrouter_pods', { state: 'draining' }), 1, 'podrouter_pods{state="draining"} = 1');
    assert.equal(value(s2, 'podrouter_pods', { state: 'down' }), 0);

    // Drain the rest: a new room finds no pod that takes new assignments.
    for (const p of ['backend-0', 'backend-2']) {
      const r = await cluster.admin('POST', `/v1/pods/${p}/drain`);
      assert.equal(r.status, 200, r.text);
    }
    const r503 = await cluster.get('/api/headers?roomId=room_metrics_nowhere');
    assert.equal(r503.status, 503, r503.text);
    assert.equal(r503.json && r503.json.error, 'no_pod');
    const s3 = await scrape();
    assert.equal(value(s3, 'podrouter_pods', { state: 'draining' }), 3);
    assert.ok(delta(s2, s3, 'podrouter_http_requests_total', { listener: 'public', code: '5xx' }) >= 1, 'public 5xx grew with the 503');
    assert.ok(delta(s2, s3, 'podrouter_proxy_errors_total', { reason: 'no_pod' }) >= 1, 'proxy_errors{reason="no_pod"} grew');
  });

  it('counters never go down between scrapes', async () => {
    const last = await scrape();
    const counters = new Set([...last.type].filter(([, t]) => t === 'counter').map(([n]) => n));
    for (let i = 1; i < scrapes.length; i++) {
      const a = scrapes[i - 1];
      const b = scrapes[i];
      for (const s of b.samples) {
        const family = counters.has(s.name) ? s.name
          : /_(bucket|count|sum)$/.test(s.name) && last.type.get(s.name.replace(/_(bucket|count|sum)$/, '')) === 'histogram' ? s.name : null;
        if (!family) continue;
        const prev = a.samples.find((p) => p.name === s.name && JSON.stringify(p.labels) === JSON.stringify(s.labels));
        if (prev) assert.ok(s.value >= prev.value, `${s.name}${JSON.stringify(s.labels)} went down: ${prev.value} -> ${s.value}`);
      }
    }
  });

  it('passes promtool check metrics', async (t) => {
    if (!hasPromtool()) {
      t.skip('promtool is not on PATH (CI installs it); exposition checked by the parser only');
      return;
    }
    const s = await scrape();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: s.text, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.error, undefined, `promtool ran: ${r.error}`);
    assert.equal(r.status, 0, `promtool check metrics exit ${r.status}:\n${r.stdout}${r.stderr}`);
  });
});
