package engine

import "github.com/agorabench/agora/offline"

// jobEnv is the environment agora adds to a train, evaluate, solve or
// reward job: the variables among names that are set here, and, when the
// spec has an offline block, offline.Env of its cache (HF_HOME in the
// cache, the hubs' offline switches), which takes precedence
// (docs/offline.md).
func (e *Engine) jobEnv(names ...string) map[string]string {
	env := passEnv(names...)
	if o := e.exp.Offline; o != nil {
		for k, v := range offline.Env(o.CacheDir) {
			env[k] = v
		}
	}
	return env
}
