// Command benchtool is the Go half of bench/run: it generates the zones and
// query files, compares the ids two CoreDNS instances publish, makes the
// first contacts of the cluster part, and prints the table of medians and
// ratios. See BENCHMARKS.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	cmds := map[string]func([]string) error{
		"gen":         gen,
		"caddyconfig": caddyConfig,
		"contact":     contact,
		"ids":         ids,
		"table":       table,
		"wait":        wait,
	}
	if len(os.Args) < 2 || cmds[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: benchtool gen|caddyconfig|contact|ids|table|wait [flags]")
		os.Exit(2)
	}
	if err := cmds[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
