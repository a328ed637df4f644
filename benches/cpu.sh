#!/bin/bash
# Daemon CPU time, which a loaded machine disturbs far less than wall time:
# the CPU (utime + stime, all threads) to start 1,000 respawn entries
# (`exec sleep 300`, no status polling: children are counted in
# /proc/PID/task/*/children), the CPU (`perf stat -e task-clock`, all
# threads) and wall time to stop them (SIGTERM until the daemon is reaped),
# and VmRSS / anonymous memory at 1,000 children.
#
# Usage: benches/cpu.sh NAME CLINIT [DAEMON ARGS...]
# Prints one line: CPU NAME start_cpu_ms= stop_cpu_ms= stop_wall_ms= rss_kib= anon_kib= load=
# stop_cpu_ms is "n/a" without perf. Interleave builds to compare them, e.g.
#   for r in 1 2 3; do benches/cpu.sh base /tmp/base/clinit; benches/cpu.sh cg target/release/clinit;
#     benches/cpu.sh pg target/release/clinit --no-cgroups; done
set -u
name=${1:?usage: benches/cpu.sh NAME CLINIT [ARGS]}
bin=$(realpath "${2:?usage: benches/cpu.sh NAME CLINIT [ARGS]}")
shift 2
args="$*"
d=$(mktemp -d "${TMPDIR:-/tmp}/clinit-cpu.XXXX")
cd "$d" || exit 1
{
  echo ":::socket:$d/s"
  echo ":::clstat:$d/clstat"
  for i in $(seq 0 999); do echo "big:p$i:1:respawn:exec sleep 300"; done
} > cltab
# shellcheck disable=SC2086
"$bin" -d -c cltab $args > /dev/null 2> daemon.log &
pid=$!
for _ in $(seq 1 500); do [ -S s ] && break; sleep 0.02; done
sleep 0.3
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
"$bin" -c cltab big 1 > /dev/null 2>&1
n=0
for _ in $(seq 1 6000); do
  n=$(cat /proc/$pid/task/*/children 2>/dev/null | wc -w)
  [ "$n" -ge 1000 ] && break
  sleep 0.01
done
sleep 1
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
rss=$(awk '/^VmRSS/{print $2}' /proc/$pid/status)
anon=$(awk '/^Anonymous/{print $2}' /proc/$pid/smaps_rollup)
ppid=""
if command -v perf > /dev/null; then
  perf stat -e task-clock -p $pid -o "$d/pstat" > /dev/null 2>&1 &
  ppid=$!
  sleep 0.3
fi
s0=$(date +%s.%N)
kill -TERM $pid
wait $pid 2> /dev/null
s1=$(date +%s.%N)
stopcpu=n/a
if [ -n "$ppid" ]; then
  wait $ppid
  stopcpu=$(awk '/task-clock/{print $1}' "$d/pstat")
fi
echo "CPU $name children=$n start_cpu_ms=$(((t1 - t0) * 10)) stop_cpu_ms=$stopcpu" \
  "stop_wall_ms=$(echo "($s1 - $s0) * 1000" | bc) rss_kib=$rss anon_kib=$anon load=$(cut -d' ' -f1 /proc/loadavg)"
cd / && rm -rf "$d"
