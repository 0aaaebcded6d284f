package host

import (
	"os/exec"
	"syscall"
)

// setParentDeath asks the kernel to kill the plugin when agora dies, even
// by SIGKILL.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
