package spec

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"
)

func TestZZMutations(t *testing.T) {
	srcB, _ := os.ReadFile("../agora.cue")
	src := string(srcB)
	lit := regexp.MustCompile(`"[^"\n]*"|\b[0-9]+(\.[0-9]+)?\b|\btrue\b|\bfalse\b|\{\}|\[[^\]\n]*\]`)
	odd := []string{"null", "[]", "{}", "_|_", `"x"`, "-1", "1.5", "true", "_", "int", `"sk-abcdef"`, "[{}]", `{a: 1}`, "0", `""`, `"` + "\u00e9" + `"`}
	locs := lit.FindAllStringIndex(src, -1)
	dir := t.TempDir()
	n := 0
	start := time.Now()
	for _, loc := range locs {
		for _, o := range odd {
			m := src[:loc[0]] + o + src[loc[1]:]
			n++
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("panic %v at %q -> %s", r, src[loc[0]:loc[1]], o)
					}
				}()
				t0 := time.Now()
				_, err := LoadBytes("agora.cue", []byte(m), dir)
				if d := time.Since(t0); d > time.Second {
					t.Errorf("slow %v at %q -> %s", d, src[loc[0]:loc[1]], o)
				}
				if err == nil {
					return
				}
				var ds Diagnostics
				if !errors.As(err, &ds) {
					t.Errorf("not diags: %v", err)
					return
				}
				for _, d := range ds {
					if d.Msg == "" || d.Line == 0 {
						t.Errorf("bad diag %#v at %q -> %s", d, src[loc[0]:loc[1]], o)
					}
				}
			}()
		}
	}
	fmt.Println(n, "mutations", time.Since(start))
}
