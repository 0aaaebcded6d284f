// Package redact removes secrets from text agora shows, stores or logs:
// the values of the environment variables whose names say they hold one
// (…KEY…, …TOKEN…, …SECRET…, …PASSWORD…, …CREDENTIAL…), in the encodings a
// message may carry them (as is, URL-query-escaped, JSON-escaped), and
// anything shaped like a provider key ("sk-…"). The HTTP client redacts
// its own key the same way (executors/api); plugins, which may use any
// variable, are redacted with the environment's secrets.
package redact

import (
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Marker replaces a secret.
const Marker = "[REDACTED]"

// minSecret is the shortest value taken for a secret: shorter ones ("1",
// "true") would redact ordinary words.
const minSecret = 8

var (
	secretName = regexp.MustCompile(`(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)`)
	notSecret  = regexp.MustCompile(`(?i)(_PATH|_FILE|_DIR|_ENV|_NAME|_URL)$`)
	keyShaped  = regexp.MustCompile(`\bsk-[A-Za-z0-9_\-*.]{4,}`)
)

// Redactor removes a set of secrets.
type Redactor struct {
	forms []string // every form of every secret, longest first
}

// New makes a Redactor of secrets (values shorter than 8 bytes are left
// out).
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	for _, s := range secrets {
		if len(s) < minSecret {
			continue
		}
		q := strconv.Quote(s)
		for _, f := range []string{s, url.QueryEscape(s), q[1 : len(q)-1]} {
			if !seen[f] {
				seen[f] = true
				r.forms = append(r.forms, f)
			}
		}
	}
	sort.Slice(r.forms, func(i, j int) bool { return len(r.forms[i]) > len(r.forms[j]) })
	return r
}

// FromEnv makes a Redactor of the environment's secrets and extra.
func FromEnv(extra ...string) *Redactor {
	var secrets []string
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if secretName.MatchString(k) && !notSecret.MatchString(k) {
			secrets = append(secrets, v)
		}
	}
	return New(append(secrets, extra...)...)
}

// String is s without the secrets and key-shaped strings.
func (r *Redactor) String(s string) string {
	if r != nil {
		for _, f := range r.forms {
			if strings.Contains(s, f) {
				s = strings.ReplaceAll(s, f, Marker)
			}
		}
	}
	return keyShaped.ReplaceAllString(s, "sk-"+Marker)
}

// Writer redacts each write to w; a writer that writes whole lines or
// entries (a logger) never splits a secret across writes.
func (r *Redactor) Writer(w io.Writer) io.Writer { return writer{r, w} }

type writer struct {
	r *Redactor
	w io.Writer
}

func (w writer) Write(b []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.r.String(string(b))); err != nil {
		return 0, err
	}
	return len(b), nil
}
