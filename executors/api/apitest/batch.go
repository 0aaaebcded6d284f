package apitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"time"
)

// The Batch API: POST /v1/files (purpose batch), GET /v1/files/{id}/content,
// POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches (newest first,
// limit and after), POST /v1/batches/{id}/cancel. A batch validates for
// BatchOptions.Validation, then runs its lines one after another (each
// through the chat-completion handler, so the responder, the model check
// and the token tally are the same as for synchronous requests), then
// writes its output file (the 200 lines) and its error file (the others,
// and the lines that expired), the way OpenAI's does.

// BatchOptions shape the stand-in Batch API.
type BatchOptions struct {
	// Validation is how long a new batch stays "validating".
	Validation time.Duration
	// LineDelay is the time each line takes to run.
	LineDelay time.Duration
	// ExpireAfter, when > 0, expires a batch once this many of its lines
	// ran: the others end in the error file with code batch_expired and
	// the batch's status is "expired".
	ExpireAfter int
	// FailEvery, when > 0, answers every FailEvery-th line the server runs
	// with a 500 in the error file (nothing billed).
	FailEvery int
	// DownloadErrors is the number of file downloads answered 500 before
	// downloads succeed.
	DownloadErrors int
	// FailValidation is the number of batches that fail their
	// validation (status "failed", with errors, no result files) before
	// batches pass it.
	FailValidation int
	// CreateErrors is the number of batch creations answered 500 AFTER
	// the batch was created (the worst a provider can do: a retry would
	// pay twice).
	CreateErrors int
	// Hook, when set, is called at each phase of the protocol, in the
	// handler, before the server answers, with the request's context
	// (tests kill the client there, and wait for ctx to end to be sure
	// the server saw it go).
	Hook func(ctx context.Context, phase BatchPhase, id string)
}

// BatchPhase names a moment of the protocol for BatchOptions.Hook.
type BatchPhase string

// The phases.
const (
	PhaseUploaded BatchPhase = "uploaded" // a file is stored; id is the file's
	PhaseCreate   BatchPhase = "create"   // a creation arrived; id is the input file's
	PhaseCreated  BatchPhase = "created"  // a batch exists, not yet answered; id is the batch's
	PhasePoll     BatchPhase = "poll"     // a look at a batch in progress; id is the batch's
	PhaseDownload BatchPhase = "download" // a result file's download; id is the file's
)

// BatchStats are the Batch API's counters.
type BatchStats struct {
	Files, Batches, Cancels, Downloads int
	// Lines counts lines run; Served the 200s among them, whose usage is
	// PromptTokens and CompletionTokens (the tally billed at the batch
	// price); Failed the lines answered with an error; Expired those that
	// never ran.
	Lines, Served, Failed, Expired int
	PromptTokens, CompletionTokens int64
	// PerCustomID counts how many times each custom id was run with a
	// 200: a request paid twice shows 2.
	PerCustomID map[string]int
	// MaxRunning is the most batches ever running (created, not ended)
	// at once; MaxFileBytes the largest input file of a batch.
	MaxRunning   int
	MaxFileBytes int
	// Deleted counts files deleted; Stored those still held (inputs,
	// outputs and error files).
	Deleted, Stored int
}

type batchFile struct {
	id, name string
	purpose  string
	data     []byte
	created  int64
	seq      int
}

type batchJob struct {
	obj    map[string]any
	lines  [][]byte
	cancel chan struct{}
	auth   string
}

type batchAPI struct {
	mu      sync.Mutex
	opts    BatchOptions
	files   map[string]*batchFile
	batches map[string]*batchJob
	order   []string // batch ids, oldest first
	n       int
	stats   BatchStats
	wg      sync.WaitGroup
	running int
}

// SetBatch sets the Batch API's options.
func (s *Server) SetBatch(o BatchOptions) {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	s.batch.opts = o
}

// BatchStats returns a copy of the Batch API's counters.
func (s *Server) BatchStats() BatchStats {
	b := &s.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.stats
	out.Stored = len(b.files)
	out.PerCustomID = map[string]int{}
	for k, v := range b.stats.PerCustomID {
		out.PerCustomID[k] = v
	}
	return out
}

// BatchStatus returns the status of every batch, oldest first.
func (s *Server) BatchStatus() []string {
	b := &s.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, id := range b.order {
		out = append(out, b.batches[id].obj["status"].(string))
	}
	return out
}

// WaitBatches waits until no batch is running.
func (s *Server) WaitBatches() { s.batch.wg.Wait() }

func (s *Server) batchRoutes(mux *http.ServeMux) {
	s.batch.files = map[string]*batchFile{}
	s.batch.batches = map[string]*batchJob{}
	s.batch.stats.PerCustomID = map[string]int{}
	mux.HandleFunc("POST /v1/files", s.uploadFile)
	mux.HandleFunc("GET /v1/files", s.listFiles)
	mux.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	mux.HandleFunc("DELETE /v1/files/{id}", s.deleteFile)
	mux.HandleFunc("POST /v1/batches", s.createBatch)
	mux.HandleFunc("GET /v1/batches", s.listBatches)
	mux.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	mux.HandleFunc("POST /v1/batches/{id}/cancel", s.cancelBatch)
}

func (s *Server) hook(ctx context.Context, p BatchPhase, id string) {
	s.batch.mu.Lock()
	h := s.batch.opts.Hook
	s.batch.mu.Unlock()
	if h != nil {
		h(ctx, p, id)
	}
}

func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	if err := r.ParseMultipartForm(256 << 20); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_file", "not a multipart upload: "+err.Error())
		return
	}
	purpose := r.FormValue("purpose")
	f, hdr, err := r.FormFile("file")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_file", "no file: "+err.Error())
		return
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return
	}
	b := &s.batch
	b.mu.Lock()
	b.n++
	id := fmt.Sprintf("file-apitest-%d", b.n)
	b.files[id] = &batchFile{id: id, name: hdr.Filename, purpose: purpose, data: data, created: time.Now().Unix(), seq: b.n}
	b.stats.Files++
	b.mu.Unlock()
	s.hook(r.Context(), PhaseUploaded, id)
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "bytes": len(data), "created_at": time.Now().Unix(),
		"filename": hdr.Filename, "purpose": purpose, "status": "processed"})
}

// listFiles lists files newest first, filtered by purpose, with limit
// and after.
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	b := &s.batch
	b.mu.Lock()
	var all []*batchFile
	for _, f := range b.files {
		if p := q.Get("purpose"); p == "" || f.purpose == p {
			all = append(all, f)
		}
	}
	b.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].seq > all[j].seq })
	start := 0
	if a := q.Get("after"); a != "" {
		for i, f := range all {
			if f.id == a {
				start = i + 1
			}
		}
	}
	data := []map[string]any{}
	for _, f := range all[min(start, len(all)):] {
		if len(data) == limit {
			break
		}
		data = append(data, map[string]any{"id": f.id, "object": "file", "bytes": len(f.data), "created_at": f.created,
			"filename": f.name, "purpose": f.purpose, "status": "processed"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": start+len(data) < len(all)})
}

func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	id := r.PathValue("id")
	s.hook(r.Context(), PhaseDownload, id)
	b := &s.batch
	b.mu.Lock()
	f := b.files[id]
	fail := b.opts.DownloadErrors > 0
	if fail {
		b.opts.DownloadErrors--
	}
	b.stats.Downloads++
	b.mu.Unlock()
	switch {
	case fail:
		writeError(w, http.StatusInternalServerError, "server_error", "", "The server had an error while downloading the file (injected).")
	case f == nil:
		writeError(w, http.StatusNotFound, "invalid_request_error", "file_not_found", "No such File object: "+id)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(f.data)
	}
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	var req struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	// The whole body, so that the server notices a client that goes away
	// (and ends r.Context()) while the hook holds the request.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", err.Error())
		return
	}
	s.hook(r.Context(), PhaseCreate, req.InputFileID)
	if r.Context().Err() != nil {
		return // the client went away before its creation was handled
	}
	b := &s.batch
	b.mu.Lock()
	f := b.files[req.InputFileID]
	if f == nil || f.purpose != "batch" {
		b.mu.Unlock()
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_file", "no batch file "+req.InputFileID)
		return
	}
	if req.Endpoint != "/v1/chat/completions" || req.CompletionWindow == "" {
		b.mu.Unlock()
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", "endpoint and completion_window are required")
		return
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(f.data))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			lines = append(lines, append([]byte(nil), l...))
		}
	}
	b.n++
	id := fmt.Sprintf("batch_apitest_%d", b.n)
	now := time.Now().Unix()
	obj := map[string]any{"id": id, "object": "batch", "endpoint": req.Endpoint, "input_file_id": req.InputFileID,
		"completion_window": req.CompletionWindow, "status": "validating", "created_at": now,
		"expires_at": now + 86400, "metadata": req.Metadata,
		"request_counts": map[string]int{"total": len(lines), "completed": 0, "failed": 0}}
	job := &batchJob{obj: obj, lines: lines, cancel: make(chan struct{}), auth: r.Header.Get("Authorization")}
	b.batches[id] = job
	b.order = append(b.order, id)
	b.stats.Batches++
	b.running++
	b.stats.MaxRunning = max(b.stats.MaxRunning, b.running)
	b.stats.MaxFileBytes = max(b.stats.MaxFileBytes, len(f.data))
	snap := copyObj(obj)
	b.wg.Add(1)
	lie := b.opts.CreateErrors > 0
	if lie {
		b.opts.CreateErrors--
	}
	b.mu.Unlock()
	go s.runBatch(id, job)
	s.hook(r.Context(), PhaseCreated, id)
	if lie {
		writeError(w, http.StatusInternalServerError, "server_error", "", "The server had an error while creating the batch (injected).")
		return
	}
	writeJSON(w, http.StatusOK, snap)
}

func copyObj(o map[string]any) map[string]any {
	out := make(map[string]any, len(o))
	for k, v := range o {
		if m, ok := v.(map[string]int); ok {
			c := map[string]int{}
			for k2, v2 := range m {
				c[k2] = v2
			}
			v = c
		}
		out[k] = v
	}
	return out
}

// runBatch validates, runs and finalizes one batch.
func (s *Server) runBatch(id string, job *batchJob) {
	b := &s.batch
	defer b.wg.Done()
	b.mu.Lock()
	opts := b.opts
	b.mu.Unlock()
	set := func(status string) {
		b.mu.Lock()
		job.obj["status"] = status
		job.obj[status+"_at"] = time.Now().Unix()
		b.mu.Unlock()
	}
	sleep := func(d time.Duration) bool {
		if d <= 0 {
			select {
			case <-job.cancel:
				return false
			default:
				return true
			}
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-job.cancel:
			return false
		}
	}
	var out, errs bytes.Buffer
	end := BatchCompleted
	b.mu.Lock()
	failed := b.opts.FailValidation > 0
	if failed {
		b.opts.FailValidation--
	}
	b.mu.Unlock()
	if failed && sleep(opts.Validation) {
		b.mu.Lock()
		job.obj["status"] = "failed"
		job.obj["failed_at"] = time.Now().Unix()
		job.obj["errors"] = map[string]any{"object": "list", "data": []map[string]any{
			{"code": "token_limit_exceeded", "message": "Enqueued token limit reached (injected).", "line": nil}}}
		b.running--
		b.mu.Unlock()
		return
	}
	if sleep(opts.Validation) {
		set("in_progress")
		for i, line := range job.lines {
			if opts.ExpireAfter > 0 && i >= opts.ExpireAfter {
				for _, l := range job.lines[i:] {
					var in struct {
						CustomID string `json:"custom_id"`
					}
					json.Unmarshal(l, &in)
					fmt.Fprintf(&errs, `{"id":"batch_req_x","custom_id":%q,"response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}`+"\n", in.CustomID)
					b.mu.Lock()
					b.stats.Expired++
					job.obj["request_counts"].(map[string]int)["failed"]++
					b.mu.Unlock()
				}
				end = BatchExpired
				break
			}
			if !sleep(opts.LineDelay) {
				end = BatchCancelled
				break
			}
			s.runLine(job, line, &out, &errs, opts)
		}
	} else {
		end = BatchCancelled
	}
	b.mu.Lock()
	select {
	case <-job.cancel:
		end = BatchCancelled
	default:
	}
	if end != BatchCancelled {
		job.obj["status"] = "finalizing"
	}
	for _, f := range []struct {
		buf *bytes.Buffer
		key string
	}{{&out, "output_file_id"}, {&errs, "error_file_id"}} {
		if f.buf.Len() == 0 {
			continue
		}
		b.n++
		fid := fmt.Sprintf("file-apitest-%d", b.n)
		b.files[fid] = &batchFile{id: fid, purpose: "batch_output", data: f.buf.Bytes()}
		job.obj[f.key] = fid
	}
	job.obj["status"] = end
	job.obj[end+"_at"] = time.Now().Unix()
	b.running--
	b.mu.Unlock()
}

// The statuses a stand-in batch ends in.
const (
	BatchCompleted = "completed"
	BatchExpired   = "expired"
	BatchCancelled = "cancelled"
)

// runLine runs one request through the chat handler and writes its result.
func (s *Server) runLine(job *batchJob, line []byte, out, errs *bytes.Buffer, opts BatchOptions) {
	var in struct {
		CustomID string          `json:"custom_id"`
		Method   string          `json:"method"`
		URL      string          `json:"url"`
		Body     json.RawMessage `json:"body"`
	}
	b := &s.batch
	b.mu.Lock()
	b.stats.Lines++
	n := b.stats.Lines
	b.mu.Unlock()
	if err := json.Unmarshal(line, &in); err != nil || in.URL != "/v1/chat/completions" {
		fmt.Fprintf(errs, `{"id":"batch_req_%d","custom_id":%q,"response":{"status_code":400,"request_id":"req_%d","body":{"error":{"message":"bad line","type":"invalid_request_error","code":"invalid_line"}}},"error":null}`+"\n", n, in.CustomID, n)
		s.countLine(job, false)
		return
	}
	if opts.FailEvery > 0 && n%opts.FailEvery == 0 {
		fmt.Fprintf(errs, `{"id":"batch_req_%d","custom_id":%q,"response":{"status_code":500,"request_id":"req_%d","body":{"error":{"message":"The server had an error processing your request (injected).","type":"server_error","code":null}}},"error":null}`+"\n", n, in.CustomID, n)
		s.countLine(job, false)
		return
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(in.Body))
	req.Header.Set("Authorization", job.auth)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.chat(rec, req)
	body := bytes.TrimSpace(rec.Body.Bytes())
	res, _ := json.Marshal(map[string]any{"id": "batch_req_" + strconv.Itoa(n), "custom_id": in.CustomID,
		"response": map[string]any{"status_code": rec.Code, "request_id": "req_" + strconv.Itoa(n), "body": json.RawMessage(body)},
		"error":    nil})
	ok := rec.Code == http.StatusOK
	if ok {
		var u struct {
			Usage usage `json:"usage"`
		}
		json.Unmarshal(body, &u)
		b.mu.Lock()
		b.stats.Served++
		b.stats.PromptTokens += int64(u.Usage.PromptTokens)
		b.stats.CompletionTokens += int64(u.Usage.CompletionTokens)
		b.stats.PerCustomID[in.CustomID]++
		b.mu.Unlock()
		out.Write(res)
		out.WriteByte('\n')
	} else {
		errs.Write(res)
		errs.WriteByte('\n')
	}
	s.countLine(job, ok)
}

func (s *Server) countLine(job *batchJob, ok bool) {
	b := &s.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	c := job.obj["request_counts"].(map[string]int)
	if ok {
		c["completed"]++
	} else {
		b.stats.Failed++
		c["failed"]++
	}
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	id := r.PathValue("id")
	b := &s.batch
	b.mu.Lock()
	job := b.batches[id]
	var snap map[string]any
	if job != nil {
		snap = copyObj(job.obj)
	}
	b.mu.Unlock()
	if job == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "batch_not_found", "No such Batch: "+id)
		return
	}
	if snap["status"] == "in_progress" {
		s.hook(r.Context(), PhasePoll, id)
	}
	writeJSON(w, http.StatusOK, snap)
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	after := r.URL.Query().Get("after")
	b := &s.batch
	b.mu.Lock()
	ids := append([]string(nil), b.order...)
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 { // newest first
		ids[i], ids[j] = ids[j], ids[i]
	}
	start := 0
	if after != "" {
		for i, id := range ids {
			if id == after {
				start = i + 1
			}
		}
	}
	var data []map[string]any
	for _, id := range ids[min(start, len(ids)):] {
		if len(data) == limit {
			break
		}
		data = append(data, copyObj(b.batches[id].obj))
	}
	more := start+len(data) < len(ids)
	b.mu.Unlock()
	if data == nil {
		data = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": more})
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	id := r.PathValue("id")
	b := &s.batch
	b.mu.Lock()
	job := b.batches[id]
	if job == nil {
		b.mu.Unlock()
		writeError(w, http.StatusNotFound, "invalid_request_error", "batch_not_found", "No such Batch: "+id)
		return
	}
	st := job.obj["status"].(string)
	if st != BatchCompleted && st != BatchExpired && st != BatchCancelled && st != "failed" {
		select {
		case <-job.cancel:
		default:
			close(job.cancel)
			job.obj["status"] = "cancelling"
			b.stats.Cancels++
		}
	}
	snap := copyObj(job.obj)
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, snap)
}

// deleteFile is DELETE /v1/files/{id}: the file is gone, as OpenAI
// deletes it (its batches keep naming it). The answer is openai-go
// v1.12.0's FileDeleted (id, object "file", deleted), what its
// FileService.Delete decodes.
func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized(w, r)
		return
	}
	id := r.PathValue("id")
	b := &s.batch
	b.mu.Lock()
	_, ok := b.files[id]
	if ok {
		delete(b.files, id)
		b.stats.Deleted++
	}
	b.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "file_not_found", "No such File object: "+id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}
