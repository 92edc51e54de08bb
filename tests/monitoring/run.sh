#!/usr/bin/env bash
# Offline checks of the monitoring stack (deploy/monitoring) and its docs.
#
#   bash tests/monitoring/run.sh
#
# Needs: promtool (Debian package prometheus), kubectl (with kustomize),
# yamllint, python3 with PyYAML (python3-yaml), shellcheck (optional: its
# check is skipped when absent). When a built router is found (build/ or
# builddir/, or PODROUTER_BIN), its real /metrics is checked against the
# queries too (it listens on two free loopback ports and is stopped after).
# One line per check, "ok - name" or
# "not ok - name" (diagnostics before it, prefixed "# "); the last line is
# "N passed, N failed"; the exit status is 1 when anything failed.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
mon="$repo/deploy/monitoring"
rules="$mon/rules/pod-router-alerts.yaml"
rules_test="$mon/rules/pod-router-alerts.test.yaml"
dashboards="$mon/dashboards"
ops_doc="$repo/docs/operations.md"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0

# run NAME CMD...: one check; its output is shown only when it fails.
run() {
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "ok - $name"
        passed=$((passed + 1))
    else
        sed 's/^/# /' "$tmp/out"
        echo "not ok - $name"
        failed=$((failed + 1))
    fi
}

skip() {
    echo "ok - $1 # SKIP $2"
    passed=$((passed + 1))
}

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "$1 not found: $2"
        return 1
    }
}

# The metric families of SPEC section 7 (name type). Kept here so that the
# check works without the spec; check_spec_list compares it with SPEC.md.
metrics_list() {
    cat <<'EOF'
podrouter_build_info gauge
podrouter_http_requests_total counter
podrouter_request_duration_seconds histogram
podrouter_upstream_connect_duration_seconds histogram
podrouter_connections_active gauge
podrouter_websocket_tunnels_total counter
podrouter_routed_requests_total counter
podrouter_assignments_total counter
podrouter_pods gauge
podrouter_pod_load gauge
podrouter_proxy_errors_total counter
podrouter_store_up gauge
podrouter_store_operation_duration_seconds histogram
podrouter_bytes_total counter
podrouter_backend_desired_replicas gauge
podrouter_rate_limited_total counter
EOF
}

find_spec() {
    local c
    for c in "${SPEC_MD:-}" "$repo/../shared/SPEC.md" /work/shared/SPEC.md "$repo/docs/SPEC.md"; do
        if [ -n "$c" ] && [ -f "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

check_rules() {
    need promtool "apt-get install -y prometheus" || return 1
    promtool check rules "$rules"
}

check_rules_tests() {
    need promtool "apt-get install -y prometheus" || return 1
    promtool test rules "$rules_test"
}

# Every alert has a test case in which it fires, and every runbook_url
# points at an anchor that docs/operations.md really has.
check_alert_coverage() {
    need python3 "apt-get install -y python3 python3-yaml" || return 1
    python3 - "$rules" "$rules_test" "$ops_doc" <<'PY'
import re, sys, yaml
rules_f, test_f, doc_f = sys.argv[1:4]
alerts = [r for g in yaml.safe_load(open(rules_f))["groups"] for r in g["rules"] if "alert" in r]
tests = yaml.safe_load(open(test_f))["tests"]
fired = {t["alertname"] for tc in tests for t in tc.get("alert_rule_test", []) if t.get("exp_alerts")}
silent = {t["alertname"] for tc in tests for t in tc.get("alert_rule_test", []) if not t.get("exp_alerts")}
doc = open(doc_f).read() if doc_f and __import__("os").path.exists(doc_f) else ""
# GitHub heading anchors: lower case, punctuation dropped, spaces to dashes.
anchors = set()
for line in doc.splitlines():
    m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
    if m:
        a = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        anchors.add(a)
    for m in re.finditer(r'<a\s+(?:name|id)="([^"]+)"', line):
        anchors.add(m.group(1))
bad = 0
for a in alerts:
    name = a["alert"]
    for key in ("severity",):
        if key not in a.get("labels", {}):
            print(f"{name}: no label {key}"); bad += 1
    ann = a.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        if key not in ann:
            print(f"{name}: no annotation {key}"); bad += 1
    url = ann.get("runbook_url", "")
    m = re.match(r"^docs/operations\.md#(.+)$", url)
    if not m:
        print(f"{name}: runbook_url {url!r} is not docs/operations.md#<anchor>"); bad += 1
    elif m.group(1) not in anchors:
        print(f"{name}: docs/operations.md has no anchor #{m.group(1)}"); bad += 1
    if name not in fired:
        print(f"{name}: no test case makes it fire"); bad += 1
    if name not in silent:
        print(f"{name}: no test case where it must stay silent"); bad += 1
sys.exit(1 if bad else 0)
PY
}

check_dashboard_json() {
    need python3 "apt-get install -y python3" || return 1
    python3 - "$1" <<'PY'
import json, sys
f = sys.argv[1]
d = json.load(open(f))
bad = []
for key in ("uid", "title", "schemaVersion", "panels"):
    if key not in d:
        bad.append(f"missing top-level {key}")
if not 36 <= d.get("schemaVersion", 0) <= 39:
    bad.append(f"schemaVersion {d.get('schemaVersion')} not ~38")
ok_ds = ({"type": "prometheus", "uid": "prometheus"}, "${DS_PROMETHEUS}")
ids = set()
n = 0
def walk(panels):
    global n
    for p in panels:
        if p.get("id") in ids:
            bad.append(f"duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            walk(p.get("panels", []))
            continue
        n += 1
        for t in p.get("targets", []):
            ds = t.get("datasource", p.get("datasource"))
            if ds not in ok_ds and not (isinstance(ds, dict) and ds.get("uid") == "${DS_PROMETHEUS}"):
                bad.append(f"panel {p.get('title')!r}: datasource {ds!r}")
            if not t.get("expr"):
                bad.append(f"panel {p.get('title')!r}: target without expr")
walk(d.get("panels", []))
if n == 0:
    bad.append("no panels")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
}

check_dashboard_uids() {
    python3 - "$dashboards" <<'PY'
import glob, json, os, sys
seen = {}
bad = 0
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    uid = json.load(open(f)).get("uid")
    if uid in seen:
        print(f"uid {uid} in both {seen[uid]} and {f}"); bad = 1
    seen[uid] = f
sys.exit(bad)
PY
}

# Every PromQL expression of the dashboards parses: they are written into a
# throw-away rules file (Grafana variables replaced) that promtool checks.
check_dashboard_promql() {
    need promtool "apt-get install -y prometheus" || return 1
    python3 - "$dashboards" "$tmp/dashboard-rules.yaml" <<'PY' || return 1
import glob, json, os, re, sys, yaml
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
rules = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    d = json.load(open(f))
    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                e = t.get("expr", "")
                for a, b in subst.items():
                    e = e.replace(a, b)
                e = re.sub(r"\$\{?\w+\}?", ".*", e)
                rules.append({"record": f"dashboard:{os.path.basename(f)[:-5].replace('-', '_')}:{len(rules)}",
                              "expr": e})
    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.match(r"^label_values\((.+),\s*\w+\)$", q)
        if m:
            rules.append({"record": f"dashboard:variable:{len(rules)}", "expr": m.group(1)})
yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(sys.argv[2], "w"))
PY
    promtool check rules "$tmp/dashboard-rules.yaml"
}

# podrouter_* names used by the queries of dashboards, rules and tests must
# be SPEC section 7 series names (histograms only with _bucket/_sum/_count).
# Prose (descriptions, docs) may also name the histogram families, and
# metrics the implementation exports beyond section 7 (found in src/).
check_metric_names() {
    metrics_list >"$tmp/metrics"
    cat "$repo"/src/*.c 2>/dev/null | grep -o '"podrouter_[a-z0-9_]*' | tr -d '"' | sort -u >"$tmp/extra"
    python3 - "$tmp/metrics" "$tmp/extra" "$ops_doc" "$rules" "$rules_test" "$dashboards"/*.json <<'PY'
import json, re, sys, yaml
families = [l.split() for l in open(sys.argv[1]) if l.strip()]
series = set()
for name, kind in families:
    if kind == "histogram":
        series |= {name + s for s in ("_bucket", "_sum", "_count")}
    else:
        series.add(name)
prose_ok = series | {n for n, _ in families} | {l.strip() for l in open(sys.argv[2]) if l.strip()}

def queries(f, text):
    """The PromQL (or series selectors) a file holds; the rest is prose."""
    if f.endswith(".json"):
        out = []
        def walk(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k in ("expr", "query", "definition") and isinstance(v, str):
                        out.append(v)
                    else:
                        walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(json.loads(text))
        return out
    if f.endswith(".md"):
        return []
    doc = yaml.safe_load(text)
    if "groups" in doc:
        return [r["expr"] for g in doc["groups"] for r in g["rules"]]
    out = []
    for tc in doc.get("tests", []):
        out += [s["series"] for s in tc.get("input_series", [])]
        out += [e["expr"] for e in tc.get("promql_expr_test", [])]
    return out

bad = 0
for f in sys.argv[3:]:
    try:
        text = open(f).read()
    except FileNotFoundError:
        continue
    names = lambda s: set(re.findall(r"\bpodrouter_[A-Za-z0-9_]+", s))
    for q in queries(f, text):
        for n in sorted(names(q) - series):
            print(f"{f}: query uses {n}, not a series of SPEC section 7"); bad = 1
    for n in sorted(names(text) - prose_ok):
        print(f"{f}: {n} is not a metric of SPEC section 7"); bad = 1
sys.exit(bad)
PY
}

check_spec_list() {
    local spec=$1
    metrics_list >"$tmp/metrics"
    python3 - "$spec" "$tmp/metrics" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^## 7\..*?$(.*?)(?=^## )", text, re.M | re.S)
if not m:
    print("SPEC.md has no section 7"); sys.exit(1)
spec = set(re.findall(r"^\|\s*`(podrouter_\w+)`\s*\|\s*(\w+)", m.group(1), re.M))
ours = {tuple(l.split()) for l in open(sys.argv[2]) if l.strip()}
for n, k in sorted(spec - ours):
    print(f"in SPEC, not in run.sh list: {n} {k}")
for n, k in sorted(ours - spec):
    print(f"in run.sh list, not in SPEC: {n} {k}")
sys.exit(0 if spec == ours else 1)
PY
}

check_docs_metrics() {
    [ -f "$ops_doc" ] || { echo "missing $ops_doc"; return 1; }
    local rc=0 n
    for n in $(metrics_list | cut -d' ' -f1) process_cpu_seconds_total \
        process_resident_memory_bytes process_open_fds process_start_time_seconds; do
        grep -q "\`$n" "$ops_doc" || { echo "docs/operations.md does not describe $n"; rc=1; }
    done
    return "$rc"
}

check_kustomize() {
    if command -v kubectl >/dev/null 2>&1; then
        kubectl kustomize "$mon" >"$tmp/rendered.yaml" || return 1
    elif command -v kustomize >/dev/null 2>&1; then
        kustomize build "$mon" >"$tmp/rendered.yaml" || return 1
    else
        echo "neither kubectl nor kustomize found (kubectl >= 1.21 embeds kustomize v4+)"
        return 1
    fi
    python3 - "$tmp/rendered.yaml" "$dashboards" <<'PY'
import glob, os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
bad = []
if any(d["kind"] == "Secret" for d in docs):
    bad.append("the stack must not contain a Secret (grafana-admin is created out of band)")
for d in docs:
    ns = d["metadata"].get("namespace")
    if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding") and ns != "monitoring":
        bad.append(f"{d['kind']}/{d['metadata']['name']} in namespace {ns}")
pvc = by.get(("PersistentVolumeClaim", "prometheus-data"))
if not pvc or pvc["spec"].get("storageClassName") != "do-block-storage":
    bad.append("PVC prometheus-data on do-block-storage missing")
for kind, name in (("Deployment", "prometheus"), ("Deployment", "grafana"), ("DaemonSet", "node-exporter"),
                   ("Deployment", "kube-state-metrics"), ("Deployment", "redis-exporter"),
                   ("ServiceAccount", "prometheus"), ("ClusterRoleBinding", "monitoring-prometheus"),
                   ("Service", "grafana"), ("Service", "prometheus")):
    if (kind, name) not in by:
        bad.append(f"missing {kind}/{name}")
prom = by.get(("Deployment", "prometheus"))
if prom:
    args = " ".join(prom["spec"]["template"]["spec"]["containers"][0]["args"])
    if "--storage.tsdb.retention.time=15d" not in args:
        bad.append("prometheus retention is not 15d")
graf = by.get(("Deployment", "grafana"))
if graf:
    env = graf["spec"]["template"]["spec"]["containers"][0].get("env", [])
    pw = [e for e in env if e["name"] == "GF_SECURITY_ADMIN_PASSWORD"]
    ref = pw and pw[0].get("valueFrom", {}).get("secretKeyRef", {})
    if not ref or ref.get("name") != "grafana-admin" or ref.get("key") != "admin-password":
        bad.append("grafana admin password is not read from Secret grafana-admin/admin-password")
    # Every dashboard file reaches Grafana's dashboards directory.
    mounted = set()
    for v in graf["spec"]["template"]["spec"]["volumes"]:
        for s in v.get("projected", {}).get("sources", []):
            cm = by.get(("ConfigMap", s.get("configMap", {}).get("name")))
            if cm:
                mounted |= set(cm.get("data", {}))
    for f in sorted(glob.glob(os.path.join(sys.argv[2], "*.json"))):
        if os.path.basename(f) not in mounted:
            bad.append(f"dashboard {os.path.basename(f)} is not provisioned into Grafana")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
}

# promtool from Debian is built without Kubernetes service discovery, so the
# kubernetes_sd_configs blocks are replaced by static targets before the
# syntax check; the rule_files glob must match where the rules are mounted.
check_prometheus_config() {
    need promtool "apt-get install -y prometheus" || return 1
    python3 - "$mon/prometheus/prometheus.yml" "$mon/prometheus/deployment.yaml" "$tmp/prometheus.yml" <<'PY' || return 1
import os, sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
dep = yaml.safe_load(open(sys.argv[2]))
mounts = {m["name"]: m["mountPath"] for c in dep["spec"]["template"]["spec"]["containers"]
          for m in c.get("volumeMounts", [])}
globs = cfg.get("rule_files", [])
if not any(os.path.dirname(g) == mounts.get("rules") for g in globs):
    print(f"rule_files {globs} do not load the rules volume mounted at {mounts.get('rules')}")
    sys.exit(1)
jobs = {j["job_name"] for j in cfg["scrape_configs"]}
missing = {"pod-router", "backend", "node-exporter", "kube-state-metrics", "redis-exporter",
           "kubernetes-cadvisor"} - jobs
if missing:
    print(f"missing scrape jobs: {sorted(missing)}")
    sys.exit(1)
for j in cfg["scrape_configs"]:
    if j.pop("kubernetes_sd_configs", None) is not None:
        j.setdefault("static_configs", []).append({"targets": ["sd.invalid:1"]})
yaml.safe_dump(cfg, open(sys.argv[3], "w"))
PY
    promtool check config --syntax-only "$tmp/prometheus.yml"
}

check_yamllint() {
    need yamllint "apt-get install -y yamllint" || return 1
    local files=()
    while IFS= read -r f; do files+=("$f"); done < <(find "$mon" -name '*.yaml' -o -name '*.yml' | sort)
    if [ -f "$repo/.yamllint" ]; then
        yamllint -c "$repo/.yamllint" "${files[@]}"
    else
        yamllint --strict -d relaxed "${files[@]}"
    fi
}

check_shellcheck() {
    shellcheck "$here/run.sh"
}

# With a built router: its real /metrics passes `promtool check metrics` and
# exposes every podrouter_* series, and every label="value" pair, that the
# dashboards and rules select on.
find_router() {
    local c
    for c in "${PODROUTER_BIN:-}" "$repo"/build/src/pod-router "$repo"/builddir/src/pod-router; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

check_live_metrics() {
    local bin=$1 pub adm pid rc=0
    need promtool "apt-get install -y prometheus" || return 1
    read -r pub adm < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
    "$bin" serve --listen "127.0.0.1:$pub" --admin-listen "127.0.0.1:$adm" --threads 1 \
        --store memory --log-level warn >"$tmp/router.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
        curl -fsS -m 1 "http://127.0.0.1:$adm/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    # One registered pod (so that the per-pod series exist) and one request.
    curl -fsS -m 2 -o /dev/null -X PUT -H 'Content-Type: application/json' \
        -d '{"address":"127.0.0.1:9"}' "http://127.0.0.1:$adm/v1/pods/backend-0" || rc=1
    curl -sS -m 2 -o /dev/null "http://127.0.0.1:$pub/api/room/room_monitoring/state" || true
    curl -fsS -m 2 "http://127.0.0.1:$adm/metrics" >"$tmp/metrics.txt" || rc=1
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ "$rc" -ne 0 ]; then
        echo "router did not answer; its log:"
        cat "$tmp/router.log"
        return 1
    fi
    promtool check metrics <"$tmp/metrics.txt" || return 1
    python3 - "$tmp/metrics.txt" "$rules" "$dashboards"/*.json <<'PY'
import json, re, sys, yaml
expo = {}
for line in open(sys.argv[1]):
    m = re.match(r"^(podrouter_\w+)(?:\{(.*)\})?\s", line)
    if m:
        pairs = set(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        expo.setdefault(m.group(1), set()).update(pairs)
queries = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("expr", "query", "definition") and isinstance(v, str):
                queries.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
for f in sys.argv[2:]:
    if f.endswith(".json"):
        walk(json.load(open(f)))
    else:
        queries += [r["expr"] for g in yaml.safe_load(open(f))["groups"] for r in g["rules"]]
bad = set()
for q in queries:
    for name, sel in re.findall(r"\b(podrouter_\w+)(?:\{([^}]*)\})?", q):
        if name not in expo:
            bad.add(f"{name} is not exposed by the router")
            continue
        for lab, val in re.findall(r'(\w+)\s*=\s*"([^"]*)"', sel or ""):
            if lab == "job" or lab == "instance":
                continue
            if (lab, val) not in expo[name]:
                bad.add(f'{name}{{{lab}="{val}"}} is not exposed by the router')
for b in sorted(bad):
    print(b)
sys.exit(1 if bad else 0)
PY
}

cd "$repo" || exit 1
run "promtool check rules" check_rules
run "promtool test rules" check_rules_tests
run "every alert: labels, annotations, runbook anchor, firing and silent tests" check_alert_coverage
for f in "$dashboards"/*.json; do
    run "dashboard JSON valid: $(basename "$f")" check_dashboard_json "$f"
done
run "dashboard uids unique" check_dashboard_uids
run "dashboard PromQL parses" check_dashboard_promql
run "podrouter_* names in dashboards, rules, tests and docs are SPEC section 7 metrics" check_metric_names
if spec=$(find_spec); then
    run "metric list matches SPEC section 7" check_spec_list "$spec"
else
    skip "metric list matches SPEC section 7" "SPEC.md not found (set SPEC_MD)"
fi
run "docs/operations.md describes every SPEC section 7 metric" check_docs_metrics
run "kubectl kustomize deploy/monitoring renders" check_kustomize
run "prometheus.yml syntax and consistency" check_prometheus_config
run "yamllint deploy/monitoring" check_yamllint
if router=$(find_router); then
    run "live router /metrics: promtool check metrics, every queried series and label value exposed" \
        check_live_metrics "$router"
else
    skip "live router /metrics" "no pod-router binary (build it, or set PODROUTER_BIN)"
fi
if command -v shellcheck >/dev/null 2>&1; then
    run "shellcheck tests/monitoring/run.sh" check_shellcheck
else
    skip "shellcheck tests/monitoring/run.sh" "shellcheck not installed"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
