package metrics

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// RewardJobScript is agora's built-in reward job (reward_job.py), the
// job a reward metric runs when the spec gives no command: it scores each
// item with a transformers sequence-classification model through the
// model's chat template and writes the file ReadRewards reads. The engine
// writes it into the step's run directory as RewardJobFile and runs
//
//	python3 agora_reward.py --model MODEL --data reward-input.jsonl --output rewards.jsonl
//
//go:embed reward_job.py
var RewardJobScript []byte

// RewardJobFile is the built-in reward job's name in a run directory.
const RewardJobFile = "agora_reward.py"

// RewardJobDigest is the SHA-256 of RewardJobScript, hex: an input of a
// reward step that runs it, so that a change of the scoring makes a new
// step.
func RewardJobDigest() string {
	sum := sha256.Sum256(RewardJobScript)
	return hex.EncodeToString(sum[:])
}

// RewardInput is one line of the file a reward job reads.
type RewardInput struct {
	Index       int    `json:"index"`
	Instruction string `json:"instruction"`
	Response    string `json:"response"`
}

// ReadRewards reads a reward job's output: JSONL, one {"index": i,
// "score": x} per input line, in any order, every index in 0..n−1 exactly
// once, x a finite number. Errors name the file, line and column.
func ReadRewards(path string, n int) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reward output: %w", err)
	}
	defer f.Close()
	return ParseRewards(path, f, n)
}

// ParseRewards is ReadRewards on r; name is used in messages.
func ParseRewards(name string, r io.Reader, n int) ([]float64, error) {
	scores := make([]float64, n)
	seen := make([]int, n) // line of each index, 0 = not seen
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var rec struct {
			Index *int     `json:"index"`
			Score *float64 `json:"score"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&rec); err != nil {
			col := 1
			var se *json.SyntaxError
			var te *json.UnmarshalTypeError
			switch {
			case errors.As(err, &se):
				col = int(se.Offset)
			case errors.As(err, &te):
				col = int(te.Offset)
			}
			return nil, fmt.Errorf("%s:%d:%d: not a JSON object with index and score: %v", name, line, max(col, 1), err)
		}
		at := func(key string) int {
			if i := bytes.Index(b, []byte(`"`+key+`"`)); i >= 0 {
				return i + 1
			}
			return 1
		}
		switch {
		case rec.Index == nil:
			return nil, fmt.Errorf("%s:%d:1: missing \"index\"", name, line)
		case rec.Score == nil:
			return nil, fmt.Errorf("%s:%d:1: missing \"score\"", name, line)
		case *rec.Index < 0 || *rec.Index >= n:
			return nil, fmt.Errorf("%s:%d:%d: index %d is outside 0..%d (the input has %d lines)", name, line, at("index"), *rec.Index, n-1, n)
		case seen[*rec.Index] != 0:
			return nil, fmt.Errorf("%s:%d:%d: index %d was already scored on line %d", name, line, at("index"), *rec.Index, seen[*rec.Index])
		case math.IsNaN(*rec.Score) || math.IsInf(*rec.Score, 0):
			return nil, fmt.Errorf("%s:%d:%d: score is not a finite number", name, line, at("score"))
		}
		seen[*rec.Index] = line
		scores[*rec.Index] = *rec.Score
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	missing := 0
	first := -1
	for i, l := range seen {
		if l == 0 {
			missing++
			if first < 0 {
				first = i
			}
		}
	}
	if missing > 0 {
		return nil, fmt.Errorf("%s: %d of %d items have no score (the first is index %d)", name, missing, n, first)
	}
	return scores, nil
}
