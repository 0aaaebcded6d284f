// Command agora plans and runs experiments that compare language models as
// synthetic-data generators. See the README and "agora help".
//
// Setting AGORA_CPUPROFILE=FILE writes a CPU profile of the whole run to
// FILE (go tool pprof FILE), for the benchmarks in docs/benchmarks.md.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/agorabench/agora/cli"
)

func main() {
	os.Exit(run())
}

func run() int {
	if path := os.Getenv("AGORA_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "agora: AGORA_CPUPROFILE: %v\n", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "agora: AGORA_CPUPROFILE: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	return cli.Main(os.Args[1:], os.Stdout, os.Stderr)
}
