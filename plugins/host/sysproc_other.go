//go:build !linux

package host

import "os/exec"

// setParentDeath does nothing here: the SDK's parent watch ends the
// plugin when agora dies.
func setParentDeath(*exec.Cmd) {}
