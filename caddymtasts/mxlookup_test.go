package caddymtasts

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// mxLookupZone has MX sets in every order, a null MX, and MX hosts with
// addresses, behind an alias, and missing.
const mxLookupZone = `$TTL 3600
@        IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@        IN NS  ns1
ns1      IN A   127.0.0.1
ordered  IN MX  20 b.mx
ordered  IN MX  10 C.MX.mxlookup.test.
ordered  IN MX  10 a.mx
nullmx   IN MX  0 .
a.mx     IN A    192.0.2.1
a.mx     IN AAAA 2001:db8::1
alias    IN CNAME a.mx
`

func TestMXHostsAndAddresses(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "zone")
	if err := os.WriteFile(zone, []byte(mxLookupZone), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _ := startCoreDNS(t, "mxlookup.test:{port} {\n\tbind 127.0.0.1\n\tfile "+zone+" mxlookup.test\n}")
	s := newSource(t, 2*time.Second, addr)
	ctx := context.Background()

	for domain, want := range map[string][]string{
		"ordered.mxlookup.test": {"a.mx.mxlookup.test", "c.mx.mxlookup.test", "b.mx.mxlookup.test"},
		"nullmx.mxlookup.test":  {},
	} {
		if got, err := s.MXHosts(ctx, domain); err != nil || !slices.Equal(got, want) {
			t.Errorf("MX hosts of %s: %q, %v; want %q", domain, got, err, want)
		}
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	for _, host := range []string{"a.mx.mxlookup.test", "alias.mxlookup.test"} {
		if got, err := s.Addresses(ctx, host); err != nil || !slices.Equal(got, want) {
			t.Errorf("addresses of %s: %v, %v; want %v", host, got, err, want)
		}
	}
	if got, err := s.Addresses(ctx, "b.mx.mxlookup.test"); !errors.Is(err, errNoSuchName) {
		t.Errorf("addresses of a host that does not exist: %v, %v; want %v", got, err, errNoSuchName)
	}
	// Refused by our server, resolved by the system's resolver (/etc/hosts).
	got, err := s.Addresses(ctx, "localhost")
	if err != nil || !slices.ContainsFunc(got, netip.Addr.IsLoopback) {
		t.Errorf("addresses of localhost, outside our zones: %v, %v; want loopback", got, err)
	}
	if _, err := s.MXHosts(ctx, "elsewhere.example"); !errors.Is(err, errNotInZones) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("MX hosts of a domain outside our zones: %v, want %v", err, errNotInZones)
	}
}
