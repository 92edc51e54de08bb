'use strict';
// Minimal WebSocket upstream for the tunnel-memory benchmark (no dependencies).
// Answers an Upgrade: websocket request with a valid 101 (correct Sec-WebSocket-Accept),
// then stays silent and discards whatever arrives, so every tunnel through the proxy is
// truly idle. A plain GET gets "200 ok" (readiness probe). Listens on 127.0.0.1 only and
// exits by itself after LIFETIME seconds.
//
//   node ws-upstream.js PORT [LIFETIME_S]
const net = require('net');
const crypto = require('crypto');

const port = Number(process.argv[2]);
const lifetimeS = Number(process.argv[3] || 600);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: node ws-upstream.js PORT [LIFETIME_S]\n');
  process.exit(2);
}
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const server = net.createServer((s) => {
  let head = '';
  s.setNoDelay(true);
  s.on('error', () => {});
  const onData = (d) => {
    head += d.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 16384) s.destroy();
      return;
    }
    s.removeListener('data', onData);
    s.on('data', () => {}); // silent sink
    const h = head.slice(0, end + 2);
    head = '';
    const key = /\r\nsec-websocket-key:[ \t]*([^\r\n]+)/i.exec(h);
    if (!/\r\nupgrade:[ \t]*websocket/i.test(h) || !key) {
      s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n' +
            'Connection: close\r\n\r\nok\n');
      return;
    }
    const accept = crypto.createHash('sha1').update(key[1].trim() + GUID).digest('base64');
    s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Accept: ' + accept + '\r\n\r\n');
  };
  s.on('data', onData);
});
server.on('error', (e) => {
  process.stderr.write('ws-upstream: ' + e.message + '\n');
  process.exit(1);
});
server.listen({ host: '127.0.0.1', port, backlog: 4096 });
setTimeout(() => process.exit(0), lifetimeS * 1000);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
