//go:build !unix

package host

import "os/exec"

// setProcAttr does nothing here: the SDK's parent watch ends the plugin
// when agora dies.
func setProcAttr(*exec.Cmd) {}
