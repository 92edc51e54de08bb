'use strict';
// Opens many connections through a proxy and keeps them idle (no dependencies).
//
//   node conn-client.js --port P --mode ws|http --path /x --steps 1000,5000
//                       [--concurrency 200] [--settle-ms 1000] [--lifetime 300]
//
// mode ws:   each connection sends a WebSocket upgrade request and counts once it got 101;
//            afterwards it stays silent (an idle tunnel).
// mode http: each connection sends one keep-alive GET, reads the whole response, then stays
//            idle (an idle keep-alive client connection).
// For every step it opens connections until `step` of them are established, waits
// settle-ms, and prints one JSON line {"step","ok","alive","failed","ms"} on stdout. It then
// waits for SIGUSR1 before the next step. After the last step it waits for SIGTERM (or its
// lifetime) and exits, closing everything. It never talks to anything but 127.0.0.1.
const net = require('net');
const crypto = require('crypto');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const port = Number(arg('port'));
const mode = arg('mode', 'ws');
const path = arg('path', '/');
const steps = String(arg('steps', '1000')).split(',').map(Number).filter((n) => n > 0);
const concurrency = Number(arg('concurrency', 200));
const settleMs = Number(arg('settle-ms', 1000));
const lifetimeS = Number(arg('lifetime', 300));
const stepTimeoutMs = Number(arg('step-timeout-ms', 60000));
if (!port || (mode !== 'ws' && mode !== 'http') || steps.length === 0) {
  process.stderr.write('usage: node conn-client.js --port P --mode ws|http --path /x --steps N[,N]\n');
  process.exit(2);
}

let ok = 0;
let alive = 0;
let failed = 0;
let inflight = 0;
let stepIdx = 0;
let stepStart = Date.now();
let reported = false;
let stepTimer = null;
const socks = [];

function request() {
  if (mode === 'ws') {
    const key = crypto.randomBytes(16).toString('base64');
    return 'GET ' + path + ' HTTP/1.1\r\nHost: 127.0.0.1:' + port + '\r\nUpgrade: websocket\r\n' +
      'Connection: Upgrade\r\nSec-WebSocket-Key: ' + key + '\r\nSec-WebSocket-Version: 13\r\n\r\n';
  }
  return 'GET ' + path + ' HTTP/1.1\r\nHost: 127.0.0.1:' + port + '\r\nAccept: */*\r\n\r\n';
}

// true when buf holds a complete acceptable response, false when it is a bad one,
// null when more bytes are needed.
function complete(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
  const status = m ? Number(m[1]) : 0;
  if (mode === 'ws') return status === 101;
  if (status !== 200) return false;
  const cl = /\r\ncontent-length:[ \t]*(\d+)/i.exec(buf.slice(0, end + 2));
  if (!cl) return buf.endsWith('0\r\n\r\n') && end + 4 < buf.length; // chunked: last chunk
  return buf.length - (end + 4) >= Number(cl[1]) ? true : null;
}

function target() {
  return steps[Math.min(stepIdx, steps.length - 1)];
}

function openOne() {
  inflight++;
  let buf = '';
  let state = 0; // 0 waiting for the response, 1 established, 2 finished
  const s = net.connect({ host: '127.0.0.1', port });
  s.setNoDelay(true);
  s.on('connect', () => s.write(request()));
  s.on('data', (d) => {
    if (state !== 0) return; // an idle tunnel/keep-alive connection ignores anything later
    buf += d.toString('latin1');
    const r = complete(buf);
    if (r === null) return;
    buf = '';
    inflight--;
    if (r) {
      state = 1;
      ok++;
      alive++;
      socks.push(s);
    } else {
      state = 2;
      failed++;
      s.destroy();
    }
    pump();
  });
  s.on('error', () => {});
  s.on('close', () => {
    if (state === 0) {
      state = 2;
      inflight--;
      failed++;
      pump();
    } else if (state === 1) {
      state = 2;
      alive--;
    }
  });
}

function report() {
  if (reported) return;
  reported = true;
  clearTimeout(stepTimer);
  setTimeout(() => {
    process.stdout.write(JSON.stringify({ step: target(), ok, alive, failed,
      ms: Date.now() - stepStart }) + '\n');
  }, settleMs);
}

function pump() {
  if (reported) return;
  const t = target();
  // Give up on a step after as many failures as it has connections (proxy refusing).
  while (ok + inflight < t && inflight < concurrency && failed < t) openOne();
  if (inflight === 0 && (ok >= t || failed >= t)) report();
}

function startStep() {
  reported = false;
  stepStart = Date.now();
  stepTimer = setTimeout(report, stepTimeoutMs);
  pump();
}

process.on('SIGUSR1', () => {
  if (!reported || stepIdx >= steps.length - 1) return;
  stepIdx++;
  startStep();
});
function quit() {
  for (const s of socks) s.destroy();
  process.exit(0);
}
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
setTimeout(quit, lifetimeS * 1000);
startStep();
