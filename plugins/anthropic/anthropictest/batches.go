package anthropictest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// The Message Batches endpoints, as the API serves them under
// anthropic-version 2023-06-01 (no beta header; checked against
// anthropic-sdk-go v1.60.0 and anthropic-sdk-python v0.121.0):
//
//	POST /v1/messages/batches               {"requests": [{"custom_id", "params"}]}
//	GET  /v1/messages/batches/{id}          the MessageBatch
//	GET  /v1/messages/batches               newest first; limit, after_id, before_id
//	POST /v1/messages/batches/{id}/cancel   in_progress → canceling
//	GET  /v1/messages/batches/{id}/results  JSONL, once ended (the batch's results_url)
//
// As the API does, creation checks the body's shape (1 to MaxBatchRequests
// requests, at most MaxBatchBytes, each custom_id unique and matching
// ^[a-zA-Z0-9_-]{1,64}$, params an object) and each request's params are
// validated while the batch is processed: a request with bad params ends
// errored with an invalid_request_error. request_counts stay at processing
// until the batch ends; results come in an order of their own (the
// reverse of the requests').

// BatchOp names a batch endpoint, for EnqueueBatch.
type BatchOp int

// The batch endpoints.
const (
	OpCreate BatchOp = iota
	OpRetrieve
	OpList
	OpCancel
	OpResults
)

// hooked calls Options.BatchHook before h.
func (s *Server) hooked(op BatchOp, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if hook := s.opts.BatchHook; hook != nil {
			hook(r.Context(), op, r.PathValue("id"))
		}
		h(w, r)
	}
}

// FaultLoseAnswer drops the connection without answering. On OpCreate the
// batch is made first: the client cannot tell whether it was.
const FaultLoseAnswer Fault = 100

// Outcome is how one request of a batch ends.
type Outcome string

// The outcomes.
const (
	Succeeded Outcome = "succeeded"
	// Invalid: errored, invalid_request_error (permanent).
	Invalid Outcome = "invalid"
	// ServerError and Overloaded: errored, api_error and
	// overloaded_error (worth sending again).
	ServerError Outcome = "api_error"
	Overloaded  Outcome = "overloaded_error"
	Expired     Outcome = "expired"
	Canceled    Outcome = "canceled"
)

// BatchTally is what the batch endpoints did and billed. Only succeeded
// requests are billed, at the batch price, for InputTokens and
// OutputTokens (counted as /v1/messages counts them).
type BatchTally struct {
	Batches, Requests                     int64
	Succeeded, Errored, Canceled, Expired int64
	InputTokens, OutputTokens             int64
}

// BatchCreate is a received batch creation.
type BatchCreate struct {
	Header   http.Header
	Requests []BatchRequest
}

// BatchRequest is one request of a batch as received.
type BatchRequest struct {
	CustomID string
	Params   map[string]json.RawMessage
}

// BatchInfo is a batch as the server holds it.
type BatchInfo struct {
	ID, ProcessingStatus string
	CreatedAt            time.Time
	Requests             int
}

var customIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

type batch struct {
	id, status                      string
	seq                             int
	created, ended, cancelInitiated time.Time
	polls                           int
	reqs                            []BatchRequest
	counts                          map[string]int
	results                         []byte // the JSONL, once ended
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now().UTC()
	}
	return time.Now().UTC()
}

// EnqueueBatch makes the next requests to the endpoint op meet these
// faults, in order: FaultRateLimit, FaultOverloaded, FaultServerError and
// FaultBadRequest answer so (OpCreate makes no batch), FaultHang answers
// nothing until the client gives up, FaultLoseAnswer drops the connection
// (OpCreate: after making the batch), FaultTruncated on OpResults sends
// half the results and drops the connection.
func (s *Server) EnqueueBatch(op BatchOp, f ...Fault) {
	s.mu.Lock()
	if s.batchScript == nil {
		s.batchScript = map[BatchOp][]Fault{}
	}
	s.batchScript[op] = append(s.batchScript[op], f...)
	s.mu.Unlock()
}

// FailLines makes the next n requests processed (in any batch, in the
// order of their batch) end with o, before Options.LineOutcome is asked.
func (s *Server) FailLines(o Outcome, n int) {
	s.mu.Lock()
	for range n {
		s.lineScript = append(s.lineScript, o)
	}
	s.mu.Unlock()
}

// EndBatches ends every batch in progress now, as if it had been polled
// enough.
func (s *Server) EndBatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		if b.status != "ended" {
			s.end(b)
		}
	}
}

// BatchTally returns what the batch endpoints did and billed.
func (s *Server) BatchTally() BatchTally {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tally
}

// LastBatch is the last batch creation received that made a batch.
func (s *Server) LastBatch() (BatchCreate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastBatch == nil {
		return BatchCreate{}, false
	}
	return *s.lastBatch, true
}

// Batches lists the batches made, oldest first.
func (s *Server) Batches() []BatchInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BatchInfo, len(s.batchOrder))
	for i, b := range s.batchOrder {
		out[i] = BatchInfo{ID: b.id, ProcessingStatus: b.status, CreatedAt: b.created, Requests: len(b.reqs)}
	}
	return out
}

func (s *Server) batchFault(op BatchOp) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.batchScript[op]
	if len(q) == 0 {
		return FaultNone
	}
	s.batchScript[op] = q[1:]
	return q[0]
}

// fault answers an injected fault other than FaultLoseAnswer and
// FaultTruncated; true when it answered.
func (s *Server) fault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	retry := strconv.Itoa(int(s.opts.RetryAfter.Seconds() + 0.999))
	switch f {
	case FaultRateLimit:
		w.Header().Set("retry-after", retry)
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "Number of requests has exceeded your rate limit")
	case FaultOverloaded:
		w.Header().Set("retry-after", retry)
		writeError(w, 529, "overloaded_error", "Overloaded")
	case FaultServerError:
		writeError(w, http.StatusInternalServerError, "api_error", "Internal server error")
	case FaultBadRequest:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "injected bad request")
	case FaultHang:
		<-r.Context().Done()
	default:
		return false
	}
	return true
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	f := s.batchFault(OpCreate)
	if f != FaultLoseAnswer && s.fault(w, r, f) {
		return
	}
	raw, err := readAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBatchBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("Request exceeds the maximum allowed number of bytes (%d)", s.opts.MaxBatchBytes))
		return
	}
	reqs, e := parseBatch(raw, s.opts.MaxBatchRequests)
	if e != nil {
		writeError(w, e.status, e.typ, e.msg)
		return
	}
	s.mu.Lock()
	s.seq++
	now := s.now()
	b := &batch{id: fmt.Sprintf("msgbatch_01%022d", s.seq), seq: s.seq, status: "in_progress", created: now, reqs: reqs}
	if s.batches == nil {
		s.batches = map[string]*batch{}
	}
	s.batches[b.id] = b
	s.batchOrder = append(s.batchOrder, b)
	s.tally.Batches++
	s.tally.Requests += int64(len(reqs))
	h := r.Header.Clone()
	h.Del("x-api-key")
	s.lastBatch = &BatchCreate{Header: h, Requests: reqs}
	obj := s.object(b)
	s.mu.Unlock()
	if f == FaultLoseAnswer {
		drop(w)
		return
	}
	if d := s.opts.BatchCreateDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	writeJSON(w, obj)
}

func readAll(r interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// parseBatch checks a creation's body as the API does when it makes the
// batch; the params themselves are checked when the batch runs.
func parseBatch(raw []byte, maxRequests int) ([]BatchRequest, *apiError) {
	bad := func(msg string) ([]BatchRequest, *apiError) {
		return nil, &apiError{http.StatusBadRequest, "invalid_request_error", msg}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return bad("body is not a JSON object: " + err.Error())
	}
	for k := range top {
		if k != "requests" {
			return bad(k + ": Extra inputs are not permitted")
		}
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(top["requests"], &items); err != nil || top["requests"] == nil {
		return bad("requests: Field required (a list of {custom_id, params})")
	}
	if len(items) == 0 || len(items) > maxRequests {
		return bad(fmt.Sprintf("requests: a batch holds 1 to %d requests, not %d", maxRequests, len(items)))
	}
	seen := map[string]bool{}
	out := make([]BatchRequest, len(items))
	for i, it := range items {
		for k := range it {
			if k != "custom_id" && k != "params" {
				return bad(fmt.Sprintf("requests.%d.%s: Extra inputs are not permitted", i, k))
			}
		}
		var id string
		if err := json.Unmarshal(it["custom_id"], &id); err != nil || !customIDRE.MatchString(id) {
			return bad(fmt.Sprintf("requests.%d.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'", i))
		}
		if seen[id] {
			return bad(fmt.Sprintf("requests.%d.custom_id: custom_id %q is not unique in the batch", i, id))
		}
		seen[id] = true
		var params map[string]json.RawMessage
		if err := json.Unmarshal(it["params"], &params); err != nil || params == nil {
			return bad(fmt.Sprintf("requests.%d.params: Input should be an object", i))
		}
		out[i] = BatchRequest{CustomID: id, Params: params}
	}
	return out, nil
}

// batchID finds the batch of the path's id, after a fault; nil when it
// answered.
func (s *Server) batchFor(w http.ResponseWriter, r *http.Request, op BatchOp) (*batch, Fault) {
	if !s.check(w, r) {
		return nil, FaultNone
	}
	f := s.batchFault(op)
	if f == FaultLoseAnswer {
		drop(w)
		return nil, f
	}
	if f != FaultTruncated && s.fault(w, r, f) {
		return nil, f
	}
	id := r.PathValue("id")
	s.mu.Lock()
	b := s.batches[id]
	s.mu.Unlock()
	if b == nil {
		writeError(w, http.StatusNotFound, "not_found_error", "message_batch_id: no Message Batch "+strconv.Quote(id))
	}
	return b, f
}

func (s *Server) retrieveBatch(w http.ResponseWriter, r *http.Request) {
	b, _ := s.batchFor(w, r, OpRetrieve)
	if b == nil {
		return
	}
	s.mu.Lock()
	switch b.status {
	case "canceling":
		s.end(b)
	case "in_progress":
		b.polls++
		if s.opts.BatchDuration <= 0 && b.polls > s.opts.BatchPolls {
			s.end(b)
		}
	}
	s.expireDue()
	obj := s.object(b)
	s.mu.Unlock()
	writeJSON(w, obj)
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	b, _ := s.batchFor(w, r, OpCancel)
	if b == nil {
		return
	}
	s.mu.Lock()
	s.expireDue()
	if b.status == "in_progress" {
		b.status, b.cancelInitiated = "canceling", s.now()
	}
	obj := s.object(b)
	s.mu.Unlock()
	writeJSON(w, obj)
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	if !s.check(w, r) {
		return
	}
	if f := s.batchFault(OpList); f == FaultLoseAnswer {
		drop(w)
		return
	} else if s.fault(w, r, f) {
		return
	}
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "limit: Input should be between 1 and 1000")
			return
		}
		limit = n
	}
	after, before := q.Get("after_id"), q.Get("before_id")
	s.mu.Lock()
	s.expireDue()
	// Newest first.
	all := make([]*batch, len(s.batchOrder))
	for i, b := range s.batchOrder {
		all[len(all)-1-i] = b
	}
	pos := func(id string) int {
		for i, b := range all {
			if b.id == id {
				return i
			}
		}
		return -1
	}
	lo, hi := 0, len(all)
	switch {
	case after != "" && before != "":
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "invalid_request_error", "after_id and before_id cannot both be given")
		return
	case after != "":
		i := pos(after)
		if i < 0 {
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "invalid_request_error", "after_id: no Message Batch "+strconv.Quote(after))
			return
		}
		lo, hi = i+1, min(len(all), i+1+limit)
	case before != "":
		i := pos(before)
		if i < 0 {
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "invalid_request_error", "before_id: no Message Batch "+strconv.Quote(before))
			return
		}
		lo, hi = max(0, i-limit), i
	default:
		hi = min(len(all), limit)
	}
	page := all[lo:hi]
	data := make([]map[string]any, len(page))
	for i, b := range page {
		data[i] = s.object(b)
	}
	more := hi < len(all)
	if before != "" {
		more = lo > 0
	}
	var first, last any
	if len(page) > 0 {
		first, last = page[0].id, page[len(page)-1].id
	}
	s.mu.Unlock()
	writeJSON(w, map[string]any{"data": data, "has_more": more, "first_id": first, "last_id": last})
}

func (s *Server) batchResults(w http.ResponseWriter, r *http.Request) {
	b, f := s.batchFor(w, r, OpResults)
	if b == nil {
		return
	}
	s.mu.Lock()
	s.expireDue()
	status, res := b.status, b.results
	s.mu.Unlock()
	if status != "ended" {
		writeError(w, http.StatusBadRequest, "invalid_request_error",
			fmt.Sprintf("Message Batch %s has not finished processing: results are available once its processing_status is ended", b.id))
		return
	}
	w.Header().Set("content-type", "application/x-jsonl")
	if f == FaultTruncated {
		w.Header().Set("content-length", strconv.Itoa(len(res)))
		w.WriteHeader(http.StatusOK)
		w.Write(res[:len(res)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		drop(w)
		return
	}
	w.Write(res)
}

// expireDue ends the batches whose BatchDuration has passed; s.mu is
// held.
func (s *Server) expireDue() {
	if s.opts.BatchDuration <= 0 {
		return
	}
	now := s.now()
	for _, b := range s.batchOrder {
		if b.status != "ended" && now.Sub(b.created) >= s.opts.BatchDuration {
			s.end(b)
		}
	}
}

// end processes a batch: each request's result, the tally, the JSONL;
// s.mu is held.
func (s *Server) end(b *batch) {
	b.counts = map[string]int{}
	lines := make([][]byte, len(b.reqs))
	for i, rq := range b.reqs {
		var o Outcome
		switch {
		case b.status == "canceling" && i >= s.opts.CancelCompletes:
			o = Canceled
		case len(s.lineScript) > 0:
			o, s.lineScript = s.lineScript[0], s.lineScript[1:]
		case s.opts.LineOutcome != nil:
			o = s.opts.LineOutcome(rq.CustomID)
		}
		var result map[string]any
		errored := func(typ, msg string) {
			result = map[string]any{"type": "errored", "error": map[string]any{"type": "error",
				"error": map[string]string{"type": typ, "message": msg}, "request_id": fmt.Sprintf("req_%s_%d", b.id, i)}}
		}
		switch o {
		case Invalid:
			errored("invalid_request_error", "injected invalid request")
		case ServerError:
			errored("api_error", "Internal server error")
		case Overloaded:
			errored("overloaded_error", "Overloaded")
		case Expired:
			result = map[string]any{"type": "expired"}
		case Canceled:
			result = map[string]any{"type": "canceled"}
		default:
			bd, texts, e := s.validate(rq.Params, true)
			if e != nil {
				errored(e.typ, e.msg)
				break
			}
			text, stop, in, out := s.reply(bd, texts, false)
			s.tally.InputTokens += int64(in)
			s.tally.OutputTokens += int64(out)
			s.msgSeq++
			result = map[string]any{"type": "succeeded",
				"message": messageObject(fmt.Sprintf("msg_b%06d", s.msgSeq), bd.Model, text, stop, in, out)}
		}
		typ := result["type"].(string)
		b.counts[typ]++
		switch typ {
		case "succeeded":
			s.tally.Succeeded++
		case "errored":
			s.tally.Errored++
		case "canceled":
			s.tally.Canceled++
		case "expired":
			s.tally.Expired++
		}
		lines[len(lines)-1-i], _ = json.Marshal(map[string]any{"custom_id": rq.CustomID, "result": result})
	}
	var buf bytes.Buffer
	for _, l := range lines {
		buf.Write(l)
		buf.WriteByte('\n')
	}
	b.results = buf.Bytes()
	b.status, b.ended = "ended", s.now()
}

func stamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.RFC3339Nano)
}

// object is the MessageBatch; s.mu is held.
func (s *Server) object(b *batch) map[string]any {
	counts := map[string]int{"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
	if b.status == "ended" {
		for k, v := range b.counts {
			counts[k] = v
		}
	} else {
		counts["processing"] = len(b.reqs)
	}
	var results any
	if b.status == "ended" {
		results = s.URL() + "/v1/messages/batches/" + b.id + "/results"
	}
	return map[string]any{
		"id": b.id, "type": "message_batch", "processing_status": b.status, "request_counts": counts,
		"created_at": stamp(b.created), "expires_at": stamp(b.created.Add(24 * time.Hour)),
		"ended_at": stamp(b.ended), "cancel_initiated_at": stamp(b.cancelInitiated), "archived_at": nil,
		"results_url": results,
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("content-type", "application/json")
	json.NewEncoder(w).Encode(v)
}
