'use strict';
// The Socket.IO workload's report (bench/run.sh): medians over the rounds, ratios to HAProxy with
// the same number of threads, the printed tables, workload.json, and gnuplot charts.
//
//   node workload-report.js WORKLOAD_TSV OUT_DIR RESULTS_DIR
//
// WORKLOAD_TSV lines: round<TAB>column<TAB>metric<TAB>value, or meta<TAB>key<TAB>value.
// OUT_DIR holds the fan-out latency CDFs (cdf-<column>-r<round>.txt) written by the load
// generator; RESULTS_DIR receives table.txt, results.json, the chart data and the .svg charts.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const [tsvPath, outDir, resDir] = process.argv.slice(2);
if (!tsvPath || !outDir || !resDir) {
  process.stderr.write('usage: node workload-report.js WORKLOAD_TSV OUT_DIR RESULTS_DIR\n');
  process.exit(2);
}

const NAMES = {
  direct: 'direct to pod',
  pr1: 'pod-router',
  pr1r: 'pod-router+redis',
  pr1w: 'pod-router, --io-uring false',
  hap1: 'haproxy',
  ngx1: 'nginx',
  pr2: 'pod-router',
  pr2r: 'pod-router+redis',
  hap2: 'haproxy',
  ngx2: 'nginx',
  ndirect: 'direct to Node pod',
  npr1: 'pod-router',
  nhap1: 'haproxy',
};
const GROUPS = [
  { title: '1 thread / 1 worker', cols: ['direct', 'pr1', 'pr1r', 'pr1w', 'hap1', 'ngx1'], base: 'hap1' },
  { title: '2 threads / 2 workers', cols: ['pr2', 'pr2r', 'hap2', 'ngx2'], base: 'hap2' },
  { title: 'realism: Node.js pods (examples/backend)', cols: ['ndirect', 'npr1', 'nhap1'], base: 'nhap1' },
];

const meta = {};
const raw = {}; // raw[col][metric] = [values by round]
for (const line of fs.readFileSync(tsvPath, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const parts = line.split('\t');
  if (parts[0] === 'meta') {
    meta[parts[1]] = parts.slice(2).join('\t');
    continue;
  }
  const [, col, metric, value] = parts;
  if (col.startsWith('n') && col !== 'ngx1' && col !== 'ngx2' && /split_rooms/.test(metric)) continue; // Node sids name no pod
  const n = Number(value);
  if (value === '' || !Number.isFinite(n)) continue;
  ((raw[col] = raw[col] || {})[metric] = raw[col][metric] || []).push(n);
}

function median(a) {
  if (!a || !a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const med = (col, metric) => median(raw[col] && raw[col][metric]);

// Derived: added fan-out latency over the direct-to-pod run.
for (const col of Object.keys(raw)) {
  if (col === 'direct' || col === 'ndirect') continue;
  const dcol = /^n(pr|hap)/.test(col) ? 'ndirect' : 'direct';
  for (const q of ['p50', 'p99']) {
    const v = med(col, `ws_fanout_${q}_ms`);
    const d = med(dcol, `ws_fanout_${q}_ms`);
    if (v !== null && d !== null) raw[col][`ws_added_${q}_ms`] = [Math.max(0, v - d)];
  }
}

const tunSteps = [...new Set(Object.values(raw).flatMap((m) => Object.keys(m))
  .map((k) => /^tun_(\d+)_bytes$/.exec(k)).filter(Boolean).map((m) => Number(m[1])))].sort((a, b) => a - b);

// metric, label, decimals, direction for the ratio ('low' = lower is better)
const ROWS = [
  ['', 'Engine.IO handshakes, new sid per request (wrk)'],
  ['hs_rps', 'requests/s', 0, 'high'],
  ['hs_p99_ms', 'p99 latency (ms)', 2, 'low'],
  ['hs_cpu_us', 'proxy CPU per request (us)', 1, 'low'],
  ['hs_redis_cpu_us', '  + Redis CPU per request (us)', 1, 'low'],
  ['hs_pod_conns', 'pod connections opened, steady state', 0, 'low'],
  ['hs_pod_closed', 'pod connections closed, steady state', 0, 'low'],
  ['hs_machine_busy_pct', 'machine CPU busy, all cores (%)', 0, 'none'],
  ['hs_errors', 'errors (non-2xx + socket)', 0, 'low'],
  ['', 'polling POSTs with known sids (wrk)'],
  ['poll_rps', 'requests/s', 0, 'high'],
  ['poll_p99_ms', 'p99 latency (ms)', 2, 'low'],
  ['poll_cpu_us', 'proxy CPU per request (us)', 1, 'low'],
  ['poll_redis_cpu_us', '  + Redis CPU per request (us)', 1, 'low'],
  ['poll_pod_conns', 'pod connections opened, steady state', 0, 'low'],
  ['poll_pod_closed', 'pod connections closed, steady state', 0, 'low'],
  ['poll_machine_busy_pct', 'machine CPU busy, all cores (%)', 0, 'none'],
  ['poll_errors', 'errors (400 = wrong pod)', 0, 'low'],
  ['', 'room-key requests /api/room/<id>/state (wrk)'],
  ['room_rps', 'requests/s', 0, 'high'],
  ['room_p99_ms', 'p99 latency (ms)', 2, 'low'],
  ['room_cpu_us', 'proxy CPU per request (us)', 1, 'low'],
  ['room_redis_cpu_us', '  + Redis CPU per request (us)', 1, 'low'],
  ['room_pod_conns', 'pod connections opened, steady state', 0, 'low'],
  ['room_pod_closed', 'pod connections closed, steady state', 0, 'low'],
  ['room_machine_busy_pct', 'machine CPU busy, all cores (%)', 0, 'none'],
  ['room_errors', 'errors', 0, 'low'],
  ['', 'rooms over WebSocket (bench-loadgen)'],
  ['ws_frames_per_s', 'frames/s relayed (both ways)', 0, 'high'],
  ['ws_watched_cpu_us_per_frame', 'proxy CPU per frame (us)', 2, 'low'],
  ['ws_fanout_p50_ms', 'fan-out latency p50 (ms)', 3, 'low'],
  ['ws_fanout_p99_ms', 'fan-out latency p99 (ms)', 3, 'low'],
  ['ws_fanout_p999_ms', 'fan-out latency p99.9 (ms)', 3, 'low'],
  ['ws_added_p99_ms', 'added p99 over direct (ms)', 3, 'low'],
  ['ws_setup_rate', 'connection setup (conn/s)', 0, 'high'],
  ['ws_setup_p99_ms', 'setup latency p99 (ms)', 1, 'low'],
  ['ws_errors_total', 'errors', 0, 'low'],
  ['ws_split_rooms', 'rooms split over pods', 0, 'low'],
  ['ws_loadgen_cpu_pct', 'load generator CPU (% core)', 1, 'low'],
  ['', 'load generator capacity: 1,000 rooms x 10 direct, 1 update/s per room'],
  ['cap_joined', 'participants joined (one process)', 0, 'high'],
  ['cap_setup_rate', 'connection setup (conn/s)', 0, 'high'],
  ['cap_frames_per_s', 'frames/s', 0, 'high'],
  ['cap_fanout_p99_ms', 'fan-out latency p99 (ms)', 3, 'low'],
  ['cap_loadgen_cpu_pct', 'load generator CPU (% core)', 1, 'low'],
  ['cap_loadgen_cpu_s', 'load generator CPU, whole run (s)', 2, 'low'],
  ['', 'idle WebSocket tunnels (RSS growth / tunnels)'],
  ...tunSteps.map((s) => [`tun_${s}_bytes`, `bytes per tunnel at ${s}`, 0, 'low']),
  ['', 'reconnect storm (pod p1 killed, round 1)'],
  ['storm_ms', 'until all back in their rooms (ms)', 0, 'low'],
  ['storm_lost', 'participants that lost their pod', 0, 'low'],
  ['storm_split_rooms', 'rooms split afterwards', 0, 'low'],
  ['', 'reconnect storm (one of 2 router replicas on one Redis gets SIGTERM)'],
  ['rstorm_ms', 'until all back in their rooms (ms)', 0, 'low'],
  ['rstorm_lost', 'participants that lost their replica', 0, 'low'],
  ['rstorm_split_rooms', 'rooms split afterwards', 0, 'low'],
];

function fmt(v, dec) {
  if (v === null || v === undefined) return '-';
  return v.toFixed(dec);
}
function ratio(v, b) {
  if (v === null || b === null || b === 0) return '';
  return ` (${(v / b).toFixed(2)}x)`;
}

const lines = [];
lines.push(`Socket.IO workload, ${meta.mode || '?'} run, ${meta.date || ''}, commit ${meta.commit || '?'}; ` +
  `medians over the rounds; (x) = ratio to HAProxy with the same threads`);
lines.push(`${meta.params || ''}; load ${meta.loadavg_start || '?'} -> ${meta.loadavg_end || '?'} (shared machine)`);
const results = {};
const md = []; // the same tables in Markdown (results/table.md), for docs/benchmarks.md
for (const grp of GROUPS) {
  const cols = grp.cols.filter((c) => raw[c]);
  if (!cols.length) continue;
  md.push('', `| ${grp.title} | ${cols.map((c) => NAMES[c]).join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`);
  const W = 38;
  const CW = 20;
  lines.push('');
  lines.push(`${grp.title}`.padEnd(W) + cols.map((c) => NAMES[c].padStart(CW)).join(''));
  let section = null;
  for (const [metric, label, dec] of ROWS) {
    if (!metric) {
      section = label;
      continue;
    }
    if (!cols.some((c) => med(c, metric) !== null)) continue;
    if (section) {
      lines.push(section);
      md.push(`| **${section}** |${cols.map(() => '').join(' |')} |`);
      section = null;
    }
    const b = med(grp.base, metric);
    const cells = cols.map((c) => {
      const v = med(c, metric);
      (results[c] = results[c] || {})[metric] = v;
      const r = c === grp.base || /errors|conns|closed|split|lost|rstorm|machine/.test(metric) ? '' : ratio(v, b);
      return `${fmt(v, dec)}${r}`.padStart(CW);
    });
    lines.push(`  ${label}`.padEnd(W) + cells.join(''));
    md.push(`| ${label.trim()} | ${cells.map((x) => x.trim().replace(/\((\S+)x\)/, '(**$1×**)')).join(' | ')} |`);
  }
}
const table = lines.join('\n') + '\n';
process.stdout.write(table);

fs.mkdirSync(resDir, { recursive: true });
fs.writeFileSync(path.join(resDir, 'table.txt'), table);
fs.writeFileSync(path.join(resDir, 'table.md'), lines.slice(0, 2).join('\n\n') + '\n' + md.join('\n') + '\n');
const ratios = {};
for (const grp of GROUPS)
  for (const c of grp.cols) {
    if (!results[c] || c === grp.base) continue;
    for (const [metric] of ROWS) {
      const v = results[c][metric];
      const b = results[grp.base] && results[grp.base][metric];
      if (metric && v !== null && v !== undefined && b) (ratios[c] = ratios[c] || {})[metric] = +(v / b).toFixed(3);
    }
  }
const json = JSON.stringify({ meta, results, ratios_to_haproxy: ratios, raw }, null, 1);
fs.writeFileSync(path.join(resDir, 'results.json'), json);
fs.writeFileSync(path.join(outDir, 'workload.json'), json);

// ---- charts ------------------------------------------------------------------------------------
const chartCols = ['direct', 'pr1', 'pr1r', 'pr1w', 'hap1', 'ngx1', 'pr2', 'pr2r', 'hap2', 'ngx2'].filter((c) => raw[c]);
const label = (c) => `${NAMES[c]}${/2/.test(c) ? ' 2t' : c === 'direct' ? '' : ' 1t'}`;
// one colour per proxy, dashed for 2 threads
const COLOR = { direct: '#000000', pr: '#1f5fbf', prr: '#17a2b8', hap: '#c0392b', ngx: '#27ae60' };
const style = (c) => {
  const fam = c === 'direct' ? 'direct' : c.startsWith('pr') ? (c.endsWith('r') ? 'prr' : 'pr') : c.slice(0, 3);
  return `lw 2 lc rgb "${COLOR[fam]}" dt ${/2/.test(c) ? 2 : 1}`;
};
const num = (v) => (v === null || v === undefined ? 'NaN' : String(v));
fs.writeFileSync(path.join(resDir, 'cpu.dat'),
  '# column\thandshake\tpolling\troom\tredis_handshake\tper_frame\n' +
  chartCols.map((c) => [`"${label(c)}"`, med(c, 'hs_cpu_us'), med(c, 'poll_cpu_us'), med(c, 'room_cpu_us'),
    med(c, 'hs_redis_cpu_us'), med(c, 'ws_watched_cpu_us_per_frame')].map(num).join('\t')).join('\n') + '\n');
fs.writeFileSync(path.join(resDir, 'tunnels.dat'),
  '# tunnels\t' + chartCols.filter((c) => c !== 'direct').map(label).join('\t') + '\n' +
  tunSteps.map((s) => [s, ...chartCols.filter((c) => c !== 'direct').map((c) => med(c, `tun_${s}_bytes`))]
    .map(num).join('\t')).join('\n') + '\n');
const cdfs = [];
for (const c of chartCols) {
  const f = path.join(outDir, `cdf-${c}-r1.txt`);
  if (fs.existsSync(f)) {
    fs.copyFileSync(f, path.join(resDir, `cdf-${c}.dat`));
    cdfs.push(c);
  }
}
const gp = [];
gp.push(`set terminal svg size 900,480 dynamic font "sans,11"
set datafile separator "\\t"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key top left
set xtics rotate by -30

set output "cpu-per-request.svg"
set title "Proxy CPU per request (us, lower is better; direct = the pod itself)"
set ylabel "CPU us / request"
plot ${[[2, 'handshake (new sid)', 'hs_cpu_us'], [3, 'polling, known sid', 'poll_cpu_us'], [4, 'room-key request', 'room_cpu_us'], [5, '+ Redis CPU (handshake)', 'hs_redis_cpu_us']]
    .filter(([, , m]) => chartCols.some((c) => med(c, m) !== null))
    .map(([i, t], k) => `"cpu.dat" using ${i}${k === 0 ? ':xtic(1)' : ''} title "${t}"`).join(', ')}

set output "cpu-per-frame.svg"
set title "Proxy CPU per WebSocket frame (us, lower is better; direct = the pod itself)"
set ylabel "CPU us / frame"
plot "cpu.dat" using 6:xtic(1) title "rooms: relayed frames, both ways"
`);
if (cdfs.length) {
  gp.push(`set output "fanout-latency-cdf.svg"
set style data lines
unset xtics
set xtics
set logscale x
set title "Fan-out latency CDF (host event -> every participant of the room), round 1"
set xlabel "latency (ms, log scale)"
set ylabel "fraction of deliveries"
set key bottom right
plot ${cdfs.map((c) => `"cdf-${c}.dat" using 1:2 with lines ${style(c)} title "${label(c)}"`).join(', ')}
unset logscale x
`);
}
if (tunSteps.length) {
  const tc = chartCols.filter((c) => c !== 'direct');
  gp.push(`set output "memory-per-tunnel.svg"
set style data linespoints
set title "Proxy memory per idle WebSocket tunnel (RSS growth / tunnels)"
set xlabel "idle tunnels"
set ylabel "bytes per tunnel"
set key top right
set xtics (${tunSteps.join(', ')})
set yrange [0:*]
plot ${tc.map((c, i) => `"tunnels.dat" using 1:${i + 2} with linespoints ${style(c)} pt 7 title "${label(c)}"`).join(', ')}
`);
}
fs.writeFileSync(path.join(resDir, 'charts.gp'), gp.join('\n'));
try {
  execFileSync('gnuplot', ['charts.gp'], { cwd: resDir, stdio: ['ignore', 'ignore', 'pipe'] });
  process.stdout.write(`charts: ${resDir}/{cpu-per-request,cpu-per-frame,fanout-latency-cdf,memory-per-tunnel}.svg\n`);
} catch (e) {
  process.stdout.write(`charts not drawn (gnuplot: ${e.code === 'ENOENT' ? 'not installed' : String(e.stderr || e.message).trim()})\n`);
}
