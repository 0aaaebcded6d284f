#!/usr/bin/env bash
# slurm-down.sh stops the single-machine Slurm that slurm-up.sh started:
# every slurmd (one a node), then slurmctld, then munged (unless
# --keep-munge). Each daemon is found by its pid files and by pidof on the
# exact daemon name, asked to stop with SIGTERM and killed after a grace
# period. Safe to run when nothing is running. Job state survives in
# StateSaveLocation, so a later slurm-up.sh picks up where the cluster left
# off; the processes of running jobs (slurmstepd) are left alone and report
# back to the new daemons.
#
# Usage: scripts/slurm-down.sh [--keep-munge]
set -euo pipefail

keep_munge=0
for arg in "$@"; do
	case "$arg" in
	--keep-munge) keep_munge=1 ;;
	-h | --help)
		sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "slurm-down: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "slurm-down: must run as root" >&2
	exit 1
fi

# daemon_pids NAME PIDFILE... prints the pids of the running daemons NAME:
# those the pid files name and those pidof finds.
daemon_pids() {
	local name=$1 pidfile pid
	shift
	{
		for pidfile in "$@"; do
			[ -s "$pidfile" ] || continue
			pid=$(tr -dc '0-9' <"$pidfile")
			if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
				grep -qx "$name" "/proc/$pid/comm" 2>/dev/null; then
				echo "$pid"
			fi
		done
		pidof -x "$name" 2>/dev/null | tr ' ' '\n' || true
	} | grep . | sort -un || true
}

# stop_daemon NAME PIDFILE... stops every running NAME, SIGKILL after 15 s.
stop_daemon() {
	local name=$1 pids pid i
	shift
	pids=$(daemon_pids "$name" "$@")
	if [ -z "$pids" ]; then
		rm -f "$@"
		return 0
	fi
	for pid in $pids; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for ((i = 0; i < 150; i++)); do
		local alive=0
		for pid in $pids; do
			if kill -0 "$pid" 2>/dev/null; then
				alive=1
			fi
		done
		[ "$alive" -eq 0 ] && break
		sleep 0.1
	done
	for pid in $pids; do
		if kill -0 "$pid" 2>/dev/null; then
			echo "slurm-down: $name ($pid) ignored SIGTERM for 15 s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	rm -f "$@"
	echo "slurm-down: stopped $name ($(echo "$pids" | tr '\n' ' ' | sed 's/ $//'))"
}

# /run/slurmd-NODE.pid for each node; /run/slurmd.pid from older versions
# of slurm-up.sh.
stop_daemon slurmd /run/slurmd-*.pid /run/slurmd.pid
stop_daemon slurmctld /run/slurmctld.pid
if [ "$keep_munge" -eq 0 ]; then
	stop_daemon munged /run/munge/munged.pid
fi
