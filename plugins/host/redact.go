package host

import (
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/agorabench/agora/internal/redact"
)

// redactingLogger is a logger whose messages and string arguments have
// the environment's secrets removed: what go-plugin logs of a plugin (its
// log lines, its panics) goes through it.
type redactingLogger struct {
	hclog.Logger
	r *redact.Redactor
}

func redactLogger(l hclog.Logger, r *redact.Redactor) hclog.Logger {
	if _, ok := l.(*redactingLogger); ok {
		return l
	}
	return &redactingLogger{Logger: l, r: r}
}

func (l *redactingLogger) args(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = l.r.String(v)
		case error:
			out[i] = l.r.String(v.Error())
		case fmt.Stringer:
			out[i] = l.r.String(v.String())
		default:
			out[i] = a
		}
	}
	return out
}

func (l *redactingLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, l.r.String(msg), l.args(args)...)
}
func (l *redactingLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *redactingLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *redactingLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *redactingLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *redactingLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *redactingLogger) With(args ...any) hclog.Logger {
	return &redactingLogger{Logger: l.Logger.With(l.args(args)...), r: l.r}
}

func (l *redactingLogger) Named(name string) hclog.Logger {
	return &redactingLogger{Logger: l.Logger.Named(name), r: l.r}
}

func (l *redactingLogger) ResetNamed(name string) hclog.Logger {
	return &redactingLogger{Logger: l.Logger.ResetNamed(name), r: l.r}
}
