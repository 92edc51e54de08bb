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
# Drain ahead: while one pod drains, the next old pods (same order) are
# marked draining too, as long as the ready pods among the first ordinals the
# whole active load needs with its headroom could hold that whole load (the
# draining pods' rooms included: while they end, new rooms take their place
# on the ready pods) plus its rise over the last --trend-window, and
# --headroom pods' worth at --utilization (so pack keeps new rooms where they
# add no pod); their rooms then end in parallel instead of one pod after the
# other. In practice these are the high ordinals that only a few long rooms
# keep once the load falls; while it rises or stays at the peak, nothing is
# drained ahead. The next pod waited for is the draining one with the fewest
# active rooms.
# Peak wait: a pod that holds rooms and that drain ahead would not drain yet
# (the ready pods below could not take over the whole load, its rise and the
# headroom) is not drained while --peak-wait lasts (in all, over the
# rollout): the rollout polls as during a drain until the load has fallen
# enough, then drains it. Drained at the peak, its share of the arrivals
# would go above it, onto a pod the load does not need, for their lifetime.
# Surge: before the first drain of a pod that holds rooms the StatefulSet gets
# one pod more (at the new revision), so new rooms have an up-to-date place
# while old pods drain. The empty top pods (pack's headroom) are replaced
# before that, without a pod more: the first of them back is that place, and a
# pod added at the peak would take the arrivals that no longer fit below u
# for their lifetime (with an autoscaler no surge follows then: the floor
# below adds a pod when the load needs one).
# When an autoscaler owns the StatefulSet (KEDA ScaledObject or HPA), the
# surge is its floor (minReplicaCount / minReplicas): first the current size
# + 1, then, while pods drain, what the load needs: the smallest size whose
# first ordinals hold enough ready pods for the ready pods' active load at
# --utilization plus --headroom (a draining or down pod below it adds
# one), never below the original floor. So the surge pod goes as soon as the
# router's desired replicas leave room for the pods being drained, and a
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
ahead=1
settle=10s
trend_window=10m
peak_wait=1h
growth=""
plan_mode=""
plan_pods=()
utilization=0.75
headroom=1
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
  --no-surge                do not add the extra pod while rolling (it is added before the
                            first pod holding rooms drains, not before empty top pods)
  --no-drain-ahead          drain one pod at a time only
  --settle DUR              a drained pod must still hold no active room after DUR before
                            it is deleted (default $settle)
  --utilization U           the router's --pack-utilization (default $utilization)
  --headroom N              the router's --headroom-pods (default $headroom)
  --trend-window DUR        drain ahead reserves room for the active load's rise over the
                            last DUR, and drains nothing ahead before it has watched the load
                            that long (default $trend_window)
  --growth ROOMS,PARTS      with --plan ahead: that rise (default 0,0)
  --peak-wait DUR           in all, wait up to DUR for the load to fall before draining a pod
                            that holds rooms the ready pods below could not take over (the
                            drain-ahead rule); 0: never wait (default $peak_wait)
  --plan MODE [ARG...]      dry run, no kubectl: print the decision MODE for the GET /v1/pods
                            body on stdin, and exit (1 when it holds no pod): floor SIZE
                            (the StatefulSet's size), ahead POD... or head POD... (the old
                            pods in rollout order), empty POD..., surge POD (the next one)
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
        --no-drain-ahead) ahead=0; shift ;;
        --settle) settle=${2:?}; shift 2 ;;
        --trend-window) trend_window=${2:?}; shift 2 ;;
        --peak-wait) peak_wait=${2:?}; shift 2 ;;
        --growth) growth=${2:?}; shift 2 ;;
        --utilization) utilization=${2:?}; shift 2 ;;
        --headroom) headroom=${2:?}; shift 2 ;;
        --plan) plan_mode=${2:?}; shift 2; plan_pods=("$@"); break ;;
        -h | --help) usage; exit 0 ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done

timeout_s=$(seconds "$timeout") || die_usage "bad --timeout $timeout"
drain_s=$(seconds "$drain_timeout") || die_usage "bad --drain-timeout $drain_timeout"
ready_s=$(seconds "$ready_timeout") || die_usage "bad --ready-timeout $ready_timeout"
settle_s=$(seconds "$settle") || die_usage "bad --settle $settle"
trend_s=$(seconds "$trend_window") || die_usage "bad --trend-window $trend_window"
peak_s=$(seconds "$peak_wait") || die_usage "bad --peak-wait $peak_wait"
[ -z "$growth" ] || [[ $growth =~ ^[0-9]+,[0-9]+$ ]] || die_usage "bad --growth $growth (ROOMS,PARTICIPANTS)"
[[ $poll =~ ^[0-9]+(\.[0-9]+)?$ ]] || die_usage "bad --poll $poll"
[[ $utilization =~ ^(0?\.[0-9]*[1-9][0-9]*|1(\.0*)?)$ ]] || die_usage "bad --utilization $utilization (0 < U <= 1)"
[[ $headroom =~ ^[0-9]+$ ]] || die_usage "bad --headroom $headroom"
[[ $admin_url =~ ^http://([^/:]+):([0-9]+)/?$ ]] || die_usage "--admin-url must be http://HOST:PORT"
admin_host=${BASH_REMATCH[1]}
# drain --wait-empty polls as often as the script does (at most 1 s apart)
poll_ms=$(awk -v p="$poll" 'BEGIN { m = int(p * 1000); if (m < 100) m = 100; if (m > 1000) m = 1000; print m }')
admin_port=${BASH_REMATCH[2]}

deadline=$((SECONDS + timeout_s))

log() {
    printf '%s rollout-backend: %s\n' "$(date -u +%H:%M:%S)" "$*"
}

k() {
    "$kubectl_cmd" -n "$namespace" "$@"
}

# pods_parse < GET /v1/pods response: the registry as the router sees it
# (active loads, SPEC 5), one pod a line: NAME STATE ROOMS PARTICIPANTS
# CAPACITY_ROOMS CAPACITY_PARTICIPANTS.
pods_parse() {
    tr -d '\r' | sed 's/{"name":"/\n&/g' |
        sed -n 's/^{"name":"\([^"]*\)".*"state":"\([a-z]*\)".*"capacity":{"rooms":\([0-9]*\),"participants":\([0-9]*\)}.*"load":{"rooms":\([0-9]*\),"participants":\([0-9]*\)[,}].*/\1 \2 \5 \6 \3 \4/p'
}

# plan MODE [CANDIDATE...] < pods_table: the rollout's decisions from the
# registry (candidates: old pods in rollout order). Exit 1 when the table is
# empty (router not readable: decide nothing).
#   floor  (first argument: the StatefulSet's size) the autoscaler floor
#          while pods drain: the smallest size whose first ordinals hold as
#          many ready pods (or pods still to be created) as the ready pods'
#          active rooms and participants need at --utilization (as SPEC 5.1
#          counts them), plus --headroom. A draining (or down) pod below that
#          size takes no new rooms, so it adds one; pack puts new rooms on the
#          lowest ready pods, and the top one is the headroom again. A pod
#          that is not registered (being recreated after its delete) counts
#          like one to be created: an extra pod would start no sooner; so
#          does a draining pod without active rooms (it is replaced next).
#   ahead  the candidates that may be drained now, in order, stopping at the
#          first that may not: after draining it, (a) the ready pods still
#          need no more pods than there are, and (b) the ready pods among the
#          first L ordinals, L = the pods the whole active load G needs at
#          --utilization plus --headroom, could hold G plus --headroom pods'
#          worth of rooms and participants at --utilization. G is the load
#          of every pod, the draining ones included, plus its rise (--growth,
#          ROOMS,PARTICIPANTS; measured over --trend-window): while a
#          drained pod's rooms end, new ones arrive and land on the ready
#          pods, so at a steady load the ready pods end up holding all of
#          it; a check of their free capacity at one instant (the rule
#          before) let the peak's arrivals fill them before the drained pods
#          emptied, and push new rooms onto a pod the load did not need
#          (where they keep it, SPEC 5.1's H + 1, for a room's lifetime).
#          In practice it drains the high ordinals that only stragglers keep
#          once the load falls.
#   head   the candidate to wait for next: the draining one with the fewest
#          active rooms, else the first registered one, else the first.
#   empty  the first candidate that is draining and holds no active room.
#   surge  "no" when the first candidate is ready and holds no active room
#          (replaced before any pod is added), else "yes".
plan() {
    local mode=$1
    shift
    awk -v mode="$mode" -v u="$utilization" -v h="$headroom" -v cands="$*" -v growth="${growth:-0,0}" '
        function ceil0(x) { x -= 1e-9; if (x <= 0) return 0; return x == int(x) ? x : int(x) + 1 }
        function need(r, p,  a, b) { a = ceil0(r / (cr * u)); b = ceil0(p / (cp * u)); return (a > b ? a : b) + h }
        function ord(name) { return match(name, /-[0-9]+$/) ? substr(name, RSTART + 1) + 0 : -1 }
        # the ready pods up to ordinal top, pod skip excluded, hold rooms r and
        # participants p plus the headroom at u
        function hold_ok(skip, top, r, p,  x, fr, fp) {
            fr = 0; fp = 0
            for (x in st) {
                if (x == skip || st[x] != "ready" || ord(x) < 0 || ord(x) > top) continue
                fr += u * cr; fp += u * cp
            }
            return fr + 1e-9 >= r + h * u * cr && fp + 1e-9 >= p + h * u * cp
        }
        NF >= 6 {
            st[$1] = $2; rooms[$1] = $3; parts[$1] = $4; n++
            if ($2 == "ready" || $2 == "draining") {
                if (!cr || $5 < cr) cr = $5
                if (!cp || $6 < cp) cp = $6
            }
            RA += $3; PA += $4
            if ($2 == "ready") { nr++; R += $3; P += $4 }
        }
        END {
            if (!n) exit 1
            if (!cr) cr = 20
            if (!cp) cp = 80
            k = split(cands, c, " ")
            if (mode == "floor") {
                size = c[1] + 0
                # a draining pod without active rooms is replaced next (or is
                # being replaced): like a pod to be created, not one more
                for (x in st) if (ord(x) >= 0 && st[x] != "ready" && !(st[x] == "draining" && rooms[x] == 0 && parts[x] == 0)) busy[ord(x)] = 1
                want = need(R, P)
                for (f = 0; got < want; f++) if (f >= size || !(f in busy)) got++
                print f
                exit 0
            }
            if (mode == "ahead") {
                # the whole active load (draining pods included) and its rise
                split(growth, g, ",")
                GR = RA + g[1]; GP = PA + g[2]
                top = need(GR, GP) - 1
                for (i = 1; i <= k; i++) {
                    x = c[i]
                    if (st[x] != "ready") continue
                    if (nr - 1 < need(R - rooms[x], P - parts[x]) || !hold_ok(x, top, GR, GP)) break
                    print x
                    st[x] = "draining"; nr--; R -= rooms[x]; P -= parts[x]
                }
                exit 0
            }
            if (mode == "surge") {
                # the first pod to replace is ready and holds no active room
                # (under pack: the empty top ordinals): replaced first, it is
                # the up-to-date place, and no pod is added before it
                x = c[1]
                print (st[x] == "ready" && rooms[x] == 0 && parts[x] == 0) ? "no" : "yes"
                exit 0
            }
            if (mode == "empty") {
                for (i = 1; i <= k; i++) if (st[c[i]] == "draining" && rooms[c[i]] == 0 && parts[c[i]] == 0) { print c[i]; break }
                exit 0
            }
            best = ""
            for (i = 1; i <= k; i++) if (st[c[i]] == "draining" && (best == "" || rooms[c[i]] < rooms[best])) best = c[i]
            if (best == "") for (i = 1; i <= k; i++) if (c[i] in st) { best = c[i]; break }
            if (best == "") best = c[1]
            print best
        }'
}

if [ -n "$plan_mode" ]; then
    case $plan_mode in floor | ahead | head | empty | surge) ;; *) die_usage "bad --plan $plan_mode" ;; esac
    pods_parse | plan "$plan_mode" "${plan_pods[@]}"
    exit
fi

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

# The registry now (pods_parse); empty when the router cannot be read.
pods_table() {
    admin GET /v1/pods 2>/dev/null | pods_parse
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
        # Rooms keep ending while the new pod starts: the floor follows.
        step
    done
    return 1
}

# ---- surge ----------------------------------------------------------------------

floor_kind=""
following=0 # the floor follows the load once the surge pod is up
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

# With an autoscaler, the floor follows the load (plan floor): the surge pod
# stays while the pods being drained leave too little room for new rooms,
# and goes as soon as the router's desired replicas leave room for them;
# never below the original floor. The autoscaler still shrinks the
# StatefulSet during a long rollout as rooms end (never removing a pod that
# holds an active room: those count in desired replicas, which the
# autoscaler follows next to the floor). $1: a pods_table.
follow_floor() {
    [ -n "$floor_kind" ] || return 0
    local d
    d=$(plan floor "$(sts_replicas)" <<<"$1") || return 0
    [[ $d =~ ^[0-9]+$ ]] || return 0
    [ "$d" -ge "$floor_saved" ] || d=$floor_saved
    set_floor "$d" || true
}

# track_load TABLE: the whole active load (every registered pod, draining
# ones included) at every poll over the last --trend-window; sets growth to
# its rise over that window, ROOMS,PARTICIPANTS (the load now minus its
# lowest in the window), or to "" while the rollout has watched the load for
# less than the window (then nothing is drained ahead: a load that is rising
# is not known not to be).
trend=()
track_load() {
    local now cut r p t tr tp first=0 i rmin pmin
    now=${EPOCHREALTIME/[.,]/}
    now=$((now / 1000))
    cut=$((now - trend_s * 1000))
    read -r r p < <(awk '{ r += $3; p += $4 } END { print r + 0, p + 0 }' <<<"$1")
    trend+=("$now $r $p")
    # keep the window and the newest sample older than it
    for ((i = 0; i < ${#trend[@]}; i++)); do
        read -r t _ <<<"${trend[i]}"
        [ "$t" -gt "$cut" ] || first=$i
    done
    trend=("${trend[@]:first}")
    read -r t _ <<<"${trend[0]}"
    if [ "$t" -gt "$cut" ]; then
        growth=""
        return 0
    fi
    rmin=$r
    pmin=$p
    for ((i = 0; i < ${#trend[@]}; i++)); do
        read -r t tr tp <<<"${trend[i]}"
        [ "$tr" -ge "$rmin" ] || rmin=$tr
        [ "$tp" -ge "$pmin" ] || pmin=$tp
    done
    growth="$((r - rmin)),$((p - pmin))"
}

# hold_back NAME TABLE: NAME is ready, holds rooms, and the drain-ahead rule
# would not drain it now (the ready pods below could not take over the whole
# load, its rise and the headroom without it; or the rise is not known yet).
hold_back() {
    local st r p
    read -r st r p < <(awk -v n="$1" '$1 == n { print $2, $3, $4 }' <<<"$2") || return 1
    [ "$st" = ready ] && [ "${r:-0}${p:-0}" != 00 ] || return 1
    [ -n "$growth" ] || return 0
    [ -z "$(plan ahead "$1" <<<"$2" || true)" ]
}

# drain_ahead TABLE CANDIDATE...: marks draining the candidates plan ahead
# allows (still on the old revision), so their rooms end while others drain.
drain_ahead() {
    local table=$1 x
    shift
    [ "$ahead" -eq 1 ] && [ $# -gt 0 ] && [ -n "$growth" ] || return 0
    while read -r x; do
        [ -n "$x" ] || continue
        [ "$(pod_revision "$x")" != "$revision" ] || continue
        if in_router pod-router drain --admin-url "$admin_url" ${token_file:+--token-file "$token_file"} "$x" >/dev/null; then
            log "$x: drained ahead (the ready pods below hold the whole load, its rise $growth over ${trend_s}s and the headroom)"
        fi
    done < <(plan ahead "$@" <<<"$table" || true)
}

# One polling step: the load's trend is recorded; while a pod drains, the
# floor follows the load, and the next old pods are drained ahead when
# capacity allows. $@: the other old pods.
last_table=""
step() {
    local table
    table=$(pods_table)
    last_table=$table
    [ -n "$table" ] || return 0
    track_load "$table"
    [ "$following" -eq 1 ] || return 0
    follow_floor "$table"
    drain_ahead "$table" "$@"
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

# The surge pod: one pod more (at the new revision), before the first pod that
# holds rooms drains, so new rooms have an up-to-date place. Not before
# the empty top pods (pack's headroom): replaced first, the first of them back is
# that place, and a pod added now would take the peak's arrivals that no
# longer fit below u for their lifetime (SPEC 5.1's H + 1) instead of letting
# them go to the pods below (pack's least-loaded fallback) for the few seconds
# of the replacement. With an autoscaler, once a pod runs the new revision,
# the floor adds a pod when the load needs one (follow_floor); without one, the
# surge is made before the first drain of a pod holding rooms.
surged=0
replaced=0
target=""
if [ "$surge" -eq 1 ]; then
    if so_min=$(k get scaledobject "$scaledobject" -o 'jsonpath={.spec.minReplicaCount}' 2>/dev/null) && [ -n "$so_min" ]; then
        floor_kind=scaledobject
        floor_saved=$so_min
    elif hpa_min=$(k get hpa "$hpa" -o 'jsonpath={.spec.minReplicas}' 2>/dev/null) && [ -n "$hpa_min" ]; then
        floor_kind=hpa
        floor_saved=$hpa_min
    fi
    floor_now=$floor_saved
fi

# surge_needed NAME [TABLE]: the surge pod is to be added before NAME drains
# (TABLE: a registry just read, else it is read). With an
# autoscaler, not once a pod runs the new revision: one the rollout replaced,
# or one the autoscaler added since the rollout began (ordinal >= the size
# then; a StatefulSet creates new pods at its update revision).
surge_needed() {
    local table
    [ "$surge" -eq 1 ] && [ "$surged" -eq 0 ] || return 1
    if [ -n "$floor_kind" ] && [ "$replaced" -gt 0 ]; then return 1; fi
    table=${2-}
    [ -n "$table" ] || table=$(pods_table)
    [ -n "$table" ] || return 0
    if [ -n "$floor_kind" ] && awk -v n="$replicas" -v pre="$statefulset-" '$2 == "ready" && index($1, pre) == 1 && match($1, /-[0-9]+$/) && substr($1, RSTART + 1) + 0 >= n { f = 1 } END { exit !f }' <<<"$table"; then
        log "$1: a pod at the new revision is ready already (added by the autoscaler): no surge pod"
        return 1
    fi
    if [ "$(plan surge "$1" <<<"$table" || true)" = no ]; then
        log "$1: ready without active rooms; replaced before any pod is added (no surge pod yet)"
        return 1
    fi
}

do_surge() {
    target=$(($(sts_replicas) + 1))
    [ -z "$floor_saved" ] || [ "$target" -ge "$floor_saved" ] || target=$floor_saved
    following=0
    set_floor "$target"
    if [ "$(sts_replicas)" -lt "$target" ]; then
        k scale statefulset "$statefulset" --replicas="$target" >/dev/null
        log "surge: statefulset/$statefulset scaled to $target"
    fi
    wait_new "$statefulset-$((target - 1))" || {
        echo "rollout-backend: surge pod $statefulset-$((target - 1)) not Ready and registered in time" >&2
        exit 1
    }
    surged=1
    following=1
}
following=1

# ---- replace: highest ordinal first, drained ahead where capacity allows -------------

# The old pods still to replace, in rollout order (highest ordinal first). A
# pod that a scale-down removed meanwhile (it held no active room) is not
# among them: the StatefulSet creates it at the new revision if it comes back.
pending() {
    local i n
    n=$(sts_replicas)
    for i in "${old[@]}"; do
        [ "$i" -lt "$n" ] || continue
        [ "$(pod_revision "$statefulset-$i")" != "$revision" ] || continue
        echo "$statefulset-$i"
    done
}

next=""
peak_used_ms=0
first=1
while :; do
    # The first time, the old pods just listed (an empty top pod is drained
    # without a second round of kubectl calls: the peak's arrivals do not wait).
    if [ "$first" -eq 1 ]; then
        rest=()
        for i in "${old[@]}"; do rest+=("$statefulset-$i"); done
        first=0
    else
        mapfile -t rest < <(pending)
    fi
    [ "${#rest[@]}" -gt 0 ] || break
    table=""
    left=$(remaining)
    if [ "$left" -le 0 ]; then
        echo "rollout-backend: --timeout $timeout reached before ${rest[0]}" >&2
        exit 1
    fi
    name=""
    # A pod drained ahead that was found empty is the next one (plan head
    # could pick another empty one and stop its wait again).
    if [ -n "$next" ]; then
        for x in "${rest[@]}"; do [ "$x" != "$next" ] || name=$next; done
        next=""
    fi
    if [ -z "$name" ]; then
        table=$(pods_table)
        name=$(plan head "${rest[@]}" <<<"$table") || name=${rest[0]}
        [ -n "$name" ] || name=${rest[0]}
    fi
    # Peak wait: a pod whose rooms the ready pods below could not take over
    # (its drain would push new rooms onto a pod the load does not need,
    # where they keep it for their lifetime) is drained once the load has
    # fallen enough, by the drain-ahead rule, or when --peak-wait (in all)
    # is used up. Meanwhile the floor follows the load as usual.
    if [ "$ahead" -eq 1 ] && [ "$peak_s" -gt 0 ]; then
        held=0
        t0=${EPOCHREALTIME/[.,]/}
        base_ms=$peak_used_ms
        while [ "$peak_used_ms" -lt $((peak_s * 1000)) ] && [ "$(remaining)" -gt 0 ]; do
            # the registry read for plan head above, if there was one, is fresh
            if [ -z "$table" ] || [ "$held" -eq 1 ]; then table=$(pods_table); fi
            if [ -z "$table" ] || ! hold_back "$name" "$table"; then break; fi
            [ "$held" -eq 1 ] || log "$name: holds rooms the pods below could not take over at this load; waiting for it to fall (up to $(((peak_s * 1000 - peak_used_ms) / 1000))s more)"
            held=1
            sleep "$poll"
            step "${rest[@]}"
            t1=${EPOCHREALTIME/[.,]/}
            peak_used_ms=$((base_ms + (t1 - t0) / 1000))
        done
        if [ "$held" -eq 1 ]; then
            log "$name: waited; $((peak_used_ms / 1000))s of --peak-wait used"
            left=$(remaining)
            if [ "$left" -le 0 ]; then
                echo "rollout-backend: --timeout $timeout reached before $name (waiting for the load to fall)" >&2
                exit 1
            fi
        fi
    fi
    if surge_needed "$name" "$table"; then
        do_surge
        left=$(remaining)
    fi
    others=()
    for x in "${rest[@]}"; do [ "$x" = "$name" ] || others+=("$x"); done
    t=$drain_s
    [ "$t" -le "$left" ] || t=$left
    log "$name: drain --wait-empty (up to ${t}s)"
    in_router pod-router drain --wait-empty --timeout "${t}s" --poll-interval "${poll_ms}ms" --admin-url "$admin_url" \
        ${token_file:+--token-file "$token_file"} "$name" &
    drain_pid=$!
    # While the drain waits for rooms to end, the floor follows the load and
    # the next old pods are drained ahead when the others can take the rooms.
    # A pod drained ahead that is empty already is replaced first: the wait
    # for this one stops (it stays draining) and resumes after.
    switched=""
    while kill -0 "$drain_pid" 2>/dev/null; do
        sleep "$poll"
        last_table=""
        step "${others[@]}"
        if [ "${#others[@]}" -eq 0 ] || [ -z "$last_table" ]; then continue; fi
        # This one empty too: its drain returns at once; switching would only
        # stop it (and two empty pods would take turns stopping each other).
        if [ -n "$(plan empty "$name" <<<"$last_table" || true)" ]; then continue; fi
        switched=$(plan empty "${others[@]}" <<<"$last_table" || true)
        if [ -n "$switched" ]; then
            # the kubectl exec under the background job, then the job
            pkill -P "$drain_pid" 2>/dev/null || true
            kill "$drain_pid" 2>/dev/null || true
            wait "$drain_pid" 2>/dev/null || true
            log "$switched: drained ahead and empty; replaced before $name"
            break
        fi
    done
    if [ -n "$switched" ]; then
        next=$switched
        continue
    fi
    drc=0
    wait "$drain_pid" || drc=$?
    if [ "$drc" -eq 4 ]; then
        # Not registered (its sidecar stopped heartbeating: --health-url
        # failing, or the pod restarting). Its connections may still run
        # through the router, so it is not deleted; the others go first and
        # it is tried again, within --timeout.
        log "$name: not registered with the router; trying again later"
        sleep "$poll"
        continue
    fi
    if [ "$drc" -ne 0 ]; then
        if [ "$drc" -eq 3 ]; then
            echo "rollout-backend: $name still holds active rooms after ${t}s; left running (draining)" >&2
        else
            echo "rollout-backend: drain of $name failed (exit $drc); left running" >&2
        fi
        exit 1
    fi
    # Settle: still empty after --settle? A room placed just before the drain
    # adds load only from its second request, and the other router replicas
    # see activity up to one 1-s tick later than this one.
    if [ "$settle_s" -gt 0 ]; then
        sleep "$settle_s"
        table=$(pods_table)
        if [ -z "$table" ] || [ -n "$(awk -v n="$name" '$1 == n && ($3 > 0 || $4 > 0)' <<<"$table")" ]; then
            log "$name: not empty after ${settle_s}s (or the router did not answer); waiting again"
            continue
        fi
    fi
    if [ "${name##*-}" -ge "$(sts_replicas)" ]; then
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
    else
        replaced=$((replaced + 1))
    fi
done

log "all pods of statefulset/$statefulset run revision $revision"

# ---- end of the surge -------------------------------------------------------------

if [ "$surge" -eq 1 ]; then
    if [ -n "$floor_kind" ]; then
        restore_floor
        log "the autoscaler removes any extra pod once it holds no active room"
    elif [ "$surged" -eq 1 ]; then
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
