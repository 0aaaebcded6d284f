// Package vllm runs the vLLM servers of a generator with provider vllm: it
// builds the `vllm serve` command line from the spec, starts one server
// per replica as a local process or as a Slurm job (the job script that
// executors/slurm renders, run by executors/local or submitted with
// sbatch), waits for GET /health within a start timeout, checks that
// /v1/models serves the spec's model, and stops the servers again.
//
// A Pool is an http.RoundTripper: the OpenAI-compatible client of
// executors/api sends its requests through it, and it spreads them over
// the live replicas by requests in flight. A replica whose process or job
// ends, or that stops answering, leaves the rotation and the request it
// failed is sent to another; when none is left the pool is down (Done,
// Err).
//
// No server outlives its use: Close stops them (SIGTERM to the local
// process group, scancel for jobs) and KillAll does so on a hard exit.
// Each server's script also watches a heartbeat file the pool touches;
// when agora dies without a word (kill -9, a lost node), the script stops
// its server once the heartbeat is older than ten intervals.
package vllm

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agorabench/agora/spec"
)

// Args is the `vllm serve` command line of one server of model under v,
// without --host and --port: the checkpoint (v.Path, or the model id),
// served under the model's name, with the spec's engine settings and its
// extra arguments last. The server runs in its own directory, so v.Path
// must be absolute (or a Hub id).
//
// --generation-config vllm keeps the checkpoint's generation_config.json
// out of the sampling: with vLLM's default (auto) that file fills every
// sampling field a request leaves out, so the model, not the spec, would
// decide decoding. Requests carry the spec's sampling; what it leaves out
// takes vLLM's own defaults, those of the OpenAI API (temperature 1,
// top_p 1, no top_k, no repetition penalty). --override-generation-config
// in v.ExtraArgs still sets server-wide defaults.
func Args(model string, v spec.VLLM) []string {
	target := v.Path
	if target == "" {
		target = model
	}
	a := []string{"vllm", "serve", target, "--served-model-name", model,
		"--tensor-parallel-size", strconv.Itoa(max(v.TensorParallel, 1)), "--generation-config", "vllm"}
	if v.DType != "" {
		a = append(a, "--dtype", v.DType)
	}
	if v.MaxModelLen > 0 {
		a = append(a, "--max-model-len", strconv.Itoa(v.MaxModelLen))
	}
	if v.GPUMemoryUtilization > 0 {
		a = append(a, "--gpu-memory-utilization", strconv.FormatFloat(v.GPUMemoryUtilization, 'g', -1, 64))
	}
	if v.Seed != nil {
		a = append(a, "--seed", strconv.Itoa(*v.Seed))
	}
	return append(a, v.ExtraArgs...)
}

// script is the body of replica r's job: pick a port (or take
// AGORA_VLLM_PORT), start the server in the background, write "HOST PORT"
// to the endpoint file, and watch both the server and agora's heartbeat.
func (p *Pool) script(r *replica) string {
	local := r.executor == spec.ExecutorLocal
	bind, host := "0.0.0.0", "$(hostname)"
	if local {
		bind, host = "127.0.0.1", "127.0.0.1"
	}
	every := max(1, int(p.cfg.Heartbeat.Seconds()))
	stale := every * heartbeatMisses
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# The vLLM server of %s, replica %d, started by agora.", p.owner(), r.i+1)
	w("endpoint=%s", shellQuote(r.endpoint))
	w("heartbeat=%s", shellQuote(p.heartbeat))
	w(`rm -f "$endpoint"`)
	w(`port=${AGORA_VLLM_PORT:-}`)
	w(`if [ -z "$port" ]; then`)
	w(`	# A random free port on this node: one nothing answers on, below`)
	w(`	# the kernel's ephemeral range, so that no outgoing connection holds it.`)
	w(`	lo=32768`)
	w(`	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true`)
	w(`	base=10000 span=$((lo - 10000))`)
	w(`	if [ "$span" -lt 2000 ]; then base=20000 span=40000; fi`)
	w(`	for try in $(seq 1 200); do`)
	w(`		port=$((base + (RANDOM * 32768 + RANDOM) %% span))`)
	w(`		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break`)
	w(`	done`)
	w(`fi`)
	w(`echo "agora: starting vLLM on port $port"`)
	w(`%s --host %s --port "$port" &`, shellJoin(Args(p.cfg.Model, p.cfg.VLLM)), bind)
	w(`server=$!`)
	writeStop(w, "server")
	w(`trap 'agora_stop; exit 143' TERM INT`)
	w(`printf '%%s %%s\n' %s "$port" >"$endpoint.tmp" && mv "$endpoint.tmp" "$endpoint"`, host)
	w(`# agora touches $heartbeat every %d s; without it for %d s, agora is gone.`, every, stale)
	w(`while kill -0 "$server" 2>/dev/null; do`)
	w(`	sleep 1 & wait $!`)
	w(`	age=$(( $(date +%%s) - $(stat -c %%Y "$heartbeat" 2>/dev/null || echo 0) ))`)
	w(`	if [ "$age" -gt %d ]; then`, stale)
	w(`		echo "agora: no heartbeat from agora for ${age} s: stopping the server" >&2`)
	w(`		agora_stop`)
	w(`		exit "$agora_rc"`)
	w(`	fi`)
	w(`done`)
	w(`wait "$server"`)
	return b.String()
}

// heartbeatMisses is how many heartbeat intervals a server's script waits
// without one before it stops the server.
const heartbeatMisses = 10

// StopGrace is how long a server (or batch run) has to exit after SIGTERM
// before it and every process it started get SIGKILL: from agora for a
// local process group, from the job's own script for both executors. It is
// shorter than Slurm's default KillWait (30 s), so that a server hanging
// on the SIGTERM of scancel cannot outlive its job: with
// proctrack/linuxproc, Slurm's SIGKILL misses a process whose parent has
// died.
const StopGrace = 15 * time.Second

// writeStop writes agora_stop, which stops the process in $pidVar: SIGTERM,
// then, if it is still there after StopGrace, SIGKILL to it and to every
// process under it (taken before the kill, as they are reparented then).
func writeStop(w func(string, ...any), pidVar string) {
	w(`agora_tree() {`)
	w(`	ps -e -o pid= -o ppid= 2>/dev/null | awk -v root="$1" '{p[$1] = $2} END {print root; s[root] = 1; n = 1; while (n) {n = 0; for (c in p) if (!(c in s) && (p[c] in s)) {s[c] = 1; print c; n = 1}}}'`)
	w(`}`)
	w(`agora_stop() {`)
	w(`	trap '' TERM INT`)
	w(`	kill -TERM "$%s" 2>/dev/null`, pidVar)
	w(`	for _ in $(seq 1 %d); do`, int(StopGrace.Seconds()))
	w(`		kill -0 "$%s" 2>/dev/null || break`, pidVar)
	w(`		sleep 1`)
	w(`	done`)
	w(`	if kill -0 "$%s" 2>/dev/null; then`, pidVar)
	w(`		echo "agora: still running %d s after SIGTERM: SIGKILL" >&2`, int(StopGrace.Seconds()))
	w(`		kill -KILL $(agora_tree "$%s") 2>/dev/null`, pidVar)
	w(`	fi`)
	w(`	wait "$%s"`, pidVar)
	w(`	agora_rc=$?`)
	w(`}`)
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// jobName is the Slurm job name of a generator's servers.
func jobName(generator string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, generator)
	return "agora-vllm-" + clean
}

// filesOf are the endpoint file of replica i in dir.
func endpointPath(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("replica-%d.endpoint", i+1))
}
