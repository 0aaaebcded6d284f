package vllm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agorabench/agora/executors/local"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/spec"
)

// Defaults of Config's zero fields.
const (
	DefaultStartTimeout = 20 * time.Minute
	DefaultPollInterval = 2 * time.Second
	DefaultHeartbeat    = 10 * time.Second
	// logTailLines is how much of a server's log an error carries.
	logTailLines = 20
)

// Recorder records the servers as jobs, so that their GPU time is
// accounted for: RecordJob right after a server's process or job exists,
// UpdateJob as it runs and when it ends. Executor is "local" or "slurm".
type Recorder interface {
	RecordJob(ctx context.Context, executor, id string) error
	UpdateJob(ctx context.Context, id, status string, gpuHours float64) error
}

// JobWatcher tells the state of Slurm jobs.
type JobWatcher interface {
	// Wait returns the next status of job id that it learns.
	Wait(ctx context.Context, id string) (slurm.Status, error)
}

// Config describes the servers of one generator.
type Config struct {
	// Name is the generator's name, for job names and, as "generator
	// NAME", messages.
	Name string
	// Owner, when set, names what the servers serve in messages instead
	// (e.g. "evaluate.base.alpacaeval2").
	Owner string
	// Model is the name the servers serve the model under (the spec's
	// model), checked in /v1/models and sent with every request.
	Model string
	// VLLM holds the engine settings, the replica count, the GPUs of one
	// replica and the executor (local or slurm).
	VLLM spec.VLLM
	// Dir is the absolute directory of the servers' scripts, logs,
	// endpoint files and heartbeat; Slurm jobs must see it.
	Dir string
	// Key is the API key the servers require (passed to them as
	// VLLM_API_KEY, never written to a file); Start makes one when empty.
	Key string
	// Env is more environment for the servers (the offline cache's
	// variables, docs/offline.md), passed like Key.
	Env map[string]string
	// Hardware is the shape of one replica's Slurm job (--gpus-per-node,
	// --time, …); Slurm adds partition, account and the like.
	Hardware spec.Hardware
	Slurm    spec.Slurm
	// Client runs sbatch, squeue and scancel; nil: the commands in PATH.
	Client *slurm.Client
	// Jobs, when set, tells the state of the Slurm jobs (the engine's
	// shared poller: one squeue call per interval for all its jobs); nil:
	// the pool polls each job itself every PollInterval.
	Jobs JobWatcher
	// StartTimeout bounds the wait for a server's /health from the moment
	// its process or job runs (time a job spends pending is not counted).
	StartTimeout time.Duration
	// PollInterval is the time between two looks at a starting server.
	PollInterval time.Duration
	// Heartbeat is the interval of the heartbeat, of the GPU-hour updates
	// and of the job polls while serving.
	Heartbeat time.Duration
	// Recorder, when set, records each server as a job.
	Recorder Recorder
	// Logf, when set, is told when a replica leaves the rotation.
	Logf func(format string, args ...any)
}

// Pool is the running servers of one generator.
type Pool struct {
	cfg       Config
	heartbeat string
	client    *slurm.Client
	tr        *http.Transport
	replicas  []*replica
	next      atomic.Uint64 // rotates ties between equally loaded replicas
	pickMu    sync.Mutex

	down     chan struct{} // closed when no replica is left or at Close
	downCtx  context.Context
	cancel   context.CancelFunc
	watchCtx context.Context // the Slurm job watchers'
	unwatch  context.CancelFunc
	downOnce sync.Once
	downErr  error
	closing  atomic.Bool
	batch    bool // an offline batch run (RunBatch), not servers
	stopBeat chan struct{}
	beatDone chan struct{}
	closed   sync.Once
}

// replica is one server.
type replica struct {
	i        int
	executor string
	id       string // job id: local-… or Slurm's
	log      string
	endpoint string

	mu       sync.Mutex
	addr     string    // host:port once known
	running  time.Time // when its process or job started running
	stopped  time.Time
	inflight atomic.Int64
	dead     atomic.Bool
	ready    bool

	pgid     int           // local: the script's process group
	exited   chan struct{} // closed when the script has exited or the job ended
	exitCode int
	ended    slurm.State // Slurm: the state the job ended in
}

// errClosed is the pool's error after Close.
var errClosed = errors.New("the vLLM servers were stopped")

// newPool applies cfg's defaults and prepares its directory and
// heartbeat; it returns the executor.
func newPool(cfg Config) (*Pool, string, error) {
	if cfg.Name == "" || cfg.Model == "" {
		return nil, "", errors.New("vllm: a pool needs a generator name and a model")
	}
	if !filepath.IsAbs(cfg.Dir) {
		return nil, "", fmt.Errorf("%s: vllm: server directory %q is not absolute", cfg.owner(), cfg.Dir)
	}
	exec := cfg.VLLM.Executor
	if exec == "" {
		exec = spec.ExecutorLocal
	}
	if exec != spec.ExecutorLocal && exec != spec.ExecutorSlurm {
		return nil, "", fmt.Errorf("%s: vllm: unknown executor %q (local or slurm)", cfg.owner(), exec)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Key == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, "", err
		}
		cfg.Key = "agora-" + hex.EncodeToString(b)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("%s: vllm: %w", cfg.owner(), err)
	}
	p := &Pool{
		cfg:       cfg,
		heartbeat: filepath.Join(cfg.Dir, "heartbeat"),
		client:    cfg.Client,
		down:      make(chan struct{}),
		stopBeat:  make(chan struct{}),
		beatDone:  make(chan struct{}),
		tr: &http.Transport{
			Proxy:               nil, // the servers are ours: never through a proxy
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 2048,
			IdleConnTimeout:     90 * time.Second,
			WriteBufferSize:     16 << 10,
		},
	}
	if p.client == nil {
		p.client = &slurm.Client{}
	}
	p.downCtx, p.cancel = context.WithCancel(context.Background())
	p.watchCtx, p.unwatch = context.WithCancel(context.Background())
	if err := p.touch(); err != nil {
		return nil, "", fmt.Errorf("%s: vllm: %w", cfg.owner(), err)
	}
	return p, exec, nil
}

// Start starts cfg.VLLM.Replicas servers, waits until each answers
// /health and serves cfg.Model, and returns the pool of those that did.
// It fails, with each server's log tail, when none did; servers that
// failed while others started are left out (and told to Logf).
func Start(ctx context.Context, cfg Config) (*Pool, error) {
	p, exec, err := newPool(cfg)
	if err != nil {
		return nil, err
	}
	cfg = p.cfg
	n := max(cfg.VLLM.Replicas, 1)
	gpuList, err := localGPUs(exec, n, max(cfg.VLLM.GPUs, 1))
	if err != nil {
		return nil, fmt.Errorf("%s: vllm: %w", cfg.owner(), err)
	}
	for i := 0; i < n; i++ {
		p.replicas = append(p.replicas, &replica{i: i, executor: exec, endpoint: endpointPath(cfg.Dir, i)})
	}
	register(p)
	go p.beat()

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range p.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var gpus string
			if gpuList != nil {
				gpus = gpuList[i]
			}
			if err := p.start(ctx, r, gpus); err != nil {
				errs[i] = err
				p.retire(r, "", err)
			}
		}()
	}
	wg.Wait()
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Sprintf("replica %d %v", i+1, err))
		}
	}
	if p.Alive() == 0 || ctx.Err() != nil {
		p.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if n == 1 {
			return nil, fmt.Errorf("%s: the vLLM server did not start: %s", cfg.owner(), strings.TrimPrefix(failed[0], "replica 1 "))
		}
		return nil, fmt.Errorf("%s: none of the %d vLLM servers started:\n%s", cfg.owner(), n, strings.Join(failed, "\n"))
	}
	for _, f := range failed {
		p.logf("%s: a vLLM server did not start and is left out: %s", cfg.owner(), f)
	}
	return p, nil
}

// localGPUs splits the GPUs among local replicas when there is more than
// one: replica i gets gpus devices of CUDA_VISIBLE_DEVICES (or of 0, 1, …).
// Slurm gives each job its own GPUs.
func localGPUs(executor string, replicas, gpus int) ([]string, error) {
	if executor != spec.ExecutorLocal || replicas == 1 {
		return nil, nil
	}
	var devs []string
	if v := strings.TrimSpace(os.Getenv("CUDA_VISIBLE_DEVICES")); v != "" {
		devs = strings.Split(v, ",")
		if len(devs) < replicas*gpus {
			return nil, fmt.Errorf("%d replicas × %d GPUs need %d GPUs, but CUDA_VISIBLE_DEVICES lists %d", replicas, gpus, replicas*gpus, len(devs))
		}
	} else {
		for d := 0; d < replicas*gpus; d++ {
			devs = append(devs, strconv.Itoa(d))
		}
	}
	out := make([]string, replicas)
	for i := range out {
		out[i] = strings.Join(devs[i*gpus:(i+1)*gpus], ",")
	}
	return out, nil
}

// start launches replica r and waits until it is ready.
func (p *Pool) start(ctx context.Context, r *replica, gpus string) error {
	_ = os.Remove(r.endpoint)
	env := map[string]string{"VLLM_API_KEY": p.cfg.Key}
	for k, v := range p.cfg.Env {
		env[k] = v
	}
	j := slurm.Job{Name: jobName(p.cfg.Name), Dir: p.cfg.Dir, Hardware: p.cfg.Hardware, Slurm: p.cfg.Slurm, Env: env}
	rec := context.WithoutCancel(ctx)
	switch r.executor {
	case spec.ExecutorLocal:
		if gpus != "" {
			env["CUDA_VISIBLE_DEVICES"] = gpus
		}
		j.Script = p.script(r)
		r.id = fmt.Sprintf("%s-%d", local.NewID(), r.i+1)
		r.log = slurm.LogPath(p.cfg.Dir, r.id)
		if err := p.record(rec, r); err != nil {
			return err
		}
		if err := p.runLocal(r, j); err != nil {
			return err
		}
	default:
		j.Script = p.script(r)
		id, err := p.client.SubmitJob(rec, j)
		if err != nil {
			return fmt.Errorf("could not be submitted: %w", err)
		}
		keepScript(j, id)
		r.mu.Lock()
		r.id, r.log, r.exited = id, slurm.LogPath(p.cfg.Dir, id), make(chan struct{})
		r.mu.Unlock()
		go p.watch(r)
		if err := p.record(rec, r); err != nil {
			_ = p.client.Cancel(rec, id)
			return err
		}
	}
	return p.waitReady(ctx, r)
}

func (p *Pool) record(ctx context.Context, r *replica) error {
	if p.cfg.Recorder == nil {
		return nil
	}
	return p.cfg.Recorder.RecordJob(ctx, r.executor, r.id)
}

// waitReady waits for r's /health, then checks /v1/models.
func (p *Pool) waitReady(ctx context.Context, r *replica) error {
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	var deadline time.Time
	for {
		select {
		case <-r.exited:
			if r.executor == spec.ExecutorLocal {
				return p.failure(r, fmt.Sprintf("exited with status %d before it was ready", r.exitCode))
			}
			return p.failure(r, fmt.Sprintf("ended %s before the server was ready", r.ended))
		default:
		}
		r.mu.Lock()
		running := r.running
		r.mu.Unlock()
		if !running.IsZero() && deadline.IsZero() {
			deadline = running.Add(p.cfg.StartTimeout)
		}
		if r.addr == "" {
			if addr, ok := readEndpoint(r.endpoint); ok {
				r.mu.Lock()
				r.addr = addr
				r.mu.Unlock()
			}
		}
		if r.addr != "" && p.healthy(ctx, r) {
			break
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return p.failure(r, fmt.Sprintf("did not answer GET /health within the start timeout (%s)", p.cfg.StartTimeout))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-r.exited:
		}
	}
	if err := p.checkModels(ctx, r); err != nil {
		return p.failure(r, err.Error())
	}
	r.mu.Lock()
	r.ready = true
	r.mu.Unlock()
	return nil
}

// failure is a start error of r carrying its log's tail.
func (p *Pool) failure(r *replica, what string) error {
	msg := fmt.Sprintf("(%s job %s) %s", r.executor, r.id, what)
	// A job's last words may take a moment to reach the shared log.
	tail := local.Tail(r.log, logTailLines)
	if tail == "" && r.executor != spec.ExecutorLocal {
		time.Sleep(p.cfg.PollInterval)
		tail = local.Tail(r.log, logTailLines)
	}
	if tail != "" {
		msg += "; the log (" + r.log + ") ends:\n" + tail
	} else {
		msg += "; its log (" + r.log + ") is empty"
	}
	return errors.New(msg)
}

func readEndpoint(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	host, port, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok || host == "" || port == "" {
		return "", false
	}
	return net.JoinHostPort(host, port), true
}

// healthy reports whether r answers GET /health with 200 within 3 s.
func (p *Pool) healthy(ctx context.Context, r *replica) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/health", nil)
	if err != nil {
		return false
	}
	res, err := p.tr.RoundTrip(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// checkModels checks that r serves the pool's model.
func (p *Pool) checkModels(ctx context.Context, r *replica) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/v1/models", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.Key)
	res, err := p.tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("GET /v1/models failed: %v", err)
	}
	defer res.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/models answered %s", res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		return fmt.Errorf("GET /v1/models did not return a model list: %v", err)
	}
	var ids []string
	for _, m := range list.Data {
		if m.ID == p.cfg.Model {
			return nil
		}
		ids = append(ids, m.ID)
	}
	return fmt.Errorf("serves %s, not %s", strings.Join(ids, ", "), p.cfg.Model)
}

// Key is the API key the servers require.
func (p *Pool) Key() string { return p.cfg.Key }

// BaseURL is the base URL to give an OpenAI-compatible client that uses
// the pool as its transport: the pool puts a replica's address in each
// request.
func (p *Pool) BaseURL() string { return "http://vllm-servers.invalid/v1" }

// Addrs are the host:port of the replicas in the rotation.
func (p *Pool) Addrs() []string {
	var out []string
	for _, r := range p.replicas {
		if p.alive(r) {
			out = append(out, r.addr)
		}
	}
	return out
}

// Alive is the number of replicas in the rotation.
func (p *Pool) Alive() int { return len(p.Addrs()) }

func (p *Pool) alive(r *replica) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready && !r.dead.Load()
}

// Done is closed when the pool can serve no more: every replica has left
// the rotation, or Close was called. Err then says why.
func (p *Pool) Done() <-chan struct{} { return p.down }

// Context is cancelled when Done is closed.
func (p *Pool) Context() context.Context { return p.downCtx }

// Err is nil while the pool serves, then why it stopped.
func (p *Pool) Err() error {
	select {
	case <-p.down:
		return p.downErr
	default:
		return nil
	}
}

func (p *Pool) fail(err error) {
	p.downOnce.Do(func() {
		p.downErr = err
		close(p.down)
		p.cancel()
	})
}

func (p *Pool) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf(format, args...)
	}
}

// gpuHours is the GPU time r has held so far.
func (p *Pool) gpuHours(r *replica) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running.IsZero() {
		return 0
	}
	end := r.stopped
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(r.running).Hours() * float64(max(p.cfg.VLLM.GPUs, 1))
}

// stop ends r's process or job and waits for the process.
func (p *Pool) stop(ctx context.Context, r *replica) {
	switch {
	case r.pgid != 0:
		stopGroup(r.pgid, r.exited)
	case r.id != "":
		_ = p.client.Cancel(ctx, r.id)
	}
	r.mu.Lock()
	if r.stopped.IsZero() {
		r.stopped = time.Now()
	}
	r.mu.Unlock()
}

// retire takes r out of the rotation for good: it is stopped and recorded
// as failed. cause, when set, is what happened; err is a start failure.
func (p *Pool) retire(r *replica, cause string, err error) {
	if !r.dead.CompareAndSwap(false, true) {
		return
	}
	ctx := context.Background()
	p.stop(ctx, r)
	if r.id != "" && p.cfg.Recorder != nil {
		_ = p.cfg.Recorder.UpdateJob(ctx, r.id, string(slurm.Failed), p.gpuHours(r))
	}
	if err != nil || p.closing.Load() {
		return
	}
	msg := fmt.Sprintf("replica %d (%s job %s) %s", r.i+1, r.executor, r.id, cause)
	if tail := local.Tail(r.log, logTailLines); tail != "" {
		msg += "; the log (" + r.log + ") ends:\n" + tail
	}
	if p.Alive() == 0 {
		p.fail(fmt.Errorf("%s: every vLLM server has stopped; the last, %s", p.owner(), msg))
		return
	}
	p.logf("%s: a vLLM server left the rotation (%d left): %s", p.owner(), p.Alive(), msg)
}

// beat touches the heartbeat, records GPU time and watches the replicas
// until Close.
func (p *Pool) beat() {
	defer close(p.beatDone)
	t := time.NewTicker(p.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-p.stopBeat:
			return
		case <-t.C:
		}
		_ = p.touch()
		for _, r := range p.replicas {
			if p.alive(r) && p.cfg.Recorder != nil {
				_ = p.cfg.Recorder.UpdateJob(context.Background(), r.id, string(slurm.Running), p.gpuHours(r))
			}
		}
	}
}

// watch follows replica r's Slurm job until it ends (or the pool is
// closed): it notes when the job runs, and takes the replica out of the
// rotation if its job ends while it serves.
func (p *Pool) watch(r *replica) {
	for {
		st, err := p.waitJob(r.id)
		if err != nil {
			if p.watchCtx.Err() != nil {
				return
			}
			continue
		}
		switch {
		case st.State == slurm.Running:
			r.mu.Lock()
			if r.running.IsZero() {
				r.running = time.Now()
			}
			r.mu.Unlock()
		case st.State.Done():
			r.ended, r.exitCode = st.State, st.ExitCode
			close(r.exited)
			if p.alive(r) && !p.closing.Load() && !p.batch {
				p.retire(r, fmt.Sprintf("(its job) ended %s", st.State), nil)
			}
			return
		}
	}
}

// waitJob returns the next status of job id: from the Config's watcher,
// or from a squeue call of its own after PollInterval.
func (p *Pool) waitJob(id string) (slurm.Status, error) {
	if p.cfg.Jobs != nil {
		return p.cfg.Jobs.Wait(p.watchCtx, id)
	}
	select {
	case <-p.watchCtx.Done():
		return slurm.Status{}, p.watchCtx.Err()
	case <-time.After(p.cfg.PollInterval):
	}
	ctx, cancel := context.WithTimeout(p.watchCtx, time.Minute)
	defer cancel()
	st, err := p.client.Poll(ctx, []string{id})
	if err != nil {
		return slurm.Status{}, err
	}
	return st[id], nil
}

func (p *Pool) touch() error {
	now := time.Now()
	if err := os.Chtimes(p.heartbeat, now, now); err == nil {
		return nil
	}
	return os.WriteFile(p.heartbeat, []byte("agora touches this file while it uses the servers\n"), 0o644)
}

// Close stops every server, records each one's GPU time, and waits until
// the local processes have exited and the Slurm jobs are cancelled. It
// may be called more than once.
func (p *Pool) Close(ctx context.Context) error {
	var err error
	p.closed.Do(func() {
		p.closing.Store(true)
		p.fail(errClosed)
		close(p.stopBeat)
		<-p.beatDone
		var wg sync.WaitGroup
		var ids []string
		for _, r := range p.replicas {
			if r.dead.Load() || r.id == "" {
				continue
			}
			if r.executor == spec.ExecutorSlurm {
				ids = append(ids, r.id)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop(ctx, r)
			}()
		}
		if len(ids) > 0 {
			if cerr := p.client.Cancel(ctx, ids...); cerr != nil {
				err = fmt.Errorf("%s: cancel the vLLM jobs %s: %w", p.owner(), strings.Join(ids, ", "), cerr)
			}
			now := time.Now()
			for _, r := range p.replicas {
				r.mu.Lock()
				if r.executor == spec.ExecutorSlurm && r.stopped.IsZero() {
					r.stopped = now
				}
				r.mu.Unlock()
			}
		}
		wg.Wait()
		// scancel only asks: wait, up to a minute, until every job is
		// seen ended.
		limit := time.After(time.Minute)
	jobs:
		for _, r := range p.replicas {
			if r.executor != spec.ExecutorSlurm || r.exited == nil {
				continue
			}
			select {
			case <-r.exited:
			case <-limit:
				break jobs
			}
		}
		p.unwatch()
		for _, r := range p.replicas {
			if r.dead.Load() || r.id == "" || p.cfg.Recorder == nil {
				continue
			}
			if rerr := p.cfg.Recorder.UpdateJob(context.WithoutCancel(ctx), r.id, string(slurm.Completed), p.gpuHours(r)); rerr != nil && err == nil {
				err = rerr
			}
		}
		_ = os.Remove(p.heartbeat)
		p.tr.CloseIdleConnections()
		unregister(p)
	})
	return err
}

func appendLog(path, line string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintln(f, line)
	f.Close()
}

// pools are the pools of this process not yet closed, for KillAll.
var pools = struct {
	sync.Mutex
	m map[*Pool]bool
}{m: map[*Pool]bool{}}

func register(p *Pool) {
	pools.Lock()
	pools.m[p] = true
	pools.Unlock()
}

func unregister(p *Pool) {
	pools.Lock()
	delete(pools.m, p)
	pools.Unlock()
}

// KillAll stops the servers of every pool of this process at once, for a
// caller about to exit without closing them: local servers' process
// groups get SIGKILL, Slurm jobs are cancelled (one scancel each pool,
// bounded to 10 s). It returns the number of servers stopped.
func KillAll() int {
	pools.Lock()
	defer pools.Unlock()
	n := 0
	for p := range pools.m {
		p.closing.Store(true)
		var ids []string
		for _, r := range p.replicas {
			if r.dead.Load() || r.id == "" {
				continue
			}
			if r.pgid != 0 {
				_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
				n++
			} else {
				ids = append(ids, r.id)
			}
		}
		if len(ids) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if p.client.Cancel(ctx, ids...) == nil {
				n += len(ids)
			}
			cancel()
		}
		_ = os.Remove(p.heartbeat)
	}
	return n
}

// keepScript writes the script Slurm job id runs (Render is
// deterministic, and the key is passed by name) as job-<id>.sh beside its
// log, as a local server's is; a failure to write it costs nothing else.
func keepScript(j slurm.Job, id string) {
	if script, err := slurm.Render(j); err == nil {
		_ = os.WriteFile(local.ScriptPath(j.Dir, id), []byte(script), 0o644)
	}
}

// runLocal runs replica r's script (the job j rendered as for Slurm) with
// bash in its own process group, its output appended to r's log, the way
// executors/local runs jobs; r.exited closes when the script exits.
func (p *Pool) runLocal(r *replica, j slurm.Job) error {
	script, err := slurm.Render(j)
	if err != nil {
		return err
	}
	path := local.ScriptPath(j.Dir, r.id)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("bash", path)
	cmd.Dir = j.Dir
	env := append(os.Environ(), "SLURM_JOB_ID="+r.id)
	for k, v := range j.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", path, err)
	}
	// The next apply finds the group by this file if agora is killed
	// outright (engine's endStaleServers).
	_ = os.WriteFile(local.PIDPath(j.Dir, r.id), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	r.mu.Lock()
	r.pgid, r.exited, r.running = cmd.Process.Pid, make(chan struct{}), time.Now()
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
				code = 128 + int(st.Signal())
			}
		}
		r.exitCode = code
		close(r.exited)
		if p.alive(r) && !p.closing.Load() && !p.batch {
			p.retire(r, fmt.Sprintf("exited with status %d", code), nil)
		}
	}()
	return nil
}

// stopGroup ends a local server: SIGTERM to its process group (vLLM shuts
// down cleanly on it), SIGKILL after StopGrace, and it returns once the
// script has exited and no process of the group is left.
func stopGroup(pgid int, exited <-chan struct{}) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(StopGrace)
	killed := false
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			if killed {
				break // only unreaped zombies can be left
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			killed, deadline = true, time.Now().Add(5*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-exited
}

func (c Config) owner() string {
	if c.Owner != "" {
		return c.Owner
	}
	return "generator " + c.Name
}

func (p *Pool) owner() string { return p.cfg.owner() }
