package anthropic

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/agorabench/agora/plugins/sdk"
)

// The Message Batches API, as anthropic-sdk-go v1.60.0 and
// anthropic-sdk-python v0.121.0 call it (generally available: no beta
// header under anthropic-version 2023-06-01).

// Batch limits of the API: requests per batch, and bytes of a creation's
// body. Anthropic's batch-processing guide ("Batch limitations",
// docs.anthropic.com/en/docs/build-with-claude/batch-processing): a batch
// holds 100,000 requests or 256 MB, whichever comes first; 256 MB is read
// as 256,000,000 bytes, the smaller of its two readings.
const (
	MaxBatchRequests = 100_000
	MaxBatchBytes    = 256_000_000
)

// BatchDiscount is the fraction of the price batch requests save.
const BatchDiscount = 0.5

// Default bounds on a batch's results (Provider.MaxResultLine and
// MaxResultBytes).
const (
	DefaultMaxResultLine  = 32 << 20
	DefaultMaxResultBytes = 64 << 30
)

// findSlack is how far before FindBatch's since it still looks: the
// API's clock and agora's may disagree.
const findSlack = 15 * time.Minute

var _ sdk.Batcher = (*Provider)(nil)

var (
	apiCustomIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	// resultIDRE is a custom_id as SubmitBatch makes them: agora's key,
	// "_", agora's custom id.
	resultIDRE = regexp.MustCompile(`^([A-Za-z0-9_-]{1,40})_([a-z0-9-]{1,20})$`)
	batchIDRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)
)

// BatchLimits are the API's.
func (p *Provider) BatchLimits() sdk.BatchLimits {
	return sdk.BatchLimits{MaxRequests: MaxBatchRequests, MaxBytes: MaxBatchBytes}
}

// batchObject is a MessageBatch.
type batchObject struct {
	ID               string `json:"id"`
	ProcessingStatus string `json:"processing_status"`
	RequestCounts    struct {
		Processing int `json:"processing"`
		Succeeded  int `json:"succeeded"`
		Errored    int `json:"errored"`
		Canceled   int `json:"canceled"`
		Expired    int `json:"expired"`
	} `json:"request_counts"`
	CreatedAt  time.Time  `json:"created_at"`
	ArchivedAt *time.Time `json:"archived_at"`
	ResultsURL *string    `json:"results_url"`
}

func (o batchObject) total() int {
	c := o.RequestCounts
	return c.Processing + c.Succeeded + c.Errored + c.Canceled + c.Expired
}

func (o batchObject) ended() bool { return o.ProcessingStatus == "ended" }

func (o batchObject) status() sdk.BatchStatus {
	c := o.RequestCounts
	return sdk.BatchStatus{ID: o.ID, Status: o.ProcessingStatus, Ended: o.ended(), Total: o.total(),
		Completed: c.Succeeded, Failed: c.Errored + c.Canceled + c.Expired}
}

// check refuses an answer that is not a batch.
func (o batchObject) check() error {
	if o.ID == "" || o.ProcessingStatus == "" {
		return &sdk.Error{Message: "malformed Message Batch: no id or processing_status", Retryable: true}
	}
	return nil
}

// SubmitBatch makes one Message Batch (POST /v1/messages/batches), once.
// Each request's params are what Complete would send; its custom_id is
// "KEY_CUSTOMID", for the API keeps no metadata and FindBatch finds a
// batch by its results.
func (p *Provider) SubmitBatch(ctx context.Context, b sdk.BatchSubmission) (sdk.BatchStatus, error) {
	if p.Key == "" {
		return sdk.BatchStatus{}, errors.New(noKey)
	}
	if n := len(b.Items); n == 0 || n > MaxBatchRequests {
		return sdk.BatchStatus{}, fmt.Errorf("a Message Batch holds 1 to %d requests, not %d", MaxBatchRequests, n)
	}
	type item struct {
		CustomID string         `json:"custom_id"`
		Params   map[string]any `json:"params"`
	}
	items := make([]item, len(b.Items))
	for i, it := range b.Items {
		id := b.Key + "_" + it.CustomID
		if m := resultIDRE.FindStringSubmatch(id); m == nil || m[1] != b.Key || !apiCustomIDRE.MatchString(id) {
			return sdk.BatchStatus{}, fmt.Errorf("batch key %q and custom id %q do not make a custom_id of at most 64 characters of [a-zA-Z0-9_-]", b.Key, it.CustomID)
		}
		req := it.Request
		if req.Model == "" {
			req.Model = b.Model
		}
		items[i] = item{CustomID: id, Params: messagesBody(req)}
	}
	body, err := json.Marshal(map[string]any{"requests": items})
	if err != nil {
		return sdk.BatchStatus{}, fmt.Errorf("encode the batch: %v", err)
	}
	if len(body) > MaxBatchBytes {
		return sdk.BatchStatus{}, fmt.Errorf("the batch's %d bytes are more than a Message Batch takes (%d)", len(body), MaxBatchBytes)
	}
	var o batchObject
	if err := p.do(ctx, http.MethodPost, p.BaseURL+"/v1/messages/batches", body, &o); err != nil {
		return sdk.BatchStatus{}, err
	}
	if err := o.check(); err != nil {
		return sdk.BatchStatus{}, err
	}
	return o.status(), nil
}

// batchURL is the address of the batch id.
func (p *Provider) batchURL(id string) (string, error) {
	if !batchIDRE.MatchString(id) {
		return "", fmt.Errorf("batch id %q is not a Message Batch id", id)
	}
	if p.Key == "" {
		return "", errors.New(noKey)
	}
	return p.BaseURL + "/v1/messages/batches/" + id, nil
}

func (p *Provider) batch(ctx context.Context, id string) (batchObject, error) {
	var o batchObject
	u, err := p.batchURL(id)
	if err != nil {
		return o, err
	}
	if err := p.do(ctx, http.MethodGet, u, nil, &o); err != nil {
		return o, err
	}
	return o, o.check()
}

// GetBatch retrieves a batch (GET /v1/messages/batches/ID).
func (p *Provider) GetBatch(ctx context.Context, id string) (sdk.BatchStatus, error) {
	o, err := p.batch(ctx, id)
	if err != nil {
		return sdk.BatchStatus{}, err
	}
	return o.status(), nil
}

// CancelBatch asks the API to cancel a batch (POST
// /v1/messages/batches/ID/cancel): it goes on canceling, then ends with
// what it completed. A batch that ended already is returned as it is.
func (p *Provider) CancelBatch(ctx context.Context, id string) (sdk.BatchStatus, error) {
	u, err := p.batchURL(id)
	if err != nil {
		return sdk.BatchStatus{}, err
	}
	var o batchObject
	err = p.do(ctx, http.MethodPost, u+"/cancel", nil, &o)
	var se *sdk.Error
	if errors.As(err, &se) && se.Status/100 == 4 && !se.Retryable {
		// Refused: perhaps because it ended meanwhile.
		if cur, gerr := p.batch(ctx, id); gerr == nil && cur.ended() {
			return cur.status(), nil
		}
	}
	if err != nil {
		return sdk.BatchStatus{}, err
	}
	if err := o.check(); err != nil {
		return sdk.BatchStatus{}, err
	}
	return o.status(), nil
}

// FindBatch looks for the batch SubmitBatch made with key: it lists the
// batches newest first back to since, and takes those of count requests.
// An ended one is the batch if its results' custom_ids start with
// "KEY_". When none is, but one of count requests is still in progress,
// it cannot tell (its results are not there yet): Unknown. The batches
// agora knows (known) are skipped: they are not the one it asks for.
func (p *Provider) FindBatch(ctx context.Context, key string, count int, since time.Time, known ...string) (sdk.BatchStatus, sdk.Found, string, error) {
	skip := make(map[string]bool, len(known))
	for _, id := range known {
		skip[id] = true
	}
	if p.Key == "" {
		return sdk.BatchStatus{}, sdk.Absent, "", errors.New(noKey)
	}
	cutoff := since.Add(-findSlack)
	var pending *batchObject
	after := ""
	for pages := 0; ; pages++ {
		if pages == 1000 {
			return sdk.BatchStatus{}, sdk.Absent, "", fmt.Errorf("listed 1000 pages of Message Batches without reaching %s", cutoff.Format(time.RFC3339))
		}
		u := p.BaseURL + "/v1/messages/batches?limit=100"
		if after != "" {
			u += "&after_id=" + url.QueryEscape(after)
		}
		var page struct {
			Data    []batchObject `json:"data"`
			HasMore bool          `json:"has_more"`
			LastID  *string       `json:"last_id"`
		}
		if err := p.do(ctx, http.MethodGet, u, nil, &page); err != nil {
			return sdk.BatchStatus{}, sdk.Absent, "", err
		}
		done := false
		for _, o := range page.Data {
			if err := o.check(); err != nil {
				return sdk.BatchStatus{}, sdk.Absent, "", err
			}
			if o.CreatedAt.IsZero() {
				return sdk.BatchStatus{}, sdk.Absent, "", &sdk.Error{Message: "malformed Message Batch " + o.ID + ": no created_at", Retryable: true}
			}
			if o.CreatedAt.Before(cutoff) {
				done = true // newest first: the rest are older
				break
			}
			if o.total() != count || skip[o.ID] {
				continue // not it, or agora's own batch under another key
			}
			if !o.ended() {
				if pending == nil {
					pending = &o
				}
				continue
			}
			mine, err := p.madeWith(ctx, o, key)
			if err != nil {
				return sdk.BatchStatus{}, sdk.Absent, "", err
			}
			if mine {
				return o.status(), sdk.Present, "", nil
			}
		}
		if done || !page.HasMore || page.LastID == nil || *page.LastID == "" || *page.LastID == after {
			break
		}
		after = *page.LastID
	}
	if pending != nil {
		return sdk.BatchStatus{}, sdk.Unknown, fmt.Sprintf("batch %s of %d requests is still %s; its results will say whether it is this one",
			pending.ID, count, strings.ReplaceAll(pending.ProcessingStatus, "_", " ")), nil
	}
	return sdk.BatchStatus{}, sdk.Absent, "", nil
}

// madeWith reads an ended batch's first result: is its custom_id one of
// key's?
func (p *Provider) madeWith(ctx context.Context, o batchObject, key string) (bool, error) {
	if o.ResultsURL == nil || *o.ResultsURL == "" {
		// Archived: its results are gone, and so is any use for them.
		sdk.Log.Warn("a batch of the same size has no results to check", "batch", o.ID)
		return false, nil
	}
	errFound := errors.New("found")
	mine := false
	err := p.results(ctx, *o.ResultsURL, o.total(), func(_ int, raw []byte) error {
		// Another program's batch may have custom_ids of any form.
		var l struct {
			CustomID string `json:"custom_id"`
		}
		json.Unmarshal(raw, &l)
		m := resultIDRE.FindStringSubmatch(l.CustomID)
		mine = m != nil && m[1] == key
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return false, err
	}
	return mine, nil
}

// BatchResults reads an ended batch's results from its results_url,
// which must be on the API's own address: the key goes nowhere else.
func (p *Provider) BatchResults(ctx context.Context, id string, fn func(sdk.BatchResult) error) error {
	o, err := p.batch(ctx, id)
	if err != nil {
		return err
	}
	if !o.ended() {
		return &sdk.Error{Message: fmt.Sprintf("batch %s is %s: its results come once it has ended", id, o.ProcessingStatus), Retryable: true}
	}
	if o.ResultsURL == nil || *o.ResultsURL == "" {
		return fmt.Errorf("batch %s has ended but has no results_url (archived results are gone)", id)
	}
	key := ""
	seen := map[string]bool{}
	return p.results(ctx, *o.ResultsURL, o.total(), func(n int, raw []byte) error {
		l, err := parseResult(raw)
		if err != nil {
			return fmt.Errorf("results line %d: %v", n, err)
		}
		cid := l.key + "_" + l.result.CustomID
		if seen[cid] {
			return fmt.Errorf("results line %d: custom_id %s came twice", n, cid)
		}
		seen[cid] = true
		if key == "" {
			key = l.key
		} else if l.key != key {
			return fmt.Errorf("batch %s's results mix custom_ids of two batches (%s and %s)", id, key, l.key)
		}
		return fn(l.result)
	})
}

// resultLine is one line of a batch's results.
type resultLine struct {
	key    string
	result sdk.BatchResult
}

// results streams the lines of the JSONL at u, at most max of them and
// each bounded, to fn with their line numbers.
func (p *Provider) results(ctx context.Context, u string, max int, fn func(n int, line []byte) error) error {
	if err := p.sameOrigin(u); err != nil {
		return err
	}
	res, err := p.send(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	maxLine, maxBytes := p.MaxResultLine, p.MaxResultBytes
	if maxLine <= 0 {
		maxLine = DefaultMaxResultLine
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxResultBytes
	}
	body := &capped{r: res.Body, left: maxBytes}
	rd := bufio.NewReaderSize(body, 64<<10)
	count := 0
	for n := 1; ; n++ {
		line, err := readLine(rd, maxLine)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil
		}
		switch {
		case errors.Is(err, errTooLong):
			return fmt.Errorf("results line %d is longer than %d bytes", n, maxLine)
		case errors.Is(err, errCapped):
			return fmt.Errorf("the results are longer than %d bytes", maxBytes)
		case err != nil && !errors.Is(err, io.EOF):
			return sdk.Retryable(fmt.Errorf("reading the results (line %d): %v", n, redact(err.Error(), p.Key)))
		}
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		if count++; count > max {
			return fmt.Errorf("the results have more lines than the batch's %d requests", max)
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
}

// sameOrigin refuses a URL that is not on the scheme and host of the
// base URL.
func (p *Provider) sameOrigin(u string) error {
	base, err := url.Parse(p.BaseURL)
	if err != nil {
		return fmt.Errorf("base URL %s: %v", p.BaseURL, err)
	}
	got, err := url.Parse(u)
	if err != nil || !strings.EqualFold(got.Scheme, base.Scheme) || !strings.EqualFold(got.Host, base.Host) {
		return fmt.Errorf("results_url %q is not on %s://%s: refusing to send the API key there", u, base.Scheme, base.Host)
	}
	return nil
}

var (
	errTooLong = errors.New("line too long")
	errCapped  = errors.New("body too long")
)

// capped reads at most left bytes, then fails.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(b []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a body of exactly the cap from a longer one.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, errCapped
		}
		return 0, err
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

// readLine reads one line without its newline, at most max bytes.
func readLine(rd *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := rd.ReadSlice('\n')
		if err == nil {
			chunk = chunk[:len(chunk)-1]
		}
		if len(line)+len(chunk) > max {
			return nil, errTooLong
		}
		line = append(line, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// parseResult checks and maps one result line.
func parseResult(raw []byte) (resultLine, error) {
	var l struct {
		CustomID string `json:"custom_id"`
		Result   struct {
			Type    string          `json:"type"`
			Message *messageOut     `json:"message"`
			Error   json.RawMessage `json:"error"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return resultLine{}, fmt.Errorf("not a result: %v", err)
	}
	m := resultIDRE.FindStringSubmatch(l.CustomID)
	if m == nil {
		return resultLine{}, fmt.Errorf("custom_id %q is not one agora made (KEY_ID)", l.CustomID)
	}
	out := resultLine{key: m[1], result: sdk.BatchResult{CustomID: m[2]}}
	switch l.Result.Type {
	case "succeeded":
		if l.Result.Message == nil || l.Result.Message.ID == "" {
			return resultLine{}, fmt.Errorf("custom_id %s succeeded without a message", l.CustomID)
		}
		out.result.Completion = l.Result.Message.completion()
	case "errored":
		out.result.Err = erroredResult(l.Result.Error)
	case "canceled":
		out.result.Err = &sdk.Error{Message: "the request was canceled with its batch before it ran (not billed)", Retryable: true, Code: "canceled"}
	case "expired":
		out.result.Err = &sdk.Error{Message: "the batch expired (24 hours) before the request ran (not billed)", Retryable: true, Code: "expired"}
	default:
		return resultLine{}, fmt.Errorf("custom_id %s: result type %q is none of succeeded, errored, canceled, expired", l.CustomID, l.Result.Type)
	}
	return out, nil
}

// errorStatus is the HTTP status the API answers each error type with.
var errorStatus = map[string]int{
	"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
	"not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
	"timeout_error": 504, "overloaded_error": 529,
}

// erroredResult maps an errored request's error (an error response,
// {"type": "error", "error": {"type", "message"}}): the API's failures
// are worth sending again, the request's own are not.
func erroredResult(raw json.RawMessage) *sdk.Error {
	var e struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Error   *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(raw, &e)
	typ, msg := e.Type, e.Message
	if e.Error != nil {
		typ, msg = e.Error.Type, e.Error.Message
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	out := &sdk.Error{Code: typ, Status: errorStatus[typ], Message: "errored: " + typ}
	if msg != "" {
		out.Message += ": " + msg
	}
	switch typ {
	case "api_error", "overloaded_error", "rate_limit_error", "timeout_error":
		out.Retryable = true
	}
	return out
}
