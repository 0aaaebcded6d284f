#!/usr/bin/env bash
# slurm-up.sh installs and starts a real single-machine Slurm for agora's
# integration tests (see "Testing without the outside world" in the
# design notes): Debian's slurm-wlm and munge, one node named after
# `hostname -s` with its real CPUs and memory in the default partition,
# no accounting (use squeue -t all / scontrol show job, not sacct).
#
# A second node on the same machine, agora-fault (a slurmd of its own,
# `slurmd -N agora-fault`, on port 6819), is the only node of the partition
# "faults": tests that set a node DOWN or DRAIN do it to that node, with
# their jobs in that partition (slurmtest.Faults), so that no other test's
# jobs are on it. Nothing else is ever scheduled there.
#
# It is idempotent: packages are installed only when missing, the munge key
# is created only when missing, and running daemons are left alone when the
# configuration did not change (set SLURM_UP_RESTART=1 to force a restart).
# A node left DOWN or DRAINED by a test is resumed. It waits until sinfo
# reports the node usable and prints a one-line summary; on failure it
# prints the tail of the daemons' logs and exits non-zero.
#
# Must run as root. Environment:
#   SLURM_UP_PARTITION      the default partition's name (default: debug;
#                           not "faults")
#   SLURM_UP_MIN_JOB_AGE    seconds a finished job stays visible (default: 300)
#   SLURM_UP_TIMEOUT        seconds to wait for the node (default: 60)
#   SLURM_UP_CRED_EXPIRE    seconds a requeued job waits before it may start
#                           again (Slurm: 120; here 15: short for requeue tests,
#                           well above the launch delay of a busy node)
#   SLURM_UP_JOBS_PER_CORE  jobs that may share one core (default: 8)
#   SLURM_UP_RESTART=1      restart the Slurm daemons even if nothing changed
#   SLURM_CONF              where slurm.conf goes (default: Debian's path)
#
# Timing on a 2-core Debian 12 VM: about 11 s from nothing (apt-get update
# and install ~10 s, daemons up in ~1 s); 0 s when already up; ~4 s for a
# restart after a configuration change. scripts/slurm-down.sh stops it.
set -euo pipefail

for n in "${SLURM_UP_MIN_JOB_AGE:-300}" "${SLURM_UP_TIMEOUT:-60}" "${SLURM_UP_CRED_EXPIRE:-15}" "${SLURM_UP_JOBS_PER_CORE:-8}"; do
	case "$n" in
	'' | *[!0-9]*)
		echo "slurm-up: error: SLURM_UP_* settings must be whole numbers, got '$n'" >&2
		exit 2
		;;
	esac
done
if [[ ! "${SLURM_UP_PARTITION:-debug}" =~ ^[A-Za-z0-9_.-]+$ ]] || [ "${SLURM_UP_PARTITION:-debug}" = faults ]; then
	echo "slurm-up: error: SLURM_UP_PARTITION '${SLURM_UP_PARTITION}' is not a plain name other than 'faults'" >&2
	exit 2
fi

start_s=$(date +%s)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
partition=${SLURM_UP_PARTITION:-debug}
min_job_age=${SLURM_UP_MIN_JOB_AGE:-300}
cred_expire=${SLURM_UP_CRED_EXPIRE:-15}
jobs_per_core=${SLURM_UP_JOBS_PER_CORE:-8}
timeout_s=${SLURM_UP_TIMEOUT:-60}
restart=${SLURM_UP_RESTART:-0}
log_dir=/var/log/slurm
spool_ctld=/var/spool/slurmctld
spool_d=/var/spool/slurmd
# The node for fault-injection tests and its partition; slurmtest knows
# both names.
fault_node=agora-fault
fault_partition=faults

say() { echo "slurm-up: $*"; }
die() {
	echo "slurm-up: error: $*" >&2
	exit 1
}

if [ "$(id -u)" -ne 0 ]; then
	die "must run as root (it installs packages and starts system daemons)"
fi

# diagnostics prints what helps to see why Slurm did not come up.
diagnostics() {
	local f
	echo "---- slurm-up diagnostics ----" >&2
	for f in "$log_dir/slurmctld.log" "$log_dir/slurmd-${host:-}.log" "$log_dir/slurmd-$fault_node.log" /var/log/munge/munged.log; do
		if [ -f "$f" ]; then
			echo "---- tail $f ----" >&2
			tail -n 30 "$f" >&2 || true
		else
			echo "---- $f: missing ----" >&2
		fi
	done
	if command -v sinfo >/dev/null 2>&1; then
		echo "---- sinfo -N -l ----" >&2
		timeout 10 sinfo -N -l >&2 2>&1 || true
		echo "---- scontrol show node ----" >&2
		timeout 10 scontrol show node >&2 2>&1 || true
	fi
	if [ -n "${conf:-}" ] && [ -f "$conf" ]; then
		echo "---- $conf ----" >&2
		cat "$conf" >&2
	fi
}

# 1. Packages.
missing=()
for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge; do
	if ! command -v "${pair%%:*}" >/dev/null 2>&1 && [ ! -x "/usr/sbin/${pair%%:*}" ]; then
		missing+=("${pair#*:}")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	say "installing slurm-wlm and munge (missing: ${missing[*]})"
	install_start=$(date +%s)
	export DEBIAN_FRONTEND=noninteractive
	apt_log=$(mktemp)
	# policy-rc.d (present in containers) keeps the packages from starting
	# their services; this script starts them itself either way.
	apt=(apt-get -o DPkg::Lock::Timeout=120)
	if ! { "${apt[@]}" update -qq &&
		"${apt[@]}" install -y -qq --no-install-recommends slurm-wlm munge; } >"$apt_log" 2>&1; then
		tail -n 40 "$apt_log" >&2
		die "apt-get could not install slurm-wlm and munge (log: $apt_log)"
	fi
	rm -f "$apt_log"
	say "installed in $(($(date +%s) - install_start)) s"
fi
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

# 2. Configuration. Debian 11+ reads /etc/slurm, older releases /etc/slurm-llnl.
if [ -n "${SLURM_CONF:-}" ]; then
	conf=$SLURM_CONF
elif [ -d /etc/slurm-llnl ] && [ ! -d /etc/slurm ]; then
	conf=/etc/slurm-llnl/slurm.conf
else
	conf=/etc/slurm/slurm.conf
fi
mkdir -p "$(dirname "$conf")" "$log_dir" "$spool_ctld" "$spool_d"

host=$(hostname -s)
# slurmd -C prints the node's real hardware, e.g.
# "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=23996".
node_hw=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=' | sed 's/^NodeName=[^ ]* *//' || true)
if [ -z "$node_hw" ]; then
	cpus=$(nproc)
	mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
	node_hw="CPUs=$cpus RealMemory=$mem_mb"
fi

new_conf=$(
	cat <<EOF
# Written by agora's scripts/slurm-up.sh; rewritten on every run.
ClusterName=agora
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Requeued jobs wait cred_expire seconds before they may start again
# (default 120); short so that requeue tests finish quickly.
AuthInfo=cred_expire=${cred_expire}
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# Start batch jobs at once rather than batching them up for 3 s, and look at
# the queue every 2 s (default 60) so requeued jobs start again soon.
SchedulerParameters=batch_sched_delay=0,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=$min_job_age
SlurmctldPidFile=/run/slurmctld.pid
# One slurmd a node on this one machine (Debian builds Slurm with
# multiple-slurmd support): %n is the node's name.
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd-%n.log
StateSaveLocation=$spool_ctld
SlurmdSpoolDir=$spool_d/%n
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$host NodeHostname=$host NodeAddr=127.0.0.1 Port=6818 $node_hw State=UNKNOWN
# The node that tests may set DOWN or DRAIN: same machine, its own slurmd.
NodeName=$fault_node NodeHostname=$host NodeAddr=127.0.0.1 Port=6819 $node_hw State=UNKNOWN
# OverSubscribe=FORCE:N lets N jobs share a core: test jobs are tiny stand-ins,
# and a 2-core CI machine would otherwise run only two at a time.
PartitionName=$partition Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$jobs_per_core
PartitionName=$fault_partition Nodes=$fault_node Default=NO MaxTime=INFINITE State=UP OverSubscribe=FORCE:$jobs_per_core
EOF
)
conf_changed=0
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$new_conf" ]; then
	printf '%s\n' "$new_conf" >"$conf.tmp"
	chmod 0644 "$conf.tmp"
	mv "$conf.tmp" "$conf"
	conf_changed=1
	say "wrote $conf"
fi

# 3. Munge.
munge_key=/etc/munge/munge.key
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s "$munge_key" ]; then
	if command -v mungekey >/dev/null 2>&1; then
		mungekey --create --keyfile="$munge_key" --force
	else
		dd if=/dev/urandom of="$munge_key" bs=1024 count=1 status=none
	fi
	say "created $munge_key"
fi
chown munge:munge /etc/munge "$munge_key" /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 "$munge_key"
chmod 0755 /run/munge

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
	# A munged that does not answer is stale: stop it before starting anew.
	"$here/slurm-down.sh" >/dev/null
	rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
	runuser -u munge -- munged ||
		{
			diagnostics
			die "munged did not start"
		}
	for ((i = 0; i < 50; i++)); do
		munge_ok && break
		sleep 0.1
	done
	munge_ok || {
		diagnostics
		die "munged started but munge -n | unmunge fails"
	}
	say "started munged"
	restart=1 # slurm daemons must talk to the new munged
fi

# 4. Slurm daemons: slurmctld, and one slurmd for each node.
nodes=("$host" "$fault_node")
running() { pidof -x "$1" >/dev/null 2>&1; }
# slurmd_running NODE: NODE's slurmd runs (its pid file names a live slurmd).
slurmd_running() {
	local pid
	pid=$(tr -dc '0-9' 2>/dev/null <"/run/slurmd-$1.pid" || true)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qx slurmd "/proc/$pid/comm" 2>/dev/null
}
# start_slurmd NODE starts NODE's slurmd.
start_slurmd() {
	mkdir -p "$spool_d/$1"
	slurmd -N "$1" || {
		diagnostics
		die "slurmd -N $1 did not start"
	}
}
if [ "$restart" = 1 ] || [ "$conf_changed" = 1 ] || ! running slurmctld; then
	if running slurmctld || running slurmd; then
		say "restarting slurmctld and slurmd"
	fi
	"$here/slurm-down.sh" --keep-munge >/dev/null
	# -i: start even if the saved state (from an older config) has errors.
	slurmctld -i || {
		diagnostics
		die "slurmctld did not start"
	}
	ctld_up=0
	for ((i = 0; i < 100; i++)); do
		if scontrol ping 2>/dev/null | grep -q 'is UP'; then
			ctld_up=1
			break
		fi
		sleep 0.2
	done
	if [ "$ctld_up" -ne 1 ]; then
		diagnostics
		die "slurmctld does not answer scontrol ping"
	fi
	for node in "${nodes[@]}"; do
		start_slurmd "$node"
	done
else
	# The controller is up with this configuration: start only the slurmd
	# of a node whose slurmd is gone.
	for node in "${nodes[@]}"; do
		if ! slurmd_running "$node"; then
			say "starting the slurmd of node $node"
			start_slurmd "$node"
		fi
	done
fi

# 5. Wait for the nodes. A node a test left DOWN or DRAINED is resumed.
deadline=$(($(date +%s) + timeout_s))
for node in "${nodes[@]}"; do
	state=""
	resumed=0
	while :; do
		state=$(sinfo -h -N -n "$node" -o '%T' 2>/dev/null | head -n1 || true)
		case "$state" in
		idle | mixed | allocated | completing)
			break
			;;
		down* | drain* | fail*)
			# "down*" (not responding) right after a start resolves by itself;
			# a plain DOWN/DRAIN set by an admin or a test needs a resume.
			if [ "$resumed" -eq 0 ] && [ "${state%\*}" = "$state" ]; then
				scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
				resumed=1
			fi
			;;
		esac
		if [ "$(date +%s)" -ge "$deadline" ]; then
			diagnostics
			die "node $node is '${state:-not listed}' after ${timeout_s} s, want idle"
		fi
		sleep 0.5
	done
done
state=$(sinfo -h -N -n "$host" -o '%T' 2>/dev/null | head -n1 || true)

version=$(sinfo -V 2>/dev/null | awk '{print $2}')
node_line=$(scontrol show node "$host" -o 2>/dev/null)
cpus=$(sed -n 's/.*CPUTot=\([0-9]*\).*/\1/p' <<<"$node_line")
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
say "slurm ${version:-?} up in $(($(date +%s) - start_s)) s: node $host ($state, ${cpus:-?} CPUs, ${mem:-?} MB), partition $partition (default); node $fault_node, partition $fault_partition (fault tests only); conf $conf, logs $log_dir"
