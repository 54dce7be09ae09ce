// The `ipfs` command of kubo, unchanged: its main package, built as our module so that kubo's
// replace directive applies (see go.mod).
package main

import (
	"os"

	"github.com/ipfs/kubo/cmd/ipfs/kubo"
)

func main() { os.Exit(kubo.Start(kubo.BuildDefaultEnv)) }
