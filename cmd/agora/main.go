// Command agora plans and runs experiments that compare language models as
// synthetic-data generators. See the README and "agora help".
package main

import (
	"os"

	"github.com/agorabench/agora/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
