//go:build unix && !linux

package host

import (
	"os/exec"
	"syscall"
)

// setProcAttr starts the plugin in its own process group, so that a Ctrl-C
// at the terminal reaches agora alone. Without a parent-death signal here,
// the SDK's parent watch ends the plugin when agora dies.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
