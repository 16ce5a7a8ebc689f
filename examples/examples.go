// Package examples holds the example zone that Corefile.example serves and
// that the demo command embeds, so that both show the same domains.
package examples

import _ "embed"

// Zone is the example.com zone file: mail domains with their own MX records
// (example.com, shop.example.com), domains without mail (null MX, no MX) and
// a domain that runs MTA-STS itself.
//
//go:embed example.com.zone
var Zone string
