package redact

import (
	"bytes"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	t.Setenv("ACME_API_KEY", "acme-secret-value/+1")
	t.Setenv("ACME_KEY_FILE", "/etc/acme/key.pem")
	t.Setenv("SHORT_TOKEN", "abc")
	r := FromEnv("extra-secret-1234")
	for in, want := range map[string]string{
		"key acme-secret-value/+1 leaked":    "key [REDACTED] leaked",
		"query key=acme-secret-value%2F%2B1": "query key=[REDACTED]",
		"extra-secret-1234":                  "[REDACTED]",
		"Bearer sk-proj-abcdef123456":        "Bearer sk-[REDACTED]",
		"file /etc/acme/key.pem and abc":     "file /etc/acme/key.pem and abc",
	} {
		if got := r.String(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
	var b bytes.Buffer
	w := r.Writer(&b)
	if n, err := w.Write([]byte("panic: acme-secret-value/+1\n")); err != nil || n != 28 {
		t.Fatal(n, err)
	}
	if strings.Contains(b.String(), "acme-secret") {
		t.Fatal(b.String())
	}
}
