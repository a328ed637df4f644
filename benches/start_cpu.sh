#!/bin/bash
# Usage: benches/start_cpu.sh CLINIT [DAEMON ARGS...]; prints cpu_ms (utime+stime), wall_s and VmRSS.
# Daemon CPU (utime+stime, clock ticks of 10 ms) to start 1,000 respawn entries, no status polling.
bin=$1; shift; args="$*"
d=$(mktemp -d "${TMPDIR:-/tmp}/clinit-cpu.XXXX"); cd $d
{ echo ":::socket:$d/s"; echo ":::clstat:$d/clstat"; for i in $(seq 0 999); do echo "big:p$i:1:respawn:exec sleep 300"; done; } > cltab
$bin -d -c cltab $args > /dev/null 2> daemon.log &
pid=$!
for i in $(seq 1 500); do [ -S s ] && break; sleep 0.02; done
sleep 0.3
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
s0=$(date +%s.%N)
$bin -c cltab big 1 > /dev/null 2>&1
for i in $(seq 1 3000); do n=$(cat /proc/$pid/task/*/children 2>/dev/null | wc -w); [ "$n" -ge 1000 ] && break; sleep 0.01; done
s1=$(date +%s.%N)
sleep 0.5
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
rss=$(awk '/^VmRSS/{print $2}' /proc/$pid/status)
echo "$(basename $(dirname $(dirname $(dirname $bin)))) args='$args' children=$n cpu_ms=$(( (t1-t0)*10 )) wall_s=$(echo "$s1 - $s0" | bc) rss_kib=$rss"
$bin -c cltab -k --wait > /dev/null 2>&1
wait $pid 2>/dev/null
cd /; rm -rf $d
