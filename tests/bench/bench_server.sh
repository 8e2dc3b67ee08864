#!/usr/bin/env bash
# Server benchmark (`make bench-server`): request throughput and latency of `scored serve`
# with continuous batching on (--max-batch 64) and off (--max-batch 1), at 1, 4, 16 and 64
# concurrent clients, against the engine's offline batched throughput on the same model and
# sampler (no HTTP).  One request = one sample, so requests/s and samples/s compare.
#
#   tests/bench/bench_server.sh [SCORED [LOADGEN [OFFLINE]]]
#
# Environment: BENCH_SECONDS (per load run, default 8), BENCH_CLIENTS (default "1 4 16 64"),
# BENCH_OFFLINE_N (offline samples per batch size, default 128), BENCH_MODEL (default
# emoji-vp, the most expensive bundled model per score evaluation: a 32x32 RGB DDPM++ with
# four levels; fmnist-vp is the 28x28 one, fmnist-gmm the analytic one), BENCH_STEPS (PC
# steps per request, default 25: a network evaluation costs milliseconds, so 25 steps keep a
# request near 0.1-0.3 s; reverse diffusion on a VP SDE with beta_max 20 needs more than 20).
#
# Prints figures; the targets (on >= 3x off and on >= 80% of offline, at 16 clients) are
# reported, not asserted.  Exits non-zero only when the benchmark itself could not run
# cleanly: a server that did not start or did not stop with exit 0 on SIGTERM, a tool that
# failed, or requests answered with errors (the figures are then not trustworthy).
set -u
cd "$(dirname "$0")/../.." || exit 1

SCORED=${1:-./scored}
LOADGEN=${2:-build/bench/loadgen}
OFFLINE=${3:-build/bench/offline}
RUN_SECONDS=${BENCH_SECONDS:-8}
CLIENTS=${BENCH_CLIENTS:-"1 4 16 64"}
OFFLINE_N=${BENCH_OFFLINE_N:-128}
MODEL=${BENCH_MODEL:-emoji-vp}
STEPS=${BENCH_STEPS:-25}
MODEL_FILE=
for f in "models/$MODEL.safetensors" "models/$MODEL.json"; do [ -f "$f" ] && MODEL_FILE=$f; done
[ -n "$MODEL_FILE" ] || { echo "bench_server: no models/$MODEL.safetensors or .json" >&2; exit 1; }
SAMPLER='{"kind":"pc","predictor":"reverse_diffusion","corrector":"none","steps":'"$STEPS"'}'
BODY='{"n":1,"seed":%d,"sampler":'"$SAMPLER"',"format":"json"}'
URL_PATH=/v1/models/$MODEL/samples

for b in "$SCORED" "$LOADGEN" "$OFFLINE"; do
    [ -x "$b" ] || { echo "bench_server: $b is missing (run make bench-server)" >&2; exit 1; }
done

TMP=$(mktemp -d)
SERVER_PID=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PROBLEMS=()
problem() { PROBLEMS+=("$*"); echo "bench_server: PROBLEM: $*" >&2; }

# GET on the server with bash's /dev/tcp (no curl needed); prints the raw response.
http_get() { # port path
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
        timeout 10 cat <&3
    ) 2>/dev/null
}

# The value of key=value in a line.
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1" | head -n 1; }

# A metric's value from /metrics text (unlabelled series).
metric() { awk -v k="$2" '$1 == k { print $2; exit }' <<<"$1"; }

# start_server MAX_BATCH: sets SERVER_PID, PORT; returns non-zero on failure.
start_server() {
    local log=$TMP/server-$1.log
    "$SCORED" serve --models models --port 0 --max-batch "$1" 2>"$log" &
    SERVER_PID=$!
    PORT=
    local i
    for ((i = 0; i < 300; i++)); do
        PORT=$(sed -n 's|.*serving .* on http://[^:]*:\([0-9][0-9]*\)/.*|\1|p' "$log" | head -n 1)
        [ -n "$PORT" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$PORT" ]; then
        problem "server --max-batch $1 did not start: $(tr '\n' ' ' <"$log")"
        return 1
    fi
    for ((i = 0; i < 300; i++)); do
        if http_get "$PORT" /readyz | head -n 1 | grep -q ' 200'; then return 0; fi
        sleep 0.1
    done
    problem "server --max-batch $1 on port $PORT: /readyz never answered 200"
    return 1
}

stop_server() { # MAX_BATCH
    local log=$TMP/server-$1.log rc i
    kill -TERM "$SERVER_PID"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        problem "server --max-batch $1 still running 30 s after SIGTERM; killed"
        kill -KILL "$SERVER_PID"
    fi
    wait "$SERVER_PID"
    rc=$?
    SERVER_PID=
    [ "$rc" -eq 0 ] || problem "server --max-batch $1 exited with status $rc after SIGTERM (expected 0)"
    # anything the server said beyond its start and stop lines
    local other
    other=$(grep -v -e '^scored: serving ' -e '^scored: SIGTERM' -e '^scored: stopped' "$log")
    if [ -n "$other" ]; then
        echo "server --max-batch $1 also logged:"
        sed 's/^/    /' <<<"$other" | head -n 20
    fi
    echo "server --max-batch $1: exit status $rc after SIGTERM"
}

declare -A RPS P50 P99 ERR BATCH MAXMS
run_mode() { # MODE (on|off) MAX_BATCH
    local mode=$1 mb=$2 c out err m0 m1 e0 e1 b0 b1
    echo "== batching $mode: scored serve --max-batch $mb"
    start_server "$mb" || return 1
    echo "   port $PORT; ${RUN_SECONDS} s per run"
    for c in $CLIENTS; do
        m0=$(http_get "$PORT" /metrics)
        out=$("$LOADGEN" --host 127.0.0.1 --port "$PORT" --clients "$c" --duration "$RUN_SECONDS" \
            --path "$URL_PATH" --body "$BODY" --expect '"images"' 2>"$TMP/loadgen.err")
        local rc=$?
        err=$(cat "$TMP/loadgen.err")
        m1=$(http_get "$PORT" /metrics)
        if [ $rc -ne 0 ] || [ -z "$out" ]; then
            problem "loadgen (batching $mode, $c clients) failed (status $rc): $err"
            continue
        fi
        e0=$(metric "$m0" scored_score_evaluations_total)
        e1=$(metric "$m1" scored_score_evaluations_total)
        b0=$(metric "$m0" scored_batches_total)
        b1=$(metric "$m1" scored_batches_total)
        BATCH[$mode,$c]=$(awk -v e0="${e0:-0}" -v e1="${e1:-0}" -v b0="${b0:-0}" -v b1="${b1:-0}" \
            'BEGIN { if (b1 > b0) printf "%.1f", (e1 - e0) / (b1 - b0); else printf "?" }')
        RPS[$mode,$c]=$(field "$out" throughput_rps)
        P50[$mode,$c]=$(field "$out" p50_ms)
        P99[$mode,$c]=$(field "$out" p99_ms)
        ERR[$mode,$c]=$(field "$out" errors)
        MAXMS[$mode,$c]=$(field "$err" max_ms)
        echo "   $out  max_ms=${MAXMS[$mode,$c]} mean_batch=${BATCH[$mode,$c]}"
        if [ "${ERR[$mode,$c]:-1}" != 0 ]; then
            problem "batching $mode, $c clients: ${ERR[$mode,$c]} request errors; $(sed -n 's/.*first_error=//p' <<<"$err")"
        fi
    done
    stop_server "$mb"
}

T_START=$(date +%s)
run_mode on 64
run_mode off 1

echo "== offline: $OFFLINE (same model and sampler, no HTTP)"
if ! OFF_OUT=$("$OFFLINE" --model "$MODEL_FILE" --n "$OFFLINE_N" --batch 64 --batch 16 --sampler "$SAMPLER"); then
    problem "offline failed"
fi
sed 's/^/   /' <<<"$OFF_OUT"
OFF64=$(grep 'batch=64 ' <<<"$OFF_OUT" | sed -n 's/.*throughput_sps=\([^ ]*\).*/\1/p')
OFF16=$(grep 'batch=16 ' <<<"$OFF_OUT" | sed -n 's/.*throughput_sps=\([^ ]*\).*/\1/p')

ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

echo
echo "scored serve, $MODEL, pc reverse_diffusion, corrector none, $STEPS steps, n=1 per request"
echo "rps = requests/s (= samples/s); latency in ms; offline batched = ${OFF64:-?} samples/s at batch 64 (${OFF16:-?} at 16)"
echo
printf '%-8s | %-26s | %-26s | %-6s | %-10s\n' clients "on (max-batch 64)" "off (max-batch 1)" on/off on/offline
printf '%-8s | %8s %8s %8s | %8s %8s %8s | %6s | %10s\n' "" rps p50 p99 rps p50 p99 "" ""
printf '%s\n' "---------+----------------------------+----------------------------+--------+-----------"
for c in $CLIENTS; do
    printf '%-8s | %8s %8s %8s | %8s %8s %8s | %6s | %10s\n' "$c" \
        "${RPS[on,$c]:--}" "${P50[on,$c]:--}" "${P99[on,$c]:--}" \
        "${RPS[off,$c]:--}" "${P50[off,$c]:--}" "${P99[off,$c]:--}" \
        "$(ratio "${RPS[on,$c]:-}" "${RPS[off,$c]:-}")" "$(ratio "${RPS[on,$c]:-}" "$OFF64")"
done
echo
echo "mean score queries per batched evaluation (from /metrics): " \
    "$(for c in $CLIENTS; do printf 'on@%s=%s off@%s=%s  ' "$c" "${BATCH[on,$c]:--}" "$c" "${BATCH[off,$c]:--}"; done)"
echo
awk -v a="${RPS[on,16]:-}" -v b="${RPS[off,16]:-}" 'BEGIN {
    if (a != "" && b + 0 > 0) printf "at 16 clients: batching on is %.1fx batching off (target >= 3x)\n", a / b;
    else print "at 16 clients: batching on vs off: not measured (target >= 3x)" }'
awk -v a="${RPS[on,16]:-}" -v b="${OFF64:-}" 'BEGIN {
    if (a != "" && b + 0 > 0) printf "at 16 clients: batching on is %.0f%% of the offline batched throughput (target >= 80%%)\n", 100 * a / b;
    else print "at 16 clients: batching on vs offline: not measured (target >= 80%)" }'
echo "benchmark took $(($(date +%s) - T_START)) s"

if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo
    echo "bench_server: ${#PROBLEMS[@]} problem(s); the figures above may not be trustworthy:"
    printf '  - %s\n' "${PROBLEMS[@]}"
    exit 1
fi
exit 0
