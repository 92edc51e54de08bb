#!/usr/bin/env bash
# Room-aware rollout of the backend StatefulSet (updateStrategy OnDelete):
# replaces every pod that does not run the StatefulSet's update revision, from
# the highest ordinal down, and never deletes a pod that holds an active room.
#
#   deploy/scripts/rollout-backend.sh [-n NAMESPACE] [--timeout 6h] [--drain-timeout 2h] ...
#
# For each old pod backend-N, highest first:
#   1. kubectl exec <router pod> -- pod-router drain --wait-empty --timeout T \
#        --admin-url http://127.0.0.1:3002 backend-N
#      (no new rooms go to it; returns once it holds no active room);
#   2. kubectl delete pod backend-N; the StatefulSet recreates it at the new
#      revision;
#   3. wait until the new pod is Ready and registered with the router
#      (GET /v1/pods/backend-N says "state":"ready"), then the next one.
# Surge: before the first drain the StatefulSet gets one pod more (at the new
# revision), so new rooms always have an up-to-date place while old pods drain.
# When an autoscaler owns the StatefulSet (KEDA ScaledObject or HPA), the
# surge is its floor (minReplicaCount / minReplicas): first the current size
# + 1, then, while pods drain, the router's desired replicas + 1, so a
# rollout that waits hours for rooms to end does not pin the peak size; the
# original floor is restored at the end (also on failure), and the autoscaler
# removes the extra pod once it holds no active room. Without an autoscaler
# the script scales back itself, but only when the extra pod is empty.
#
# A rollout that runs out of time (--timeout for the whole rollout,
# --drain-timeout per pod) deletes nothing more: every room keeps running, the
# pods still on the old revision are listed, and the exit status is 1 (a pod
# left draining keeps serving its rooms; run the script again to continue).
# Exit status: 0 done (or nothing to do), 1 timed out or failed, 2 bad usage.
#
# Needs kubectl with, in the namespace: get/list pods, statefulsets,
# scaledobjects or horizontalpodautoscalers; patch statefulsets/scale and the
# autoscaler; create pods/exec (router pods); delete pods. The router image has
# bash: registration is read over bash's /dev/tcp inside the router pod, so
# no Service, port-forward or network policy change is needed.
# Environment: KUBECTL (default kubectl).
set -euo pipefail

namespace=${NAMESPACE:-hyperstudy}
statefulset=backend
router_selector=app.kubernetes.io/name=pod-router
router_container=pod-router
admin_url=http://127.0.0.1:3002
token_file=/etc/pod-router/token
scaledobject=backend
hpa=backend-hpa
timeout=6h
drain_timeout=2h
ready_timeout=10m
poll=5
surge=1
kubectl_cmd=${KUBECTL:-kubectl}

usage() {
    cat <<EOF
usage: $0 [options]
  -n, --namespace NS        namespace (default $namespace; env NAMESPACE)
  --statefulset NAME        backend StatefulSet (default $statefulset)
  --router-selector SEL     label selector of the router pods (default $router_selector)
  --router-container NAME   container to exec into (default $router_container)
  --admin-url URL           admin URL as seen inside the router pod (default $admin_url)
  --token-file PATH         admin token inside the router pod; "" for none (default $token_file)
  --scaledobject NAME       KEDA ScaledObject of the StatefulSet (default $scaledobject)
  --hpa NAME                HPA of the StatefulSet when there is no ScaledObject (default $hpa)
  --timeout DUR             bound of the whole rollout (default $timeout)
  --drain-timeout DUR       bound of one pod's drain --wait-empty (default $drain_timeout)
  --ready-timeout DUR       bound of one new pod becoming Ready and registered (default $ready_timeout)
  --poll SECONDS            polling interval (default $poll)
  --no-surge                do not add the extra pod while rolling
DUR: a number with s, m or h (e.g. 90s, 30m, 2h).
EOF
}

die_usage() {
    echo "rollout-backend: $*" >&2
    usage >&2
    exit 2
}

# seconds DUR -> prints the duration in seconds.
seconds() {
    local d=$1 n unit
    if [[ $d =~ ^([0-9]+)(ms|s|m|h)?$ ]]; then
        n=${BASH_REMATCH[1]}
        unit=${BASH_REMATCH[2]:-s}
        case $unit in
            ms) echo $(((n + 999) / 1000)) ;;
            s) echo "$n" ;;
            m) echo $((n * 60)) ;;
            h) echo $((n * 3600)) ;;
        esac
    else
        return 1
    fi
}

while [ $# -gt 0 ]; do
    case $1 in
        -n | --namespace) namespace=${2:?}; shift 2 ;;
        --statefulset) statefulset=${2:?}; shift 2 ;;
        --router-selector) router_selector=${2:?}; shift 2 ;;
        --router-container) router_container=${2:?}; shift 2 ;;
        --admin-url) admin_url=${2:?}; shift 2 ;;
        --token-file) token_file=${2-}; shift 2 ;;
        --scaledobject) scaledobject=${2:?}; shift 2 ;;
        --hpa) hpa=${2:?}; shift 2 ;;
        --timeout) timeout=${2:?}; shift 2 ;;
        --drain-timeout) drain_timeout=${2:?}; shift 2 ;;
        --ready-timeout) ready_timeout=${2:?}; shift 2 ;;
        --poll) poll=${2:?}; shift 2 ;;
        --no-surge) surge=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done

timeout_s=$(seconds "$timeout") || die_usage "bad --timeout $timeout"
drain_s=$(seconds "$drain_timeout") || die_usage "bad --drain-timeout $drain_timeout"
ready_s=$(seconds "$ready_timeout") || die_usage "bad --ready-timeout $ready_timeout"
[[ $poll =~ ^[0-9]+(\.[0-9]+)?$ ]] || die_usage "bad --poll $poll"
[[ $admin_url =~ ^http://([^/:]+):([0-9]+)/?$ ]] || die_usage "--admin-url must be http://HOST:PORT"
admin_host=${BASH_REMATCH[1]}
admin_port=${BASH_REMATCH[2]}

deadline=$((SECONDS + timeout_s))

log() {
    printf '%s rollout-backend: %s\n' "$(date -u +%H:%M:%S)" "$*"
}

k() {
    "$kubectl_cmd" -n "$namespace" "$@"
}

# ---- what is old --------------------------------------------------------------

replicas=$(k get statefulset "$statefulset" -o 'jsonpath={.spec.replicas}')
revision=$(k get statefulset "$statefulset" -o 'jsonpath={.status.updateRevision}')
[[ $replicas =~ ^[0-9]+$ ]] || { echo "rollout-backend: cannot read replicas of statefulset/$statefulset" >&2; exit 1; }
[ -n "$revision" ] || { echo "rollout-backend: statefulset/$statefulset has no updateRevision" >&2; exit 1; }

pod_revision() {
    k get pod "$1" -o 'jsonpath={.metadata.labels.controller-revision-hash}' 2>/dev/null || true
}

# Ordinals below $1 whose pod is not at the update revision, highest first.
old_ordinals() {
    local i
    for ((i = $1 - 1; i >= 0; i--)); do
        [ "$(pod_revision "$statefulset-$i")" = "$revision" ] || echo "$i"
    done
}

mapfile -t old < <(old_ordinals "$replicas")
if [ "${#old[@]}" -eq 0 ]; then
    log "statefulset/$statefulset: all $replicas pods run revision $revision; nothing to do"
    exit 0
fi
log "statefulset/$statefulset: ${#old[@]} of $replicas pods to replace (revision $revision): $(printf "$statefulset-%s " "${old[@]}")"

# ---- router access --------------------------------------------------------------

router_pod() {
    k get pods -l "$router_selector" --field-selector=status.phase=Running \
        -o 'jsonpath={.items[0].metadata.name}'
}

router=$(router_pod)
[ -n "$router" ] || { echo "rollout-backend: no running router pod ($router_selector)" >&2; exit 1; }

# in_router ARGS...: runs a command in a router pod (another one if it went away).
in_router() {
    if ! k get pod "$router" -o 'jsonpath={.metadata.name}' >/dev/null 2>&1; then
        router=$(router_pod)
    fi
    k exec "$router" -c "$router_container" -- "$@"
}

# admin METHOD PATH: an admin API call made inside the router pod (bash
# /dev/tcp, no curl in the image); prints the response.
admin() {
    # shellcheck disable=SC2016 # expanded by the bash inside the router pod
    in_router bash -c '
        set -e
        auth=""
        if [ -n "$5" ] && [ -r "$5" ]; then auth="Authorization: Bearer $(cat "$5")"; fi
        exec 3<>"/dev/tcp/$3/$4"
        {
            printf "%s %s HTTP/1.0\r\nHost: %s\r\n" "$1" "$2" "$3"
            if [ -n "$auth" ]; then printf "%s\r\n" "$auth"; fi
            printf "\r\n"
        } >&3
        timeout 10 cat <&3' _ "$1" "$2" "$admin_host" "$admin_port" "$token_file"
}

registered_state() {
    admin GET "/v1/pods/$1" 2>/dev/null | tr -d '\r' | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p' | head -n 1
}

pod_ready() {
    [ "$(k get pod "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)" = True ]
}

remaining() {
    echo $((deadline - SECONDS))
}

sts_replicas() {
    k get statefulset "$statefulset" -o 'jsonpath={.spec.replicas}'
}

# wait_new NAME: until NAME runs the update revision, is Ready and the router
# lists it as ready. A registry entry left `draining` by the old pod (one that
# was killed before its sidecar could unregister) is removed once, so that the
# new pod's heartbeat registers it afresh.
wait_new() {
    local name=$1 until=$((SECONDS + ready_s)) state cleared=0
    [ "$until" -le "$deadline" ] || until=$deadline
    while [ "$SECONDS" -lt "$until" ]; do
        # Removed by a scale-down meanwhile: nothing to wait for.
        [ "${name##*-}" -lt "$(sts_replicas)" ] || return 2
        if [ "$(pod_revision "$name")" = "$revision" ] && pod_ready "$name"; then
            state=$(registered_state "$name")
            if [ "$state" = ready ]; then
                log "$name: Ready and registered (revision $revision)"
                return 0
            fi
            if [ "$state" = draining ] && [ "$cleared" -eq 0 ]; then
                log "$name: registry entry still draining from the old pod; removing it"
                admin DELETE "/v1/pods/$name" >/dev/null 2>&1 || true
                cleared=1
            fi
        fi
        sleep "$poll"
    done
    return 1
}

# ---- surge ----------------------------------------------------------------------

floor_kind=""
floor_saved=""
floor_now=""
set_floor() {
    local n=$1
    [ -n "$floor_kind" ] && [ "$n" != "$floor_now" ] || return 0
    if [ "$floor_kind" = scaledobject ]; then
        k patch scaledobject "$scaledobject" --type merge -p "{\"spec\":{\"minReplicaCount\":$n}}" >/dev/null || return 1
    else
        k patch hpa "$hpa" --type merge -p "{\"spec\":{\"minReplicas\":$n}}" >/dev/null || return 1
    fi
    log "$floor_kind floor $floor_now -> $n"
    floor_now=$n
}

restore_floor() {
    [ -n "$floor_kind" ] || return 0
    set_floor "$floor_saved" || true
    floor_kind=""
}

# The router's desired replica count (SPEC 5.1), read inside the router pod.
desired_now() {
    admin GET /v1/cluster 2>/dev/null | tr -d '\r' | sed -n 's/.*"desiredReplicas":\([0-9]*\).*/\1/p' | head -n 1
}

# With an autoscaler, the floor follows the router: desired replicas + 1 (the
# pod being drained takes no new rooms), never below the original floor. So
# the surge pod stays while it is needed, and the autoscaler still shrinks the
# StatefulSet during a long rollout as rooms end (never removing a pod that
# holds an active room: those count in desired replicas).
follow_floor() {
    [ -n "$floor_kind" ] || return 0
    local d
    d=$(desired_now)
    [[ $d =~ ^[0-9]+$ ]] || return 0
    d=$((d + 1))
    [ "$d" -ge "$floor_saved" ] || d=$floor_saved
    set_floor "$d" || true
}

still_old() {
    local stale
    mapfile -t stale < <(old_ordinals "$(sts_replicas)")
    if [ "${#stale[@]}" -gt 0 ]; then
        echo "rollout-backend: still on the old revision: $(printf "$statefulset-%s " "${stale[@]}")" >&2
    fi
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    restore_floor || true
    if [ "$rc" -ne 0 ]; then
        still_old || true
        echo "rollout-backend: stopped (exit $rc); no pod holding an active room was deleted" >&2
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 1' INT TERM

if [ "$surge" -eq 1 ]; then
    target=$((replicas + 1))
    if so_min=$(k get scaledobject "$scaledobject" -o 'jsonpath={.spec.minReplicaCount}' 2>/dev/null) && [ -n "$so_min" ]; then
        floor_kind=scaledobject
        floor_saved=$so_min
    elif hpa_min=$(k get hpa "$hpa" -o 'jsonpath={.spec.minReplicas}' 2>/dev/null) && [ -n "$hpa_min" ]; then
        floor_kind=hpa
        floor_saved=$hpa_min
    fi
    floor_now=$floor_saved
    [ "$target" -ge "$floor_saved" ] || target=$floor_saved
    set_floor "$target"
    if [ "$(sts_replicas)" -lt "$target" ]; then
        k scale statefulset "$statefulset" --replicas="$target" >/dev/null
        log "surge: statefulset/$statefulset scaled to $target"
    fi
    wait_new "$statefulset-$((target - 1))" || {
        echo "rollout-backend: surge pod $statefulset-$((target - 1)) not Ready and registered in time" >&2
        exit 1
    }
fi

# ---- replace, highest ordinal first -----------------------------------------------

for i in "${old[@]}"; do
    name=$statefulset-$i
    # A scale-down during the rollout may have removed it (it held no active
    # room); the StatefulSet creates it at the new revision if it comes back.
    if [ "$i" -ge "$(sts_replicas)" ]; then
        log "$name: removed by a scale-down meanwhile; skipped"
        continue
    fi
    if [ "$(pod_revision "$name")" = "$revision" ]; then
        continue
    fi
    left=$(remaining)
    if [ "$left" -le 0 ]; then
        echo "rollout-backend: --timeout $timeout reached before $name" >&2
        exit 1
    fi
    t=$drain_s
    [ "$t" -le "$left" ] || t=$left
    follow_floor
    log "$name: drain --wait-empty (up to ${t}s)"
    in_router pod-router drain --wait-empty --timeout "${t}s" --admin-url "$admin_url" \
        ${token_file:+--token-file "$token_file"} "$name" &
    drain_pid=$!
    # While the drain waits for rooms to end, the floor keeps following.
    while kill -0 "$drain_pid" 2>/dev/null; do
        sleep "$poll"
        follow_floor
    done
    drc=0
    wait "$drain_pid" || drc=$?
    if [ "$drc" -ne 0 ]; then
        if [ "$drc" -eq 3 ]; then
            echo "rollout-backend: $name still holds active rooms after ${t}s; left running (draining)" >&2
        else
            echo "rollout-backend: drain of $name failed (exit $drc); left running" >&2
        fi
        exit 1
    fi
    if [ "$i" -ge "$(sts_replicas)" ]; then
        log "$name: empty and removed by a scale-down meanwhile"
        continue
    fi
    log "$name: empty; deleting the pod"
    k delete pod "$name" --wait=false >/dev/null
    # The old pod is gone once the name shows the new revision.
    wrc=0
    wait_new "$name" || wrc=$?
    if [ "$wrc" -eq 2 ]; then
        log "$name: removed by a scale-down meanwhile"
    elif [ "$wrc" -ne 0 ]; then
        echo "rollout-backend: $name not Ready and registered at revision $revision in time" >&2
        exit 1
    fi
done

log "all pods of statefulset/$statefulset run revision $revision"

# ---- end of the surge -------------------------------------------------------------

if [ "$surge" -eq 1 ]; then
    if [ -n "$floor_kind" ]; then
        restore_floor
        log "the autoscaler removes the extra pod once it holds no active room"
    else
        extra=$statefulset-$((target - 1))
        admin_json=$(admin GET "/v1/pods/$extra" 2>/dev/null | tr -d '\r' || true)
        rooms=$(sed -n 's/.*"load":{"rooms":\([0-9]*\).*/\1/p' <<<"$admin_json" | head -n 1)
        if [ "${rooms:-1}" = 0 ] && [ "$(sts_replicas)" = "$target" ]; then
            k scale statefulset "$statefulset" --replicas="$((target - 1))" >/dev/null
            log "surge: statefulset/$statefulset back to $((target - 1))"
        else
            log "surge pod $extra holds active rooms (or the count changed): left at $(sts_replicas) replicas"
        fi
    fi
fi
