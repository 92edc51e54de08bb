'use strict';
// Example HyperStudy-like backend pod for pod-router: a real Socket.IO 4
// server plus a few plain HTTP routes used by the end-to-end tests and the
// demo. It registers itself with the router's admin API and heartbeats.

const fs = require('node:fs');
const http = require('node:http');
const { Server } = require('socket.io');

function intEnv(name, def, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`backend: ${name}=${raw} is not an integer in [${min}, ${max}]\n`);
    process.exit(2);
  }
  return n;
}

const PORT = intEnv('PORT', 3000, 0, 65535);
const HOST = process.env.HOST || '127.0.0.1';
const POD_NAME = process.env.POD_NAME || 'backend-0';
const ROUTER_ADMIN_URL = (process.env.ROUTER_ADMIN_URL || '').replace(/\/+$/, '');
// Resolved after listen() when PORT is 0.
let POD_ADDRESS = process.env.POD_ADDRESS || '';
const HEARTBEAT_MS = intEnv('HEARTBEAT_MS', 5000, 50, 3600000);
const CAPACITY_ROOMS = intEnv('CAPACITY_ROOMS', 20, 1, 1000000);
const CAPACITY_PARTICIPANTS = intEnv('CAPACITY_PARTICIPANTS', 80, 1, 1000000);
const ROUTER_TOKEN_FILE = process.env.ROUTER_TOKEN_FILE || '';
// Large enough for the 1 MiB binary events of the websocket test.
const MAX_HTTP_BUFFER_SIZE = intEnv('MAX_HTTP_BUFFER_SIZE', 16 * 1024 * 1024, 1024, 1 << 30);

const NAMESPACES = ['/', '/experiment', '/sync', '/waiting'];
const SLOW_MAX_MS = 120000;
const BIG_MAX_BYTES = 1 << 30;

// Byte i of /api/big is (i % 251): deterministic, and 251 is prime so the
// pattern never lines up with power-of-two chunk sizes.
function patternChunk(offset, len) {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = (offset + i) % 251;
  return b;
}

function sendJson(res, status, obj, extra = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

function handleBig(req, res, url) {
  const n = Number(url.searchParams.get('bytes') || '0');
  if (!Number.isInteger(n) || n < 0 || n > BIG_MAX_BYTES) {
    sendJson(res, 400, { error: 'bad_bytes', pod: POD_NAME });
    return;
  }
  // No Content-Length: Node sends the body chunked.
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  const CHUNK = 64 * 1024;
  let sent = 0;
  const pump = () => {
    while (sent < n) {
      const len = Math.min(CHUNK, n - sent);
      const ok = res.write(patternChunk(sent, len));
      sent += len;
      if (!ok) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  res.on('close', () => { sent = n; res.removeListener('drain', pump); });
  pump();
}

function handleSlow(req, res, url) {
  const ms = Number(url.searchParams.get('ms') || '0');
  if (!Number.isInteger(ms) || ms < 0 || ms > SLOW_MAX_MS) {
    sendJson(res, 400, { error: 'bad_ms', pod: POD_NAME });
    return;
  }
  const timer = setTimeout(() => sendJson(res, 200, { pod: POD_NAME, ms }), ms);
  res.on('close', () => clearTimeout(timer));
}

function handleEcho(req, res) {
  res.writeHead(200, {
    'content-type': req.headers['content-type'] || 'application/octet-stream',
  });
  req.pipe(res);
  req.on('error', () => res.destroy());
}

function experimentPage(res, url) {
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const room = url.searchParams.get('roomId') || '';
  const body = '<!doctype html><html><head><meta charset="utf-8"><title>experiment</title></head>' +
    `<body><h1>experiment on ${esc(POD_NAME)}</h1><p>room: ${esc(room)}</p></body></html>\n`;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function onRequest(req, res) {
  res.setHeader('x-pod', POD_NAME);
  let url;
  try {
    url = new URL(req.url, 'http://backend.invalid');
  } catch {
    sendJson(res, 400, { error: 'bad_url', pod: POD_NAME });
    return;
  }
  const p = url.pathname;
  const m = /^\/api\/room\/([^/]+)\/state$/.exec(p);
  if (req.method === 'GET' && p === '/healthz') {
    sendJson(res, 200, { status: 'ok', pod: POD_NAME });
  } else if (req.method === 'GET' && m) {
    let roomId = m[1];
    try { roomId = decodeURIComponent(roomId); } catch { /* keep it raw */ }
    sendJson(res, 200, { pod: POD_NAME, roomId });
  } else if (req.method === 'GET' && (p === '/experiment' || p.startsWith('/experiment/'))) {
    experimentPage(res, url);
  } else if (req.method === 'POST' && p === '/api/echo') {
    handleEcho(req, res);
  } else if (req.method === 'GET' && p === '/api/big') {
    handleBig(req, res, url);
  } else if (req.method === 'GET' && p === '/api/slow') {
    handleSlow(req, res, url);
  } else if (req.method === 'GET' && p === '/api/headers') {
    sendJson(res, 200, req.headers);
  } else {
    req.resume();
    sendJson(res, 404, { error: 'not_found', pod: POD_NAME, path: p });
  }
}

// Default namespace and the HyperStudy namespaces share the same handlers.
function onConnection(socket) {
  const q = socket.handshake.query || {};
  const roomId = typeof q.roomId === 'string' && q.roomId !== '' ? q.roomId : null;
  const participantId = typeof q.participantId === 'string' && q.participantId !== '' ? q.participantId : null;
  if (roomId) socket.join(roomId);

  socket.on('whoami', (ack) => {
    if (typeof ack !== 'function') return;
    ack({
      pod: POD_NAME,
      sid: socket.conn.id,
      roomId,
      participantId,
      transport: socket.conn.transport.name,
    });
  });

  socket.on('room-msg', (payload, ack) => {
    if (roomId) {
      socket.to(roomId).emit('room-msg', { from: participantId || socket.id, pod: POD_NAME, payload });
    }
    if (typeof ack === 'function') ack({ pod: POD_NAME });
  });

  socket.on('echo', (payload, ack) => {
    if (typeof ack === 'function') ack(payload);
  });
}

const server = http.createServer({ maxHeaderSize: 64 * 1024 }, onRequest);
// Slow and long-poll requests must not be cut by Node's own timers.
server.requestTimeout = 0;
server.headersTimeout = 60000;
server.keepAliveTimeout = 90000;

const io = new Server(server, { maxHttpBufferSize: MAX_HTTP_BUFFER_SIZE });
// Engine.IO responses (polling and the websocket 101) name the pod too.
io.engine.on('headers', (headers) => { headers['x-pod'] = POD_NAME; });
for (const ns of NAMESPACES) io.of(ns).on('connection', onConnection);

let heartbeatTimer = null;
let stopping = false;

function readToken() {
  if (!ROUTER_TOKEN_FILE) return '';
  try {
    return fs.readFileSync(ROUTER_TOKEN_FILE, 'utf8').trim();
  } catch {
    return '';
  }
}

// Register or heartbeat once; failures are silent (the next beat retries).
function heartbeat() {
  if (stopping) return;
  const body = JSON.stringify({
    address: POD_ADDRESS,
    capacity: { rooms: CAPACITY_ROOMS, participants: CAPACITY_PARTICIPANTS },
  });
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  const token = readToken();
  if (token) headers.authorization = `Bearer ${token}`;
  let req;
  try {
    req = http.request(`${ROUTER_ADMIN_URL}/v1/pods/${encodeURIComponent(POD_NAME)}`, {
      method: 'PUT',
      headers,
      agent: false,
      timeout: Math.max(1000, HEARTBEAT_MS),
    });
  } catch {
    return;
  }
  req.on('response', (res) => res.resume());
  req.on('timeout', () => req.destroy());
  req.on('error', () => {});
  req.end(body);
}

function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  if (heartbeatTimer) clearInterval(heartbeatTimer);
  const force = setTimeout(() => process.exit(0), 3000);
  force.unref();
  // io.close() tells every client and then closes the listener; whatever
  // keep-alive or long-poll connection is left is cut shortly after.
  io.close(() => process.exit(0));
  const cut = setInterval(() => server.closeAllConnections(), 100);
  cut.unref();
  process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'backend stopping', pod: POD_NAME, signal }) + '\n');
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.on('error', (err) => {
  process.stderr.write(`backend ${POD_NAME}: ${err.message}\n`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  const port = server.address().port;
  if (!POD_ADDRESS) POD_ADDRESS = `${HOST.includes(':') ? `[${HOST}]` : HOST}:${port}`;
  process.stdout.write(JSON.stringify({
    ts: new Date().toISOString(),
    level: 'info',
    msg: 'backend listening',
    pod: POD_NAME,
    listen: `${HOST}:${port}`,
    address: POD_ADDRESS,
    router_admin_url: ROUTER_ADMIN_URL || null,
    heartbeat_ms: HEARTBEAT_MS,
    capacity: { rooms: CAPACITY_ROOMS, participants: CAPACITY_PARTICIPANTS },
  }) + '\n');
  if (ROUTER_ADMIN_URL) {
    heartbeat();
    heartbeatTimer = setInterval(heartbeat, HEARTBEAT_MS);
  }
});
