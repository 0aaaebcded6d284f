// Command vllm is a stand-in for vLLM's `vllm serve` in agora's tests. It
// parses the flags agora passes (and a few common engine flags), rejects
// others the way vLLM's argument parser does, and serves GET /health,
// GET /v1/models and POST /v1/chat/completions (and, for agora's metrics,
// /v1/completions with echo and logprobs and /v1/embeddings; metrics.go), requiring
// "Authorization: Bearer $VLLM_API_KEY" on /v1 when that variable is set.
//
// Environment knobs for tests:
//
//	AGORA_STUB_START_DELAY  a duration slept before listening (loading weights)
//	AGORA_STUB_FAIL_START   a message: print a traceback ending in it and exit 1
//	AGORA_STUB_DIE_AFTER    N: die (exit 1, connections dropped) on the request after the Nth completion ...
//	AGORA_STUB_DIE_ONCE     ... but only in the one server that creates this file first
//	AGORA_STUB_LATENCY      a duration each completion takes
//	AGORA_STUB_REPLY        the completion text (default: a math answer)
//	AGORA_STUB_IGNORE_TERM  set: ignore SIGTERM and SIGINT (a server that hangs in its shutdown)
//
// Each response's system_fingerprint is "stub-PORT", so a test can tell
// which server answered.
//
// MODEL is loaded the way vLLM does: an existing directory (relative to
// the working directory) is a local checkpoint, anything else a Hugging
// Face Hub id, which fails with HF_HUB_OFFLINE=1 as vLLM does offline
// when the id is not in the cache. --generation-config auto (vLLM's
// default) takes the defaults of the sampling fields a request leaves out
// from the checkpoint's generation_config.json, a folder from that
// folder's, and vllm from none; --override-generation-config is merged over
// them. The effective defaults are logged at start.
//
// `vllm run-batch -i IN -o OUT --model MODEL` answers the JSONL requests of
// IN in OUT the same way, after the same start delay or failure.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	batch := len(os.Args) >= 2 && os.Args[1] == "run-batch"
	if !batch && (len(os.Args) < 3 || os.Args[1] != "serve") {
		fmt.Fprintln(os.Stderr, "usage: vllm serve MODEL [options] | vllm run-batch -i IN -o OUT --model MODEL [options]")
		os.Exit(2)
	}
	var model string
	args := os.Args[2:]
	if !batch {
		model, args = os.Args[2], os.Args[3:]
	}
	fs := flag.NewFlagSet("vllm "+os.Args[1], flag.ContinueOnError)
	in := fs.String("i", "", "")
	out := fs.String("o", "", "")
	fs.StringVar(&model, "model", model, "")
	served := fs.String("served-model-name", "", "")
	host := fs.String("host", "", "")
	port := fs.Int("port", 8000, "")
	tp := fs.Int("tensor-parallel-size", 1, "")
	pp := fs.Int("pipeline-parallel-size", 1, "")
	dtype := fs.String("dtype", "auto", "")
	maxLen := fs.Int("max-model-len", 0, "")
	gpuMem := fs.Float64("gpu-memory-utilization", 0.9, "")
	seed := fs.Int("seed", 0, "")
	fs.Int("max-num-seqs", 256, "")
	fs.Bool("enforce-eager", false, "")
	fs.Bool("enable-prefix-caching", false, "")
	override := fs.String("override-generation-config", "", "")
	genConfig := fs.String("generation-config", "auto", "")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(os.Stderr, "vllm: error: unrecognized arguments")
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vllm: error: unrecognized arguments: %s\n", strings.Join(fs.Args(), " "))
		os.Exit(2)
	}
	switch *dtype {
	case "auto", "half", "float16", "bfloat16", "float", "float32":
	default:
		fmt.Fprintf(os.Stderr, "vllm: error: argument --dtype: invalid choice: '%s'\n", *dtype)
		os.Exit(2)
	}
	if *gpuMem <= 0 || *gpuMem > 1 || *tp < 1 || *pp < 1 || *maxLen < 0 {
		fmt.Fprintln(os.Stderr, "vllm: error: invalid engine arguments")
		os.Exit(2)
	}
	if *override != "" {
		var cfg map[string]any
		if err := json.Unmarshal([]byte(*override), &cfg); err != nil {
			fmt.Fprintf(os.Stderr, "vllm: error: argument --override-generation-config: invalid loads value: '%s'\n", *override)
			os.Exit(2)
		}
		fmt.Printf("INFO vllm stand-in: default sampling parameters from --override-generation-config: %s\n", *override)
	}
	defaults, err := samplingDefaults(model, *genConfig, *override)
	if err != nil {
		fatal(err.Error())
	}
	if len(defaults) > 0 {
		b, _ := json.Marshal(defaults)
		fmt.Printf("WARNING Default sampling parameters have been overridden: %s\n", b)
	} else {
		fmt.Println("INFO vllm stand-in: default sampling parameters are vLLM's own")
	}
	name := model
	if *served != "" {
		name = *served
	}
	fmt.Printf("INFO vllm stand-in: model=%s served=%s tp=%d dtype=%s max_model_len=%d gpu_memory_utilization=%g seed=%d\n",
		model, name, *tp, *dtype, *maxLen, *gpuMem, *seed)
	if batch && (*in == "" || *out == "" || model == "") {
		fmt.Fprintln(os.Stderr, "vllm run-batch: error: the following arguments are required: -i, -o, --model")
		os.Exit(2)
	}

	if d := env("AGORA_STUB_START_DELAY"); d != "" {
		wait, err := time.ParseDuration(d)
		if err != nil {
			fatal("bad AGORA_STUB_START_DELAY")
		}
		fmt.Println("INFO Loading model weights took a while…")
		time.Sleep(wait)
	}
	if msg := env("AGORA_STUB_FAIL_START"); msg != "" {
		fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
		fmt.Fprintln(os.Stderr, `  File "vllm/entrypoints/openai/api_server.py", line 1, in run_server`)
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}

	if batch {
		runBatch(*in, *out, name)
		return
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fatal("OSError: [Errno 98] Address already in use: " + err.Error())
	}
	s := &server{name: name, key: os.Getenv("VLLM_API_KEY"), port: *port, reply: env("AGORA_STUB_REPLY")}
	if s.reply == "" {
		s.reply = "Adding the two numbers gives the total. [RESULT] 4 [/RESULT]"
	}
	if d := env("AGORA_STUB_LATENCY"); d != "" {
		if s.latency, err = time.ParseDuration(d); err != nil {
			fatal("bad AGORA_STUB_LATENCY")
		}
	}
	if n := env("AGORA_STUB_DIE_AFTER"); n != "" {
		if s.dieAfter, err = strconv.ParseInt(n, 10, 64); err != nil {
			fatal("bad AGORA_STUB_DIE_AFTER")
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v1/models", s.auth(s.models))
	mux.HandleFunc("POST /v1/chat/completions", s.auth(s.chat))
	mux.HandleFunc("POST /v1/completions", s.auth(s.completions))
	mux.HandleFunc("POST /v1/embeddings", s.auth(s.embeddings))
	srv := &http.Server{Handler: mux}
	fmt.Printf("INFO Starting vLLM API server on http://%s\n", ln.Addr())

	sigs := make(chan os.Signal, 1)
	if env("AGORA_STUB_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT) // a server hung in its shutdown
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}
	go func() {
		sig := <-sigs
		fmt.Printf("INFO received %s: shutting down\n", sig)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		os.Exit(0)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fatal(err.Error())
	}
}

type server struct {
	name, key, reply string
	port             int
	latency          time.Duration
	dieAfter         int64
	spared           atomic.Bool // another server died instead
	served           atomic.Int64
}

func (s *server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.key != "" && r.Header.Get("Authorization") != "Bearer "+s.key {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error": "Unauthorized"}`)
			return
		}
		h(w, r)
	}
}

func (s *server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"object": "list", "data": []any{
		map[string]any{"id": s.name, "object": "model", "owned_by": "vllm"},
	}})
}

func (s *server) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"object": "error", "message": "bad request", "type": "BadRequestError", "code": 400}`)
		return
	}
	if req.Model != s.name {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"object": "error", "message": "The model %s does not exist.", "type": "NotFoundError", "code": 404}`, req.Model)
		return
	}
	if s.dieAfter > 0 && !s.spared.Load() && s.served.Load() >= s.dieAfter {
		if path := env("AGORA_STUB_DIE_ONCE"); path == "" || claim(path) {
			fmt.Fprintln(os.Stderr, "ERROR the engine core died: CUDA error: an illegal memory access was encountered")
			os.Exit(1)
		}
		s.spared.Store(true)
	}
	time.Sleep(s.latency)
	n := s.served.Add(1)
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(m.Content)/4 + 4
	}
	writeJSON(w, map[string]any{
		"id": fmt.Sprintf("chatcmpl-%d-%d", s.port, n), "object": "chat.completion", "created": time.Now().Unix(),
		"model": s.name, "system_fingerprint": fmt.Sprintf("stub-%d", s.port),
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": s.reply}}},
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": (len(s.reply) + 3) / 4,
			"total_tokens": prompt + (len(s.reply)+3)/4},
	})
}

// claim creates path exclusively: true for the first caller on the machine.
func claim(path string) bool {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func env(k string) string { return strings.TrimSpace(os.Getenv(k)) }

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "ERROR "+msg)
	os.Exit(1)
}

// runBatch answers each request line of in (custom_id, method, url, body)
// in out, as vllm run-batch does; a body for another model gets an error
// line. AGORA_STUB_BATCH_ERROR_EVERY=N answers every Nth request with a
// 400 error instead, AGORA_STUB_BATCH_BAD_EVERY=N every Nth with a reply
// a validator rejects.
func runBatch(in, out, name string) {
	data, err := os.ReadFile(in)
	if err != nil {
		fatal(err.Error())
	}
	reply := env("AGORA_STUB_REPLY")
	if reply == "" {
		reply = "Adding the two numbers gives the total. [RESULT] 4 [/RESULT]"
	}
	every, _ := strconv.Atoi(env("AGORA_STUB_BATCH_ERROR_EVERY"))
	bad, _ := strconv.Atoi(env("AGORA_STUB_BATCH_BAD_EVERY"))
	f, err := os.Create(out)
	if err != nil {
		fatal(err.Error())
	}
	enc := json.NewEncoder(f)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		n++
		var req struct {
			CustomID string `json:"custom_id"`
			URL      string `json:"url"`
			Body     struct {
				Model    string `json:"model"`
				Messages []struct {
					Content string `json:"content"`
				} `json:"messages"`
			} `json:"body"`
		}
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			fatal("bad request line: " + err.Error())
		}
		rec := map[string]any{"id": fmt.Sprintf("vllm-batch-%d", n), "custom_id": req.CustomID}
		switch {
		case req.URL != "/v1/chat/completions":
			fatal("unsupported url " + req.URL)
		case req.Body.Model != name || (every > 0 && n%every == 0):
			rec["response"] = map[string]any{"status_code": 400, "request_id": fmt.Sprintf("req-%d", n),
				"body": map[string]any{"object": "error", "message": fmt.Sprintf("The model `%s` does not exist.", req.Body.Model), "code": 400}}
			rec["error"] = nil
		default:
			prompt := 0
			for _, m := range req.Body.Messages {
				prompt += len(m.Content)/4 + 4
			}
			reply := reply
			if bad > 0 && n%bad == 0 {
				reply = "I would rather not say."
			}
			rec["response"] = map[string]any{"status_code": 200, "request_id": fmt.Sprintf("req-%d", n), "body": map[string]any{
				"id": fmt.Sprintf("chatcmpl-batch-%d", n), "object": "chat.completion", "model": name,
				"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
					"message": map[string]any{"role": "assistant", "content": reply}}},
				"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": (len(reply) + 3) / 4}}}
			rec["error"] = nil
		}
		if err := enc.Encode(rec); err != nil {
			fatal(err.Error())
		}
	}
	if err := f.Close(); err != nil {
		fatal(err.Error())
	}
	fmt.Printf("INFO run-batch: %d requests answered\n", n)
}

// samplingFields are the generation_config.json fields vLLM takes as the
// defaults of a request's sampling.
var samplingFields = []string{"repetition_penalty", "temperature", "top_k", "top_p", "min_p", "max_new_tokens"}

// samplingDefaults resolves model and the generation config as vLLM does
// and returns the sampling defaults of every request.
func samplingDefaults(model, genConfig, override string) (map[string]any, error) {
	local := false
	if st, err := os.Stat(model); err == nil && st.IsDir() {
		local = true
	} else if os.Getenv("HF_HUB_OFFLINE") == "1" {
		return nil, fmt.Errorf("OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files. %s is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'", model)
	}
	var file string
	switch genConfig {
	case "vllm":
	case "auto":
		if local {
			file = model + "/generation_config.json"
		}
	default:
		st, err := os.Stat(genConfig)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("OSError: %s does not appear to have a file named generation_config.json", genConfig)
		}
		file = genConfig + "/generation_config.json"
	}
	out := map[string]any{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil && !(genConfig == "auto" && os.IsNotExist(err)) {
			return nil, fmt.Errorf("OSError: %v", err)
		}
		if err == nil {
			var cfg map[string]any
			if err := json.Unmarshal(b, &cfg); err != nil {
				return nil, fmt.Errorf("%s: %v", file, err)
			}
			for _, k := range samplingFields {
				if v, ok := cfg[k]; ok {
					out[k] = v
				}
			}
		}
	}
	if override != "" {
		var cfg map[string]any
		if err := json.Unmarshal([]byte(override), &cfg); err != nil {
			return nil, err
		}
		for k, v := range cfg {
			out[k] = v
		}
	}
	return out, nil
}
