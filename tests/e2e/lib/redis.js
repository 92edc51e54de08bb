'use strict';
// Real redis-server / redis-sentinel processes for the end-to-end tests:
// always on loopback, each in its own temporary directory, stopped by PID when
// the test ends (also on failure) or when the test process exits.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, sleep, waitFor, OUT_DIR, HOST, Cluster } = require('./cluster');

const procs = new Set();

function killAll() {
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  procs.clear();
}
process.on('exit', killAll);

// redis-cli -h 127.0.0.1 -p port args... → trimmed stdout (rejects on failure).
function cli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', HOST, '-p', String(port), ...args.map(String)], { timeout: 5000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout.replace(/\n$/, ''));
    });
  });
}

function spawnTracked(cmd, args, logPath) {
  fs.mkdirSync(path.dirname(logPath), { recursive: true });
  const fd = fs.openSync(logPath, 'a');
  let child;
  try {
    child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  procs.add(child);
  child.exitInfo = null;
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      procs.delete(child);
      child.exitInfo = { code, signal };
      resolve(child.exitInfo);
    });
    child.on('error', (err) => {
      procs.delete(child);
      child.exitInfo = { error: err };
      resolve(child.exitInfo);
    });
  });
  return child;
}

async function stopProc(child, signal = 'SIGTERM') {
  if (!child || child.exitInfo) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    return;
  }
  const done = await Promise.race([child.exited, sleep(5000).then(() => null)]);
  if (!done) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // gone
    }
    await child.exited;
  }
}

// One redis-server on 127.0.0.1:port (port kept across restarts).
class RedisServer {
  constructor(name, { appendonly = false, replicaof = null, password = null } = {}) {
    this.name = name;
    this.password = password;
    this.appendonly = appendonly;
    this.replicaof = replicaof;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podrouter-redis-'));
    this.logPath = path.join(OUT_DIR, `${name}-redis.log`);
    this.proc = null;
  }

  args() {
    const a = ['--bind', HOST, '--port', String(this.port), '--save', '', '--dir', this.dir,
      '--appendonly', this.appendonly ? 'yes' : 'no', '--daemonize', 'no', '--protected-mode', 'no'];
    if (this.replicaof) a.push('--replicaof', HOST, String(this.replicaof));
    if (this.password) a.push('--requirepass', this.password);
    return a;
  }

  // Starts (or restarts on the same port); waits for PING.
  async start() {
    if (!this.port) this.port = await freePort();
    if (this.proc && !this.proc.exitInfo) throw new Error(`${this.name} already running`);
    fs.appendFileSync(this.logPath, `# redis-server ${this.args().join(' ')}\n`);
    this.proc = spawnTracked('redis-server', this.args(), this.logPath);
    await waitFor(async () => {
      if (this.proc.exitInfo) throw new Error(`redis-server exited: ${JSON.stringify(this.proc.exitInfo)}`);
      // LOADING answers an error until the AOF is read back.
      return (await this.cli('PING')) === 'PONG';
    }, { timeoutMs: 10000, what: `${this.name} PING` });
    return this;
  }

  // Stops the process (SIGKILL by default: the data it holds is what the AOF has).
  async stop(signal = 'SIGKILL') {
    await stopProc(this.proc, signal);
  }

  // Empties the data directory (a restart then starts without data).
  wipe() {
    for (const f of fs.readdirSync(this.dir)) fs.rmSync(path.join(this.dir, f), { recursive: true, force: true });
  }

  // redis-cli with this server's password, if any (options such as -n go first).
  cli(...args) {
    return cli(this.port, ...(this.password ? ['-a', this.password, '--no-auth-warning'] : []), ...args);
  }

  // Sum of calls over every command in INFO commandstats, and the per-command map.
  async commandStats() {
    const text = await this.cli('INFO', 'commandstats');
    const per = {};
    let total = 0;
    for (const line of text.split('\n')) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (!m) continue;
      per[m[1]] = Number(m[2]);
      total += Number(m[2]);
    }
    return { total, per };
  }

  async cleanup() {
    await this.stop('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// One redis-sentinel watching masterName at 127.0.0.1:masterPort.
class RedisSentinel {
  constructor(name, masterName, masterPort) {
    this.name = name;
    this.masterName = masterName;
    this.masterPort = masterPort;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podrouter-sentinel-'));
    this.logPath = path.join(OUT_DIR, `${name}-sentinel.log`);
  }

  async start() {
    this.port = await freePort();
    this.conf = path.join(this.dir, 'sentinel.conf');
    fs.writeFileSync(this.conf, [
      `port ${this.port}`,
      `bind ${HOST}`,
      `dir ${this.dir}`,
      'protected-mode no',
      `sentinel monitor ${this.masterName} ${HOST} ${this.masterPort} 1`,
      `sentinel down-after-milliseconds ${this.masterName} 1000`,
      `sentinel failover-timeout ${this.masterName} 5000`,
      `sentinel parallel-syncs ${this.masterName} 1`,
      '',
    ].join('\n'));
    this.proc = spawnTracked('redis-sentinel', [this.conf], this.logPath);
    await waitFor(async () => {
      if (this.proc.exitInfo) throw new Error(`redis-sentinel exited: ${JSON.stringify(this.proc.exitInfo)}`);
      return (await this.cli('PING')) === 'PONG';
    }, { timeoutMs: 10000, what: `${this.name} PING` });
    return this;
  }

  cli(...args) {
    return cli(this.port, ...args);
  }

  async masterPortNow() {
    const out = await this.cli('SENTINEL', 'get-master-addr-by-name', this.masterName);
    const lines = out.split('\n');
    return Number(lines[1]);
  }

  async cleanup() {
    await stopProc(this.proc, 'SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Starts a redis-server for test context t (stopped and removed when t ends).
async function startRedis(t, name, opts = {}) {
  const r = new RedisServer(name, opts);
  t.after(() => r.cleanup());
  await r.start();
  return r;
}

async function startSentinel(t, name, masterName, masterPort) {
  const s = new RedisSentinel(name, masterName, masterPort);
  t.after(() => s.cleanup());
  await s.start();
  return s;
}

// Two router replicas on one store URL: A with the example pods (they register
// and heartbeat through A only), B with none (it learns them through Redis).
// storeUrlA: another way to the same Redis for A (a slow link, say).
async function startReplicas(t, name, storeUrl, { pods = 3, routerArgs = [], podEnv = {}, storeUrlA } = {}) {
  const args = ['--store', storeUrl, ...routerArgs];
  const argsA = ['--store', storeUrlA || storeUrl, ...routerArgs];
  const a = new Cluster(`${name}-A`, { pods, routerArgs: argsA, podEnv });
  const b = new Cluster(`${name}-B`, { pods: 0, routerArgs: args });
  // One hook for both: a replica that crashed makes its stop() throw, and the other one
  // must still be stopped (a replica left running keeps the test file from ending).
  t.after(async () => {
    const results = [];
    for (const c of [b, a]) results.push(await c.stop().then(() => null, (e) => e));
    const err = results.find((e) => e);
    if (err) throw err;
  });
  await a.start();
  await b.start();
  const names = [...a.pods.keys()];
  if (names.length) await b.waitPodsState(names, 'ready', 5000);
  return { a, b, names };
}

module.exports = { RedisServer, RedisSentinel, startRedis, startSentinel, startReplicas, cli };
