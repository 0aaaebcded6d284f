package plugintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// PythonSDK is the Python SDK (plugins/sdk/python) built as a wheel and
// installed, without its dependencies, in a directory of its own, for a
// Python environment that has them (the pinned tools environment).
type PythonSDK struct {
	// Python is the environment's interpreter, Site the directory the SDK
	// is installed in.
	Python, Site string
	dir          string
}

// sdkDir is plugins/sdk/python in this checkout.
func sdkDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "sdk", "python")
}

var pinRE = regexp.MustCompile(`"([A-Za-z0-9_.-]+)==([^"]+)"`)

// PythonSDKPins are the SDK's pinned dependencies (pyproject.toml), as
// NAME==VERSION.
func PythonSDKPins() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(sdkDir(), "pyproject.toml"))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.Index(s, "dependencies = [")
	if i < 0 {
		return nil, fmt.Errorf("pyproject.toml has no dependencies list")
	}
	s = s[i:]
	s = s[:strings.Index(s, "]")]
	var out []string
	for _, m := range pinRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1]+"=="+m[2])
	}
	return out, nil
}

// InstallPythonSDK builds the SDK's wheel from the checkout with venv's
// pip (offline: no index, no build isolation) and installs it into a new
// temporary directory. It fails when venv's grpcio, protobuf or
// cryptography are not the SDK's pins.
func InstallPythonSDK(venv string) (PythonSDK, error) {
	py := filepath.Join(venv, "bin", "python")
	pins, err := PythonSDKPins()
	if err != nil {
		return PythonSDK{}, err
	}
	check := `import importlib.metadata as m, sys
bad = [p for p in sys.argv[1:] if m.version(p.split("==")[0]) != p.split("==")[1]]
print(" ".join(f"{p} (has {m.version(p.split('==')[0])})" for p in bad))`
	out, err := exec.Command(py, append([]string{"-c", check}, pins...)...).CombinedOutput()
	if err != nil {
		return PythonSDK{}, fmt.Errorf("%s cannot check the SDK's dependencies: %v\n%s", py, err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return PythonSDK{}, fmt.Errorf("%s does not have the SDK's pinned dependencies: %s", venv, s)
	}
	dir, err := os.MkdirTemp("", "agora-pysdk-")
	if err != nil {
		return PythonSDK{}, err
	}
	fail := func(err error) (PythonSDK, error) {
		os.RemoveAll(dir)
		return PythonSDK{}, err
	}
	// Build from a copy: setuptools writes build/ and *.egg-info beside
	// the sources.
	src := filepath.Join(dir, "src")
	if err := os.CopyFS(src, os.DirFS(sdkDir())); err != nil {
		return fail(err)
	}
	os.RemoveAll(filepath.Join(src, "build"))
	wheels, site := filepath.Join(dir, "wheels"), filepath.Join(dir, "site")
	for _, args := range [][]string{
		{"-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, src},
		{"-m", "pip", "install", "-q", "--no-deps", "--no-index", "--find-links", wheels, "--target", site, "agora-plugin"},
	} {
		cmd := exec.Command(py, args...)
		cmd.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("pip %s: %v\n%s", args[2], err, out))
		}
	}
	return PythonSDK{Python: py, Site: site, dir: dir}, nil
}

// Remove deletes the installed SDK.
func (s PythonSDK) Remove() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// Install makes script (a plugin written with the SDK) runnable as
// dir/BASENAME: a shell script that runs it with the environment's Python
// and the SDK on its path (exec: the plugin's process is Python's).
func (s PythonSDK) Install(script, dir string) error {
	abs, err := filepath.Abs(script)
	if err != nil {
		return err
	}
	sh := fmt.Sprintf("#!/bin/sh\nPYTHONPATH=%s PYTHONDONTWRITEBYTECODE=1 exec %s %s \"$@\"\n", quote(s.Site), quote(s.Python), quote(abs))
	return os.WriteFile(filepath.Join(dir, filepath.Base(script)), []byte(sh), 0o755)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
