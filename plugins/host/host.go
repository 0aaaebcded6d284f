// Package host runs agora's LM provider plugins: it finds the executable
// agora-provider-NAME on the search path ($AGORA_PLUGIN_PATH,
// .agora/plugins beside the spec, ~/.agora/plugins), refuses one whose
// SHA-256 differs from the spec's pin (go-plugin's SecureConfig), starts
// it through github.com/hashicorp/go-plugin with AutoMTLS, routes its log
// lines into agora's log through hclog, restarts it once after a crash,
// and kills it when agora ends: Close on the way out, and on Linux a
// parent-death signal in case agora is killed outright (the SDK also
// watches its parent).
//
// Client adapts one generator's plugin to the same small interface as the
// built-in providers, with executors/retry's limits, retries and outage
// detection; the protobuf types stay inside this package.
package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/agorabench/agora/internal/redact"
	pb "github.com/agorabench/agora/plugins/providerpb"
)

// Options configure a Host.
type Options struct {
	// Dirs is the search path (see SearchPath).
	Dirs []string
	// Logger receives the plugins' log lines and the host's own; nil
	// discards them.
	Logger hclog.Logger
	// StartTimeout bounds a plugin's start-up handshake (default 30s).
	StartTimeout time.Duration
}

// Host starts and owns plugin processes; one process per plugin and pin,
// shared by the generators that use it.
type Host struct {
	opts    Options
	redact  *redact.Redactor // the environment's secrets, out of messages and logs
	mu      sync.Mutex
	plugins map[string]*Plugin
	closed  bool
}

// New makes a host. Close it to end its plugins.
func New(o Options) *Host {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	r := redact.FromEnv()
	o.Logger = redactLogger(o.Logger, r)
	return &Host{opts: o, plugins: map[string]*Plugin{}, redact: r}
}

// Dirs is the host's search path.
func (h *Host) Dirs() []string { return h.opts.Dirs }

// Close ends every plugin the host started.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	ps := h.plugins
	h.plugins = map[string]*Plugin{}
	h.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

// Open returns the running plugin name, starting it if needed. pin, when
// set, is the hex SHA-256 the executable must have.
func (h *Host) Open(ctx context.Context, name, pin string) (*Plugin, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("plugin host closed")
	}
	key := name + "@" + pin
	if p, ok := h.plugins[key]; ok {
		return p, nil
	}
	path, err := Find(name, h.opts.Dirs)
	if err != nil {
		return nil, err
	}
	sum, err := Checksum(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	if pin != "" && !strings.EqualFold(sum, pin) {
		return nil, &ChecksumError{Name: name, Path: path, Got: sum, Want: pin}
	}
	p := &Plugin{Name: name, Path: path, SHA256: sum, pin: pin, host: h}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	h.plugins[key] = p
	return p, nil
}

// ChecksumError is a plugin whose executable does not match its pin.
type ChecksumError struct{ Name, Path, Got, Want string }

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("plugin %s: %s has sha256 %s but the spec pins %s: refusing to run it (rebuild or reinstall the plugin, or update the pin after checking the new binary)",
		e.Name, e.Path, e.Got, e.Want)
}

// VersionError is a plugin that speaks another version of the protocol.
type VersionError struct {
	Name, Path string
	// Plugin is the version the plugin speaks (0 when it did not say);
	// Host the one this agora speaks.
	Plugin, Host int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("plugin %s (%s) speaks provider protocol version %d, this agora speaks versions %s: use a build of the plugin for protocol %d, or an agora that speaks %d",
		e.Name, e.Path, e.Plugin, SpokenVersions(), e.Host, e.Plugin)
}

// Plugin is a running plugin, restarted once after a crash.
type Plugin struct {
	Name, Path, SHA256 string
	pin                string
	host               *Host

	mu      sync.Mutex
	inst    *instance
	crashes int   // instances that crashed
	dead    error // set after the second crash: every call fails with it
	desc    *pb.DescribeResponse
	version int
	closing bool
}

// instance is one process of a plugin.
type instance struct {
	client *plugin.Client
	rpc    pb.ProviderClient
	stderr *tail
}

// Version is the protocol version negotiated with the plugin.
func (p *Plugin) Version() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// Description is what the plugin said it offers when it (last) started.
func (p *Plugin) Description() Description {
	p.mu.Lock()
	defer p.mu.Unlock()
	return describe(p.desc)
}

var versionRE = regexp.MustCompile(`[Pp]lugin version: (\d+)`)

// start launches a new instance; p.mu is held, or p is not shared yet.
func (p *Plugin) start(ctx context.Context) error {
	h := p.host
	cmd := exec.Command(p.Path)
	setProcAttr(cmd)
	tlsConfig, certPEM, err := clientTLS(time.Now())
	if err != nil {
		return fmt.Errorf("plugin %s: %v", p.Name, err)
	}
	// The environment is agora's, with PLUGIN_CLIENT_CERT ours
	// (go-plugin adds the handshake's variables after it).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGIN_CLIENT_CERT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGIN_CLIENT_CERT="+string(certPEM))
	stderr := newTail()
	cfg := &plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  pb.ProtocolVersion,
			MagicCookieKey:   pb.CookieKey,
			MagicCookieValue: pb.CookieValue,
		},
		VersionedPlugins: versionedSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// go-plugin's AutoMTLS, with agora's own client certificate
		// (clientTLS says why).
		TLSConfig:   tlsConfig,
		SkipHostEnv: true,
		Logger:      h.opts.Logger.Named("plugin"),
		Stderr:      stderr,
		// What a Go plugin prints to os.Stdout or os.Stderr once served
		// arrives over go-plugin's stdio stream: into the log too.
		SyncStdout:   &lineLogger{log: h.opts.Logger.Named("plugin").Named(filepath.Base(p.Path)).Named("stdout"), redact: h.redact},
		SyncStderr:   &lineLogger{log: h.opts.Logger.Named("plugin").Named(filepath.Base(p.Path)).Named("stderr"), redact: h.redact},
		StartTimeout: h.opts.StartTimeout,
	}
	if p.pin != "" {
		want, err := hex.DecodeString(p.pin)
		if err != nil {
			return fmt.Errorf("plugin %s: sha256 pin %q is not hex", p.Name, p.pin)
		}
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	c := plugin.NewClient(cfg)
	fail := func(err error) error {
		c.Kill()
		return err
	}
	rpcc, err := c.Client()
	if err != nil {
		switch {
		case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
			got, _ := Checksum(p.Path)
			return fail(&ChecksumError{Name: p.Name, Path: p.Path, Got: got, Want: p.pin})
		case strings.Contains(err.Error(), "incompatible API version"):
			ve := &VersionError{Name: p.Name, Path: p.Path, Host: pb.ProtocolVersion}
			if m := versionRE.FindStringSubmatch(err.Error()); m != nil {
				fmt.Sscan(m[1], &ve.Plugin)
			}
			return fail(ve)
		}
		// Kill waits for the plugin's stderr to be read to its end.
		c.Kill()
		msg := err.Error()
		// go-plugin's own text for a missing handshake line is a page of
		// guesses: say what happened.
		if rest, ok := strings.CutPrefix(msg, "Unrecognized remote plugin message: "); ok {
			if first, _, _ := strings.Cut(rest, "\n"); first == "" {
				msg = "it exited without printing the handshake line on stdout (docs/plugins.md)"
			} else {
				msg = fmt.Sprintf("its first line on stdout is not a handshake line (docs/plugins.md): %q", first)
			}
		} else if msg == "plugin exited before we could connect" {
			msg = "it exited without printing the handshake line on stdout (docs/plugins.md)"
		}
		if t := stderr.summary(); t != "" {
			msg += "; the end of its stderr:\n" + t
		}
		return fail(fmt.Errorf("plugin %s (%s) did not start: %s", p.Name, p.Path, h.redact.String(msg)))
	}
	raw, err := rpcc.Dispense(pb.PluginName)
	if err != nil {
		return fail(fmt.Errorf("plugin %s (%s): %v", p.Name, p.Path, err))
	}
	inst := &instance{client: c, rpc: raw.(pb.ProviderClient), stderr: stderr}
	dctx, cancel := context.WithTimeout(ctx, h.opts.StartTimeout)
	desc, err := inst.rpc.Describe(dctx, &pb.DescribeRequest{})
	cancel()
	if err != nil {
		return fail(fmt.Errorf("plugin %s (%s): describe: %v", p.Name, p.Path, h.redact.String(grpcMessage(err))))
	}
	p.inst, p.desc, p.version = inst, desc, c.NegotiatedVersion()
	pid := 0
	if rc := c.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	h.opts.Logger.Info("plugin started", "plugin", p.Name, "path", p.Path, "sha256", p.SHA256, "protocol", p.version, "pid", pid)
	return nil
}

// current returns the live instance, restarting the plugin after its
// first crash; it fails once the plugin has crashed twice.
func (p *Plugin) current(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead != nil {
		return nil, p.dead
	}
	if p.closing {
		return nil, fmt.Errorf("plugin %s stopped", p.Name)
	}
	if p.inst == nil {
		p.host.opts.Logger.Warn("restarting plugin after a crash", "plugin", p.Name)
		if err := p.start(ctx); err != nil {
			p.dead = fmt.Errorf("plugin %s crashed and could not be restarted: %w", p.Name, err)
			return nil, p.dead
		}
	}
	return p.inst, nil
}

// exited reports whether inst's process has ended, waiting a moment for
// the exit to be noticed (a broken connection is seen before the exit).
func (inst *instance) exited() bool {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if inst.client.Exited() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// crashed records that inst's process died. The first crash leaves the
// restart to the next call; the second is final. It returns the error of
// a final crash, nil otherwise.
func (p *Plugin) crashed(inst *instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead != nil {
		return p.dead
	}
	if p.inst != inst { // another call saw this crash first
		return nil
	}
	inst.client.Kill()
	p.inst = nil
	p.crashes++
	p.host.opts.Logger.Error("plugin crashed", "plugin", p.Name, "crash", p.crashes)
	if p.crashes < 2 {
		return nil
	}
	msg := fmt.Sprintf("plugin %s (%s) crashed twice", p.Name, p.Path)
	if t := inst.stderr.summary(); t != "" {
		msg += "; the end of its stderr:\n" + t
	}
	p.dead = errors.New(p.host.redact.String(msg))
	return p.dead
}

func (p *Plugin) close() {
	p.mu.Lock()
	p.closing = true
	inst := p.inst
	p.inst = nil
	p.mu.Unlock()
	if inst != nil {
		inst.client.Kill()
	}
}

// grpcPlugin is the client half of go-plugin's GRPCPlugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (grpcPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("agora is the client of provider plugins")
}

func (grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return pb.NewProviderClient(cc), nil
}

// lineLogger logs each line written to it at info level.
type lineLogger struct {
	log     hclog.Logger
	redact  *redact.Redactor
	mu      sync.Mutex
	partial []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(string(l.partial[:i]), "\r"); line != "" {
			l.log.Info(l.redact.String(line))
		}
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > maxLine {
		l.log.Info(l.redact.String(string(l.partial)))
		l.partial = l.partial[:0]
	}
	return len(b), nil
}

// tail keeps the end of a plugin's stderr: its last lines, and the start
// of its last panic (or fatal error, Go's or Python's) with a few lines after it, which a
// dump of every goroutine would push out of the last lines.
type tail struct {
	mu      sync.Mutex
	partial []byte
	lines   []string // the last tailLines lines
	crash   []string // the last panic line and up to crashLines-1 after it
}

const (
	tailLines  = 8
	crashLines = 8
	maxLine    = 1 << 10
)

func newTail() *tail { return &tail{} }

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(t.partial) < maxLine {
				t.partial = append(t.partial, b[:min(len(b), maxLine-len(t.partial))]...)
			}
			break
		}
		if len(t.partial) < maxLine {
			t.partial = append(t.partial, b[:min(i, maxLine-len(t.partial))]...)
		}
		t.line(string(t.partial))
		t.partial = t.partial[:0]
		b = b[i+1:]
	}
	return len(b), nil
}

func (t *tail) line(l string) {
	if strings.TrimSpace(l) == "" {
		return
	}
	t.lines = append(t.lines, l)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
	switch {
	case strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "Fatal Python error:"):
		if len(t.crash) == 0 || len(t.crash) >= crashLines || !strings.HasPrefix(t.crash[0], "panic:") {
			t.crash = []string{l}
		} else {
			t.crash = append(t.crash, l) // a panic during a panic
		}
	case len(t.crash) > 0 && len(t.crash) < crashLines:
		t.crash = append(t.crash, l)
	}
}

// summary is the end of the plugin's stderr for a message, indented: its
// last panic when there was one, else its last lines.
func (t *tail) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.crash) > 0 {
		lines = t.crash
	}
	if len(lines) == 0 {
		return ""
	}
	return "  " + strings.Join(lines, "\n  ")
}

// Ping asks the plugin's gRPC health service whether it is serving.
func (p *Plugin) Ping() error {
	p.mu.Lock()
	inst := p.inst
	p.mu.Unlock()
	if inst == nil {
		return fmt.Errorf("plugin %s is not running", p.Name)
	}
	rpcc, err := inst.client.Client()
	if err != nil {
		return fmt.Errorf("plugin %s: %v", p.Name, err)
	}
	if err := rpcc.Ping(); err != nil {
		return fmt.Errorf("plugin %s: health check: %s", p.Name, grpcMessage(err))
	}
	return nil
}

// PID is the process id of the plugin's current process; 0 when none.
func (p *Plugin) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inst == nil {
		return 0
	}
	if rc := p.inst.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// versionedSets offers a plugin every protocol version this agora speaks;
// it picks the newest it speaks too (Plugin.Version says which).
func versionedSets() map[int]plugin.PluginSet {
	sets := map[int]plugin.PluginSet{}
	for _, v := range pb.ProtocolVersions {
		sets[v] = plugin.PluginSet{pb.PluginName: &grpcPlugin{}}
	}
	return sets
}

// SpokenVersions is the protocol versions this agora speaks, for
// messages ("1 and 2").
func SpokenVersions() string {
	vs := make([]string, len(pb.ProtocolVersions))
	for i, v := range pb.ProtocolVersions {
		vs[i] = strconv.Itoa(v)
	}
	if len(vs) == 1 {
		return vs[0]
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " and " + vs[len(vs)-1]
}
