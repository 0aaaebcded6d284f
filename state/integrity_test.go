package state

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A state database that is missing, emptied or replaced while the
// directory shows earlier work is refused with a message, not read as a
// new state with $0 spent.
func TestLostStateRefused(t *testing.T) {
	ctx := context.Background()
	worked := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), ".agora")
		s, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.BeginStep(ctx, StepInfo{ID: "s1", Kind: "generate", Address: "generate.a"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, SerialFile)); err != nil || strings.TrimSpace(string(b)) == "0" {
			t.Fatalf("serial file %q, %v", b, err)
		}
		return dir
	}
	removeDB := func(dir string) {
		for _, f := range []string{DBFile, DBFile + "-wal", DBFile + "-shm"} {
			os.Remove(filepath.Join(dir, f))
		}
	}
	for name, tc := range map[string]struct {
		damage func(dir string)
		want   string
	}{
		"deleted": {removeDB, "is missing"},
		"emptied": {func(dir string) {
			removeDB(dir)
			os.WriteFile(filepath.Join(dir, DBFile), nil, 0o644)
		}, "is empty (0 bytes)"},
		"replaced by another database": {func(dir string) {
			removeDB(dir)
			db, err := sql.Open("sqlite", filepath.Join(dir, DBFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("CREATE TABLE x (a INTEGER)"); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, "has no tables"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := worked(t)
			tc.damage(dir)
			_, err := Open(ctx, dir)
			var le *LostError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "move") {
				t.Fatalf("err %v: want a refusal saying the database %s", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, DBFile)); tc.want == "is missing" && err == nil {
				t.Fatal("the refusal created a database")
			}
		})
	}

	// A fresh directory whose runs/ shows earlier work.
	dir := filepath.Join(t.TempDir(), ".agora")
	os.MkdirAll(filepath.Join(dir, "runs", "abc"), 0o755)
	if _, err := Open(ctx, dir); err == nil || !strings.Contains(err.Error(), "1 job directory in runs/") {
		t.Fatalf("err %v: want the runs/ evidence", err)
	}

	// Garbage is unreadable: refused.
	dir = worked(t)
	removeDB(dir)
	os.WriteFile(filepath.Join(dir, DBFile), []byte(strings.Repeat("not a database ", 100)), 0o644)
	if _, err := Open(ctx, dir); err == nil {
		t.Fatal("a garbage database opened")
	}

	// Nothing shows earlier work: a new state.
	s, err := Open(ctx, filepath.Join(t.TempDir(), ".agora"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
