package mtasts

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/coredns-mtasts/mtasts/policy"
)

func TestParseDefaults(t *testing.T) {
	c := caddy.NewTestController("dns", "mtasts example.com example.net {\n policy_server 192.0.2.10 2001:db8::1\n}")
	c.ServerBlockKeys = []string{"dns://.:53"}
	m, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Zones, []string{"example.com.", "example.net."}) {
		t.Errorf("zones %v", m.Zones)
	}
	if m.Mode != policy.ModeTesting || m.MaxAge != 604800 || m.TTL != 300 || m.PolicyCNAME != "" || m.TLSRPT != nil {
		t.Errorf("defaults wrong: %+v", m)
	}
	if len(m.PolicyServers) != 2 || !m.PolicyServers[0].Equal(net.ParseIP("192.0.2.10")) || !m.PolicyServers[1].Equal(net.ParseIP("2001:db8::1")) {
		t.Errorf("policy servers %v", m.PolicyServers)
	}
}

func TestParseAllProperties(t *testing.T) {
	c := caddy.NewTestController("dns", `mtasts {
		policy_cname Policy.Provider.Example.
		mode enforce
		max_age 31557600
		ttl 1
		tlsrpt mailto:tlsrpt@provider.example https://reports.provider.example/{domain}
	}`)
	c.ServerBlockKeys = []string{"example.org:53"}
	m, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Zones, []string{"example.org."}) || m.PolicyCNAME != "policy.provider.example." ||
		m.Mode != policy.ModeEnforce || m.MaxAge != policy.MaxAgeLimit || m.TTL != 1 || len(m.TLSRPT) != 2 {
		t.Errorf("parsed %+v", m)
	}
}

// max_age takes what a policy may state (RFC 8461 §3.2), 0 included, by
// the parser settings records use too.
func TestParseMaxAgeZero(t *testing.T) {
	m, err := parse(caddy.NewTestController("dns", "mtasts {\n policy_server 192.0.2.1\n max_age 0\n}"))
	if err != nil || m.MaxAge != 0 {
		t.Errorf("max_age 0: %+v, %v", m, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		input, want string
	}{
		{"mtasts", "one of policy_server or policy_cname is required"},
		{"mtasts {\n}", "one of policy_server or policy_cname is required"},
		{"mtasts {\n policy_server 192.0.2.1\n policy_cname h.example\n}", "exclude each other"},
		{"mtasts {\n policy_server\n}", "Wrong argument count"},
		{"mtasts {\n policy_server 192.0.2.1 mta-sts.example\n}", "'mta-sts.example' is not an IP address"},
		{"mtasts {\n policy_server 192.0.2.1/24\n}", "not an IP address"},
		{"mtasts {\n policy_cname a b\n}", "Wrong argument count"},
		{"mtasts {\n policy_cname bad_host.example\n}", "policy_cname"},
		{"mtasts {\n policy_server 192.0.2.1\n mode Enforce\n}", "invalid mode"},
		{"mtasts {\n policy_server 192.0.2.1\n mode\n}", "Wrong argument count"},
		{"mtasts {\n policy_server 192.0.2.1\n max_age -1\n}", `max_age: "-1" is not a number of seconds from 0 to 31557600`},
		{"mtasts {\n policy_server 192.0.2.1\n max_age 31557601\n}", "max_age"},
		{"mtasts {\n policy_server 192.0.2.1\n max_age 1w\n}", "max_age"},
		{"mtasts {\n policy_server 192.0.2.1\n ttl -1\n}", "ttl"},
		{"mtasts {\n policy_server 192.0.2.1\n ttl 0\n}", "Testfile:3 - Error during parsing: ttl: '0' is not a number of seconds from 1 to 2147483647"},
		{"mtasts {\n policy_server 192.0.2.1\n ttl 2147483648\n}", "ttl"},
		{"mtasts {\n policy_server 192.0.2.1\n tlsrpt\n}", "Wrong argument count"},
		{"mtasts {\n policy_server 192.0.2.1\n tlsrpt http://insecure.example/\n}", "tlsrpt"},
		{"mtasts {\n policy_server 192.0.2.1\n tlsrpt mailto:a,b@example.net\n}", "percent-encoded"},
		{"mtasts {\n policy_server 192.0.2.1\n mode testing\n mode enforce\n}", "property 'mode' given twice"},
		{"mtasts {\n policy_server 192.0.2.1\n max-age 10\n}", "unknown property 'max-age'"},
		{"mtasts {\n policy_server 192.0.2.1\n}\nmtasts {\n policy_server 192.0.2.1\n}", "only be used once"},
	} {
		_, err := parse(caddy.NewTestController("dns", tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.input, err, tc.want)
		}
	}
}

// A zone outside the server block's zones would start silently and never
// answer: CoreDNS routes no query for it to this block.
func TestParseRefusesZoneOutsideServerBlock(t *testing.T) {
	for keys, want := range map[string]string{
		"example.com:53":   "Testfile:1 - Error during parsing: zone 'example.net.' is not in this server block's zones [example.com.]",
		"sub.example.net.": "Testfile:1 - Error during parsing: zone 'example.net.' is not in this server block's zones [sub.example.net.]",
	} {
		c := caddy.NewTestController("dns", "mtasts example.net {\n policy_server 192.0.2.1\n}")
		c.ServerBlockKeys = []string{keys}
		if _, err := parse(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("server block %s: error %v, want one containing %q", keys, err, want)
		}
	}
	c := caddy.NewTestController("dns", "mtasts sub.example.net {\n policy_server 192.0.2.1\n}")
	c.ServerBlockKeys = []string{"example.net:53", "example.org:53"}
	if _, err := parse(c); err != nil {
		t.Errorf("a zone below the server block's: %v", err)
	}
}

func TestParseErrorNamesTheLine(t *testing.T) {
	_, err := parse(caddy.NewTestController("dns", "mtasts {\n policy_server 192.0.2.1\n\n max_age forever\n}"))
	if err == nil || !strings.Contains(err.Error(), ":4 ") {
		t.Errorf("error %v does not name line 4", err)
	}
}

func TestDirectiveRightBelowDNSSEC(t *testing.T) {
	i := slices.Index(dnsserver.Directives, pluginName)
	if i < 1 || dnsserver.Directives[i-1] != "dnssec" {
		t.Fatalf("mtasts at %d in %v, want right after dnssec", i, dnsserver.Directives)
	}
	for _, name := range []string{"cache", "file", "auto", "secondary", "etcd", "forward", "whoami"} {
		if j := slices.Index(dnsserver.Directives, name); j < 0 {
			t.Errorf("directive %s dropped", name)
		}
	}
}

func TestInsertDirective(t *testing.T) {
	upstream := []string{"log", "cache", "dnssec", "file", "forward"}
	got := insertDirective(upstream, "mtasts", "dnssec")
	if want := []string{"log", "cache", "dnssec", "mtasts", "file", "forward"}; !slices.Equal(got, want) {
		t.Errorf("insert: %v, want %v", got, want)
	}
	if !slices.Equal(upstream, []string{"log", "cache", "dnssec", "file", "forward"}) {
		t.Errorf("input list modified: %v", upstream)
	}
	if again := insertDirective(got, "mtasts", "dnssec"); !slices.Equal(again, got) {
		t.Errorf("insert twice: %v", again)
	}
	planned := []string{"log", "mtasts", "dnssec", "file"} // placed by plugin.cfg: kept
	if got := insertDirective(planned, "mtasts", "dnssec"); !slices.Equal(got, planned) {
		t.Errorf("plugin.cfg position not kept: %v", got)
	}
	if got := insertDirective([]string{"file"}, "mtasts", "dnssec"); !slices.Equal(got, []string{"file", "mtasts"}) {
		t.Errorf("without dnssec: %v", got)
	}
}
