// Command coredns is CoreDNS with every in-tree plugin and the mtasts
// plugin, placed right below dnssec in the plugin chain. It is started like
// upstream's coredns: -conf, -plugins, -version, ...
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // Every in-tree plugin.
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns-mtasts/mtasts" // The mtasts plugin.
)

func main() {
	coremain.Run()
}
