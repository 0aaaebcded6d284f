package api_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agorabench/agora/executors/api"
	"github.com/agorabench/agora/executors/api/apitest"
)

// waitBatch polls a batch until it ends.
func waitBatch(t *testing.T, c *api.Client, id string) api.Batch {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := c.GetBatch(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if api.BatchEnded(b.Status) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s still %s", id, b.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// results downloads and reads a batch's output and error files.
func results(t *testing.T, c *api.Client, b api.Batch) map[string]api.BatchResult {
	t.Helper()
	out := map[string]api.BatchResult{}
	for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
		if id == "" {
			continue
		}
		path := filepath.Join(t.TempDir(), id)
		if err := c.DownloadFile(context.Background(), id, path, 1<<20); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = c.ReadBatchResults(f, func(r api.BatchResult) error {
			if _, dup := out[r.ID]; dup {
				return fmt.Errorf("%s twice", r.ID)
			}
			out[r.ID] = r
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func upload(t *testing.T, c *api.Client, n int) string {
	t.Helper()
	var jsonl []byte
	for i := range n {
		l, err := c.BatchLine(api.BatchRequest{ID: fmt.Sprintf("r%d", i), Messages: []api.Message{{Role: "user", Content: fmt.Sprintf("question %d", i)}}})
		if err != nil {
			t.Fatal(err)
		}
		jsonl = append(jsonl, l...)
	}
	id, err := c.UploadBatch(context.Background(), "agora-test.jsonl", jsonl)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBatchRoundTrip: upload, create with metadata, poll through slow
// validation, download with 5xx answers first, and read every line.
func TestBatchRoundTrip(t *testing.T) {
	s := newServer(t, apitest.Options{})
	s.SetBatch(apitest.BatchOptions{Validation: 50 * time.Millisecond, FailEvery: 4, DownloadErrors: 2})
	c := newClient(t, testConfig(t, s))
	file := upload(t, c, 8)
	b, err := c.CreateBatch(context.Background(), file, "24h", map[string]string{"agora_batch": "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != api.BatchValidating || b.Total != 8 {
		t.Fatalf("new batch %+v", b)
	}
	size := int64(s.BatchStats().MaxFileBytes)
	if id, ok, err := c.FindUpload(context.Background(), "agora-test.jsonl", size, time.Now().Add(-time.Hour)); err != nil || !ok || id != file {
		t.Fatalf("FindUpload = %q %v %v, want %s", id, ok, err, file)
	}
	if _, ok, _ := c.FindUpload(context.Background(), "agora-test.jsonl", size+1, time.Now().Add(-time.Hour)); ok {
		t.Fatal("FindUpload found a file of another size")
	}
	found, ok, err := c.FindBatch(context.Background(), "agora_batch", "k1", time.Now().Add(-time.Hour))
	if err != nil || !ok || found.ID != b.ID {
		t.Fatalf("FindBatch = %+v %v %v, want %s", found, ok, err, b.ID)
	}
	if _, ok, _ := c.FindBatch(context.Background(), "agora_batch", "k2", time.Now().Add(-time.Hour)); ok {
		t.Fatal("FindBatch found a batch that was never created")
	}
	b = waitBatch(t, c, b.ID)
	if b.Status != api.BatchCompleted || b.Completed != 6 || b.Failed != 2 {
		t.Fatalf("ended %+v", b)
	}
	rs := results(t, c, b)
	if len(rs) != 8 {
		t.Fatalf("%d results, want 8", len(rs))
	}
	failed := 0
	for id, r := range rs {
		switch {
		case r.Err != nil:
			failed++
			if r.Err.Permanent || r.Err.Status != 500 {
				t.Errorf("%s: %+v, want a retryable 500", id, r.Err)
			}
		case !strings.HasPrefix(r.Response.Text, "echo: question") || r.Response.Usage.PromptTokens == 0:
			t.Errorf("%s: %+v", id, r.Response)
		}
	}
	st := s.BatchStats()
	if failed != 2 || st.Served != 6 || st.Downloads != 2+2 {
		t.Errorf("failed %d, stats %+v", failed, st)
	}
	// Deleted: the input, the output and the error file; a second
	// deletion of a file already gone is no error.
	for _, id := range []string{file, b.OutputFileID, b.ErrorFileID, file} {
		if err := c.DeleteFile(context.Background(), id); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	}
	if st := s.BatchStats(); st.Stored != 0 || st.Deleted != 3 {
		t.Errorf("after deleting: %d files stored, %d deleted", st.Stored, st.Deleted)
	}
}

// TestBatchExpiryAndCancel: lines past the window are retryable errors;
// a cancelled batch keeps what it completed.
func TestBatchExpiryAndCancel(t *testing.T) {
	s := newServer(t, apitest.Options{})
	s.SetBatch(apitest.BatchOptions{ExpireAfter: 3})
	c := newClient(t, testConfig(t, s))
	b, err := c.CreateBatch(context.Background(), upload(t, c, 5), "24h", nil)
	if err != nil {
		t.Fatal(err)
	}
	b = waitBatch(t, c, b.ID)
	rs := results(t, c, b)
	expired := 0
	for _, r := range rs {
		if r.Err != nil && r.Err.Code == "batch_expired" && !r.Err.Permanent {
			expired++
		}
	}
	if b.Status != api.BatchExpired || expired != 2 || len(rs) != 5 {
		t.Fatalf("%+v: %d expired of %d", b, expired, len(rs))
	}

	s.SetBatch(apitest.BatchOptions{LineDelay: 30 * time.Millisecond})
	b, err = c.CreateBatch(context.Background(), upload(t, c, 50), "24h", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if b, err = c.CancelBatch(context.Background(), b.ID); err != nil || b.Status != api.BatchCancelling {
		t.Fatalf("cancel: %+v %v", b, err)
	}
	b = waitBatch(t, c, b.ID)
	rs = results(t, c, b)
	if b.Status != api.BatchCancelled || len(rs) == 0 || len(rs) >= 50 || b.Completed != len(rs) {
		t.Fatalf("cancelled %+v with %d results", b, len(rs))
	}
}

// TestBatchCreateFailure: a creation refused is an error naming the
// generator, never retried.
func TestBatchCreateFailure(t *testing.T) {
	s := newServer(t, apitest.Options{})
	c := newClient(t, testConfig(t, s))
	_, err := c.CreateBatch(context.Background(), "file-missing", "24h", nil)
	if err == nil || !strings.Contains(err.Error(), "generator gen: create batch:") || s.BatchStats().Batches != 0 {
		t.Fatalf("err %v", err)
	}
}
