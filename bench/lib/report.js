'use strict';
// Turns the raw figures collected by bench/run.sh (TSV: column<TAB>metric<TAB>value, where
// column "meta" holds run information) into the printed table and results.json.
//
//   node report.js RESULTS_TSV RESULTS_JSON
const fs = require('fs');

const [tsvPath, jsonPath] = process.argv.slice(2);
if (!tsvPath || !jsonPath) {
  process.stderr.write('usage: node report.js RESULTS_TSV RESULTS_JSON\n');
  process.exit(2);
}

const COLUMNS = [
  ['pr1', 'pod-router'],
  ['pr2', 'pod-router(2t)'],
  ['haproxy', 'haproxy'],
  ['nginx', 'nginx'],
];
// metric, label, decimals, the metric of the baselines it is compared with
const ROWS = [
  ['cpu_room_us', 'cpu per request, room key (us)', 2, 'cpu_room_us'],
  ['cpu_room_user_us', '  of which user space (us)', 2, 'cpu_room_user_us'],
  ['cpu_room_sys_us', '  of which kernel (us)', 2, 'cpu_room_sys_us'],
  ['cpu_nokey_us', 'cpu per request, no key (us)*', 2, 'cpu_room_us'],
  ['rps_room', 'req/s, room key', 0, 'rps_room'],
  ['rps_nokey', 'req/s, no key*', 0, 'rps_room'],
  ['p99_room_ms', 'p99 latency, room key (ms)', 2, 'p99_room_ms'],
  ['p99_nokey_ms', 'p99 latency, no key (ms)*', 2, 'p99_room_ms'],
  ['http_errors', 'wrk errors (non-2xx + socket)', 0, 'http_errors'],
  ['ws_bytes', 'memory per idle ws tunnel (B)', 0, 'ws_bytes'],
  ['ws_marginal_bytes', '  marginal, first step -> N (B)', 0, 'ws_marginal_bytes'],
  ['ws_alive', '  tunnels held open', 0, 'ws_alive'],
  ['ws_fds', '  proxy fds while holding them', 0, 'ws_fds'],
  ['ka_bytes', 'memory per idle keep-alive conn (B)', 0, 'ka_bytes'],
  ['ka_marginal_bytes', '  marginal, first step -> N (B)', 0, 'ka_marginal_bytes'],
  ['ka_alive', '  keep-alive conns held open', 0, 'ka_alive'],
  ['rss_start_kib', 'RSS of a fresh process (KiB)', 0, 'rss_start_kib'],
  ['rss_after_cpu_kib', 'RSS after the wrk runs (KiB)', 0, 'rss_after_cpu_kib'],
];

const results = {};
const meta = {};
for (const line of fs.readFileSync(tsvPath, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const [col, key, ...rest] = line.split('\t');
  const value = rest.join('\t');
  if (col === 'meta') {
    meta[key] = value;
    continue;
  }
  const n = Number(value);
  (results[col] = results[col] || {})[key] = value !== '' && Number.isFinite(n) ? n : value;
}

function get(col, metric) {
  const v = results[col] && results[col][metric];
  return typeof v === 'number' ? v : null;
}
function fmt(v, dec) {
  if (v === null || v === undefined) return '-';
  return v.toFixed(dec);
}
function ratio(a, b) {
  return a === null || b === null || b === 0 ? null : a / b;
}

const ratios = {};
const rows = [];
for (const [metric, label, dec, base] of ROWS) {
  const cells = COLUMNS.map(([col]) => fmt(get(col, metric), dec));
  const pr = get('pr1', metric);
  const rh = ratio(pr, get('haproxy', base));
  const rn = ratio(pr, get('nginx', base));
  if (!metric.endsWith('_alive') && !metric.endsWith('_fds') && metric !== 'http_errors') {
    ratios[metric] = { vs_haproxy: rh, vs_nginx: rn };
    cells.push(fmt(rh, 2), fmt(rn, 2));
  } else {
    cells.push('', '');
  }
  rows.push([label, ...cells]);
}

const header = ['metric', ...COLUMNS.map((c) => c[1]), 'pr/haproxy', 'pr/nginx'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
  .join('  ');
const out = [line(header), ...rows.map(line)];
out.push('');
out.push('* haproxy and nginx ignore the query string: their single run (/?roomId=room_bench) is the');
out.push('  baseline of both the room-key and the no-key rows.');
out.push('Ratios compare the 1-thread pod-router with 1-thread haproxy / 1-worker nginx; for cpu,');
out.push('latency and memory lower is better, for req/s higher is better.');
if (meta.upstream_rps) out.push('nginx upstream alone (no proxy): ' + meta.upstream_rps + ' req/s.');
if (meta.loadavg_start) {
  out.push('load average at start: ' + meta.loadavg_start + ', at end: ' + (meta.loadavg_end || '?') +
    ' (' + (meta.nproc || '?') + ' CPUs, shared machine: expect noise).');
}
process.stdout.write(out.join('\n') + '\n');

const json = {
  meta,
  columns: Object.fromEntries(COLUMNS),
  results,
  ratios_pod_router_1t: ratios,
};
fs.writeFileSync(jsonPath, JSON.stringify(json, null, 2) + '\n');
