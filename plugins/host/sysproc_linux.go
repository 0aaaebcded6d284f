package host

import (
	"os/exec"
	"syscall"
)

// setProcAttr starts the plugin in its own process group, so that a Ctrl-C
// at the terminal reaches agora alone (agora decides when its plugins
// stop), and asks the kernel to kill the plugin when agora dies, even by
// SIGKILL.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
