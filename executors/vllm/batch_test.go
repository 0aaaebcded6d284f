package vllm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agorabench/agora/executors/vllm"
	"github.com/agorabench/agora/executors/vllm/vllmtest"
)

func batchRequests(n int, model string) []vllm.BatchRequest {
	var reqs []vllm.BatchRequest
	for i := 0; i < n; i++ {
		body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 64,
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("What is %d + %d?", i, i)}}})
		reqs = append(reqs, vllm.BatchRequest{ID: fmt.Sprintf("r%d", i), Body: body})
	}
	return reqs
}

func checkBatch(t *testing.T, cfg vllm.Config, n int) {
	t.Helper()
	t.Setenv("AGORA_STUB_BATCH_ERROR_EVERY", "4")
	res, err := vllm.RunBatch(context.Background(), cfg, batchRequests(n, model))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != n {
		t.Fatalf("%d results for %d requests", len(res), n)
	}
	for i := 0; i < n; i++ {
		r := res[fmt.Sprintf("r%d", i)]
		if (i+1)%4 == 0 {
			if r.Status != 400 || !strings.Contains(r.Err, "status 400") {
				t.Errorf("r%d: %+v, want the stand-in's 400", i, r)
			}
			continue
		}
		var c struct {
			Choices []struct{ Message struct{ Content string } }
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &c) != nil || len(c.Choices) != 1 || !strings.Contains(c.Choices[0].Message.Content, "[RESULT]") {
			t.Errorf("r%d: %+v", i, r)
		}
	}
	rec := cfg.Recorder.(*recorder)
	if got := rec.statuses(); got["COMPLETED"] != 1 || len(got) != 1 {
		t.Errorf("recorded %v, want the run COMPLETED", got)
	}
}

func TestRunBatchLocal(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	cfg := testConfig(t, 1)
	checkBatch(t, cfg, 10)
	if ps := processesUnder(cfg.Dir); len(ps) > 0 {
		t.Errorf("processes left:\n%s", strings.Join(ps, "\n"))
	}
}

func TestRunBatchSlurm(t *testing.T) {
	cfg := slurmConfig(t, 1)
	checkBatch(t, cfg, 10)
	gone(t, jobsOf(cfg))
}

func TestRunBatchFailure(t *testing.T) {
	vllmtest.PutFirstInPath(t)
	t.Setenv("AGORA_STUB_FAIL_START", "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0.")
	cfg := testConfig(t, 1)
	_, err := vllm.RunBatch(context.Background(), cfg, batchRequests(3, model))
	for _, want := range []string{"generator llama-8b: vllm run-batch (local job local-", "exited with status 1", "the log (", "Bfloat16 is only supported"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if got := cfg.Recorder.(*recorder).statuses(); got["FAILED"] != 1 {
		t.Errorf("recorded %v", got)
	}
}

func TestBatchArgs(t *testing.T) {
	cfg := testConfig(t, 1)
	got := strings.Join(vllm.BatchArgs(model, cfg.VLLM, "in.jsonl", "out.jsonl"), " ")
	want := "vllm run-batch -i in.jsonl -o out.jsonl --model " + model + " --served-model-name " + model + " --tensor-parallel-size 1 --generation-config vllm --dtype bfloat16 --max-model-len 8192 --gpu-memory-utilization 0.9"
	if got != want {
		t.Errorf("BatchArgs:\n got %s\nwant %s", got, want)
	}
}
