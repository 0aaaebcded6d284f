package vllm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agorabench/agora/executors/local"
	"github.com/agorabench/agora/executors/slurm"
	"github.com/agorabench/agora/spec"
)

// BatchRequest is one chat completion of an offline batch: Body is the
// request's JSON (model, messages, sampling), as POST
// /v1/chat/completions takes it.
type BatchRequest struct {
	ID   string
	Body json.RawMessage
}

// BatchResult is vLLM's answer to one request: the chat completion's JSON
// when Status is 200, else an error message.
type BatchResult struct {
	Status int
	Body   json.RawMessage
	Err    string
}

// batchSeq numbers the batches of this process, for file names.
var batchSeq atomic.Int64

// BatchArgs is the `vllm run-batch` command line over files in and out,
// with the engine settings of Args.
func BatchArgs(model string, v spec.VLLM, in, out string) []string {
	serve := Args(model, v) // vllm serve TARGET --served-model-name …
	a := []string{"vllm", "run-batch", "-i", in, "-o", out, "--model", serve[2]}
	return append(a, serve[3:]...)
}

// RunBatch answers reqs offline with one `vllm run-batch` run: a local
// process or a Slurm job on cfg.VLLM.Executor, from the same kind of
// script as a server (with the heartbeat), recorded through cfg.Recorder
// with its GPU time. It returns the results by request ID; an error means
// the run itself failed (it carries the log's tail) or ctx ended (the run
// is stopped).
func RunBatch(ctx context.Context, cfg Config, reqs []BatchRequest) (map[string]BatchResult, error) {
	p, exec, err := newPool(cfg)
	if err != nil {
		return nil, err
	}
	p.batch = true
	r := &replica{executor: exec}
	p.replicas = []*replica{r}
	register(p)
	go p.beat()
	defer p.Close(context.WithoutCancel(ctx))

	k := batchSeq.Add(1)
	stamp := time.Now().UnixNano()
	in := filepath.Join(p.cfg.Dir, fmt.Sprintf("batch-%d-%d.in.jsonl", stamp, k))
	out := filepath.Join(p.cfg.Dir, fmt.Sprintf("batch-%d-%d.out.jsonl", stamp, k))
	if err := writeBatch(in, reqs); err != nil {
		return nil, fmt.Errorf("%s: vllm run-batch: %w", p.owner(), err)
	}
	j := slurm.Job{Name: jobName(p.cfg.Name), Dir: p.cfg.Dir, Hardware: p.cfg.Hardware, Slurm: p.cfg.Slurm,
		Script: p.batchScript(in, out)}
	rec := context.WithoutCancel(ctx)
	if exec == spec.ExecutorLocal {
		r.id = fmt.Sprintf("%s-batch", local.NewID())
		r.log = slurm.LogPath(p.cfg.Dir, r.id)
		if err := p.record(rec, r); err != nil {
			return nil, err
		}
		if err := p.runLocal(r, j); err != nil {
			return nil, err
		}
	} else {
		id, err := p.client.SubmitJob(rec, j)
		if err != nil {
			return nil, fmt.Errorf("%s: vllm run-batch could not be submitted: %w", p.owner(), err)
		}
		keepScript(j, id)
		r.mu.Lock()
		r.id, r.log, r.exited = id, slurm.LogPath(p.cfg.Dir, id), make(chan struct{})
		r.mu.Unlock()
		go p.watch(r)
		if err := p.record(rec, r); err != nil {
			_ = p.client.Cancel(rec, id)
			return nil, err
		}
	}
	r.mu.Lock()
	r.ready = true // its GPU time is recorded as it runs
	r.mu.Unlock()
	select {
	case <-r.exited:
	case <-ctx.Done():
		p.stop(rec, r)
		p.finish(r, string(slurm.Cancelled))
		return nil, ctx.Err()
	}
	p.stop(rec, r) // a finished job: nothing left to stop, but the end is noted
	ok := r.exitCode == 0 && (exec == spec.ExecutorLocal || r.ended == slurm.Completed)
	if !ok {
		p.finish(r, string(slurm.Failed))
		what := fmt.Sprintf("exited with status %d", r.exitCode)
		if exec == spec.ExecutorSlurm {
			what = fmt.Sprintf("ended %s", r.ended)
		}
		return nil, fmt.Errorf("%s: vllm run-batch %s", p.owner(), p.failure(r, what))
	}
	p.finish(r, string(slurm.Completed))
	res, err := readBatch(out)
	if err != nil {
		return nil, fmt.Errorf("%s: vllm run-batch exited 0 but its results cannot be read: %w", p.owner(), err)
	}
	return res, nil
}

// finish records the batch run's end and takes it out of Close's care.
func (p *Pool) finish(r *replica, status string) {
	r.dead.Store(true)
	if p.cfg.Recorder != nil && r.id != "" {
		_ = p.cfg.Recorder.UpdateJob(context.Background(), r.id, status, p.gpuHours(r))
	}
}

// batchScript runs vllm run-batch in the background under the same
// heartbeat watch as a server.
func (p *Pool) batchScript(in, out string) string {
	every := max(1, int(p.cfg.Heartbeat.Seconds()))
	stale := every * heartbeatMisses
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# An offline vLLM batch of %s, started by agora.", p.owner())
	w("heartbeat=%s", shellQuote(p.heartbeat))
	w(`rm -f %s`, shellQuote(out))
	w(`%s &`, shellJoin(BatchArgs(p.cfg.Model, p.cfg.VLLM, in, out)))
	w(`batch=$!`)
	writeStop(w, "batch")
	w(`trap 'agora_stop; exit 143' TERM INT`)
	w(`while kill -0 "$batch" 2>/dev/null; do`)
	w(`	sleep 1 & wait $!`)
	w(`	age=$(( $(date +%%s) - $(stat -c %%Y "$heartbeat" 2>/dev/null || echo 0) ))`)
	w(`	if [ "$age" -gt %d ]; then`, stale)
	w(`		echo "agora: no heartbeat from agora for ${age} s: stopping the batch" >&2`)
	w(`		agora_stop`)
	w(`		exit "$agora_rc"`)
	w(`	fi`)
	w(`done`)
	w(`wait "$batch"`)
	return b.String()
}

func writeBatch(path string, reqs []BatchRequest) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range reqs {
		line := struct {
			CustomID string          `json:"custom_id"`
			Method   string          `json:"method"`
			URL      string          `json:"url"`
			Body     json.RawMessage `json:"body"`
		}{r.ID, "POST", "/v1/chat/completions", r.Body}
		if err := enc.Encode(line); err != nil {
			f.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readBatch reads run-batch's output: one line per request, with the
// response's status and body, or an error.
func readBatch(path string) (map[string]BatchResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := map[string]BatchResult{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var line struct {
			CustomID string `json:"custom_id"`
			Response *struct {
				StatusCode int             `json:"status_code"`
				Body       json.RawMessage `json:"body"`
			} `json:"response"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		r := BatchResult{}
		switch {
		case line.Response != nil && line.Response.StatusCode == 200:
			r.Status, r.Body = 200, line.Response.Body
		case line.Response != nil:
			r.Status, r.Body = line.Response.StatusCode, line.Response.Body
			var e struct{ Message string }
			_ = json.Unmarshal(line.Response.Body, &e)
			r.Err = fmt.Sprintf("status %d: %s", r.Status, e.Message)
		default:
			r.Err = "no response: " + string(line.Error)
		}
		res[line.CustomID] = r
	}
	return res, sc.Err()
}
