# Sourced by scripts/bench for `scripts/bench vs-nchan`: tally and Nchan side
# by side, at the same load, driven by the same tally-bench, in one run.
#
# For each of WebSocket, SSE and long polling, on a fresh stack each time:
# two tally instances on one Redis, then two Nchan instances (Debian's nginx
# + libnginx-mod-nchan) on the same Redis. Followers are on instance B,
# votes (publishes) go to instance A, so every update crosses Redis; CPU and
# RSS are those of B's processes (for nginx: the master and its workers).
#
# Knobs (environment): VS_FOLLOWERS (2000), VS_RATE (20 votes/s),
# VS_DURATION (15s), NCHAN_WORKERS (one per core, as tally's runtime),
# BENCH_NCHAN_PORT (BENCH_BASE_PORT + 50; A uses it, B the next one). Where perf
# can count system calls, each run also prints B's system calls per delivery.
# Uses start_instances, stop_instances, $bin, $work, $redis_port and pids
# from scripts/bench.

vs_followers=${VS_FOLLOWERS:-2000}
vs_rate=${VS_RATE:-20}
vs_duration=${VS_DURATION:-15s}
nchan_workers=${NCHAN_WORKERS:-$(nproc)}
nchan_port=${BENCH_NCHAN_PORT:-$((base_port + 50))}
nchan_module=/usr/lib/nginx/modules/ngx_nchan_module.so
# System calls counted (perf's tracepoints) for instance B during each run,
# when perf can read them: what each side does per delivery.
vs_syscalls=""
if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
  for c in write writev sendto sendmsg read readv recvfrom recvmsg epoll_wait epoll_pwait \
    epoll_ctl futex accept4 close; do
    vs_syscalls+="${vs_syscalls:+,}syscalls:sys_enter_$c"
  done
fi

command -v nginx >/dev/null && [ -f "$nchan_module" ] || {
  echo "bench: vs-nchan needs nginx and Nchan (apt-get install nginx libnginx-mod-nchan)" >&2
  exit 1
}

# start_nchan: two nginx instances on nchan_port and nchan_port+1; sets
# nchan_urls (A, B) and nchan_b_pids (B's master and workers).
start_nchan() {
  nchan_urls=(); nchan_masters=()
  for i in 0 1; do
    local dir="$work/nchan-$i" port=$((nchan_port + i))
    mkdir -p "$dir"
    sed -e "s|@PORT@|$port|g" -e "s|@REDIS_PORT@|$redis_port|g" -e "s|@DIR@|$dir|g" \
      -e "s|@WORKERS@|$nchan_workers|g" scripts/nchan/nginx.conf.in >"$dir/nginx.conf"
    nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
    pids+=($!); nchan_masters+=($!)
    nchan_urls+=("http://127.0.0.1:$port")
  done
  for i in 0 1; do
    for _ in $(seq 200); do
      curl -fs "http://127.0.0.1:$((nchan_port + i))/ready" >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
  nchan_b_pids=("${nchan_masters[1]}" $(pgrep -P "${nchan_masters[1]}"))
}

stop_nchan() {
  for p in "${nchan_masters[@]}"; do kill -QUIT "$p" 2>/dev/null || true; done
  for p in "${nchan_masters[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  done
  redis-cli -p "$redis_port" flushall >/dev/null
}

# vs_run NAME FOLLOW_URL VOTE_URL PIDS… -- ARGS…: one tally-bench run, its
# JSON report kept as $work/NAME.json (its table printed too).
vs_run() {
  local name=$1 follow=$2 vote=$3; shift 3
  local pid_args=() pid_list=""
  while [ "$1" != -- ]; do pid_args+=(--server-pid "$1"); pid_list+="${pid_list:+,}$1"; shift; done
  shift
  echo "\$ tally-bench --url $follow --vote-url $vote $*   # $name"
  local rc=0 perf_pid=""
  if [ -n "$vs_syscalls" ]; then
    perf stat -x, -o "$work/$name.syscalls" -e "$vs_syscalls" -p "$pid_list" 2>/dev/null &
    perf_pid=$!
  fi
  "$bin/tally-bench" --url "$follow" --vote-url "$vote" "${pid_args[@]}" --json "$@" \
    >"$work/$name.json" || rc=$?
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    # Per delivery, over the whole run (connecting and idle phases add little).
    local deliveries=$(jq '[.transports[].deliveries] | add' "$work/$name.json")
    awk -F, -v d="$deliveries" '$3 ~ /^syscalls:/ && $1 ~ /^[0-9]+$/ && $1 > 0 {
        sub("syscalls:sys_enter_", "", $3); printf "%s %.2f  ", $3, $1 / d; total += $1 }
      END { printf "(all of these: %.2f per delivery)\n", total / d }' "$work/$name.syscalls" |
      sed 's/^/  system calls per delivery: /'
  fi
  jq -r '"  p50 \(.transports[].delivery_latency.p50_ms) ms, p99 \(.transports[].delivery_latency.p99_ms) ms, "
    + "\(.transports[].deliveries) deliveries, \(.server.cpu_ms_per_1000_deliveries | . * 10 | round / 10) CPU µs/delivery "
    + "(\(.server.kernel_share_while_voting * 100 | round) % kernel), "
    + "\(.server.rss_kib_per_follower | . * 10 | round / 10) KiB/follower, votes \(.votes.accepted), converged \(.converged)"' \
    "$work/$name.json"
  [ "$rc" = 0 ] || echo "  bench: $name did NOT converge (exit $rc)"
}

echo "## tally vs Nchan: $vs_followers followers on B, $vs_rate votes/s to A for $vs_duration"
echo "(nginx $(nginx -v 2>&1 | sed 's|.*/||'), Nchan $(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null), $nchan_workers workers)"
for t in ws sse longpoll; do
  load=(--"$t" "$vs_followers" --rate "$vs_rate" --duration "$vs_duration" --voters 4 --hold 2s --settle 60s)
  start_instances 2
  vs_run "tally-$t" "http://127.0.0.1:$((base_port + 1))" "http://127.0.0.1:$base_port" \
    "${server_pids[1]}" -- "${load[@]}"
  stop_instances
  start_nchan
  vs_run "nchan-$t" "${nchan_urls[1]}" "${nchan_urls[0]}" "${nchan_b_pids[@]}" -- --nchan "${load[@]}"
  stop_nchan
done

# vs_table HEADER ALIGN ROW: a Markdown table with a row per transport; ROW is
# a jq expression over $n and $s (Nchan's and tally's reports), $t and $name.
vs_table() {
  echo "$1"
  echo "$2"
  for t in ws sse longpoll; do
    jq -rn --slurpfile n "$work/nchan-$t.json" --slurpfile s "$work/tally-$t.json" --arg t "$t" '
      def r1: . * 10 | round / 10;
      def r2: . * 100 | round / 100;
      ($n[0]) as $n | ($s[0]) as $s
      | {ws: "WebSocket", sse: "SSE", longpoll: "long polling"}[$t] as $name
      | '"$3"
  done
}

echo
vs_table "| transport | Nchan p50 | tally p50 | Nchan p99 | tally p99 | tally/Nchan p99 | Nchan CPU µs/delivery | tally CPU µs/delivery | tally/Nchan CPU | Nchan KiB/idle follower | tally KiB | tally/Nchan KiB | converged |" \
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |" '
    ($n.transports[$t].delivery_latency) as $nl | ($s.transports[$t].delivery_latency) as $sl
    | ($n.server.cpu_ms_per_1000_deliveries) as $nc | ($s.server.cpu_ms_per_1000_deliveries) as $sc
    | ($n.server.rss_kib_per_follower) as $nk | ($s.server.rss_kib_per_follower) as $sk
    | "| \($name) | \($nl.p50_ms | r1) ms | \($sl.p50_ms | r1) ms | \($nl.p99_ms | r1) ms | \($sl.p99_ms | r1) ms | \($sl.p99_ms / $nl.p99_ms | r2) "
      + "| \($nc | r1) | \($sc | r1) | \($sc / $nc | r2) | \($nk | r1) | \($sk | r1) | \($sk / $nk | r2) "
      + "| Nchan \($n.converged), tally \($s.converged) |"'
echo
echo "Targets: tally/Nchan CPU ≤ 0.7, tally/Nchan p99 ≤ 1, tally/Nchan KiB ≤ 1."
echo
# Where the CPU per delivery goes: the kernel's part (system time; on loopback
# it includes the receiver's TCP) is the same send path for both, so the CPU
# target leaves tally's user space 0.7 × Nchan's total less tally's kernel part.
vs_table "| transport | Nchan kernel share | Nchan kernel µs/delivery | tally kernel share | tally kernel µs/delivery | tally user µs/delivery | 0.7 × Nchan − tally kernel (µs of user space the CPU target allows) |" \
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |" '
    ($n.server.cpu_ms_per_1000_deliveries) as $nc | ($s.server.cpu_ms_per_1000_deliveries) as $sc
    | ($n.server.kernel_share_while_voting) as $nks | ($s.server.kernel_share_while_voting) as $sks
    | "| \($name) | \($nks * 100 | round) % | \($nc * $nks | r1) | \($sks * 100 | round) % "
      + "| \($sc * $sks | r1) | \($sc * (1 - $sks) | r1) | \(0.7 * $nc - $sc * $sks | r1) |"'
