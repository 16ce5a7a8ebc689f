package mtasts

import (
	"net"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/file"

	"github.com/coredns-mtasts/mtasts/policy"
)

// newExampleMTASTS returns the plugin with the file plugin behind it,
// serving the example zone and MX targets the plugin refuses
// (invalidMXRecords), with an IPv4 and an IPv6 policy server and a TLS-RPT
// template: the fixture of FuzzServeDNS and of the ServeDNS unit tests.
func newExampleMTASTS(tb testing.TB) *MTASTS {
	tb.Helper()
	zone, err := file.Parse(strings.NewReader(exampleZoneWith(1, exampleApexMX+"\n"+invalidMXRecords)), "example.com.", "example.com.zone", 0)
	if err != nil {
		tb.Fatal(err)
	}
	return &MTASTS{
		Next:          file.File{Zones: file.Zones{Z: map[string]*file.Zone{"example.com.": zone}, Names: []string{"example.com."}}},
		Zones:         []string{"example.com."},
		PolicyServers: []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::10")},
		Mode:          policy.ModeTesting,
		MaxAge:        defaultMaxAge,
		TTL:           defaultTTL,
		TLSRPT:        []string{"mailto:tlsrpt+{domain}@provider.example"},
	}
}
