// Command caddy is Caddy with its standard modules and the MTA-STS modules
// of package caddymtasts, started exactly like upstream's cmd/caddy.
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/coredns-mtasts/mtasts/caddymtasts"
)

func main() {
	caddycmd.Main()
}
