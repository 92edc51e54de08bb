'use strict';
// Child processes of the simulation: spawned with their output in a log
// file, tracked, and killed by PID when the simulation exits (also on a
// crash or a signal). Nothing here listens anywhere but 127.0.0.1.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const children = new Set();

function killAll() {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function spawnLogged(cmd, args, { env = process.env, logPath }) {
  fs.mkdirSync(path.dirname(logPath), { recursive: true });
  const fd = fs.openSync(logPath, 'a');
  let child;
  try {
    child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  children.add(child);
  child.exitInfo = null;
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      child.exitInfo = { code, signal };
      resolve(child.exitInfo);
    });
    child.on('error', (err) => {
      children.delete(child);
      child.exitInfo = { code: null, signal: null, error: err };
      resolve(child.exitInfo);
    });
  });
  return child;
}

function signal(child, sig) {
  if (!child || child.exitInfo) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    // exited meanwhile
  }
}

// SIGTERM, then SIGKILL after ms.
async function stop(child, ms = 3000) {
  if (!child || child.exitInfo) return;
  signal(child, 'SIGTERM');
  const t = setTimeout(() => signal(child, 'SIGKILL'), ms);
  await child.exited;
  clearTimeout(t);
}

module.exports = { spawnLogged, signal, stop, killAll };
