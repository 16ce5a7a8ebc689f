//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"text/template"
)

// The provider's layout, on addresses of its own (127.0.1.x): a hidden
// primary, two secondaries with mtasts, two Caddy nodes on one storage.
const (
	primaryAddr  = "127.0.1.1" // Knot, the hidden primary
	clusterACME  = "127.0.0.1:14001"
	clusterAdmin = "127.0.0.1:15001"
)

var (
	clusterSecondaries = []string{"127.0.1.2", "127.0.1.3"}   // our CoreDNS, daemons secondary-1, secondary-2
	clusterNodes       = []string{"127.0.1.11", "127.0.1.12"} // our Caddy, daemons caddy-1, caddy-2: policy_server
	// The zones on the primary: the provider's own, and customers' each
	// with a part to play.
	clusterZones = []string{
		"provider.test", // the name servers and the report site
		"shop.test",     // its MX change travels by NOTIFY; then both nodes see its first contact at once
		"slow.test",     // first contact while the CA is slow; later it leaves
		"expiring.test", // short SOA timers: it expires on the secondaries once the primary is gone
	}
	// clusterServers is the Caddyfiles' servers line: both secondaries, in order.
	clusterServers = strings.Join(clusterSecondaries, " ")
)

// clusterTemplates are the configs and zones of TestProviderCluster
// (testdata/cluster/*.tmpl).
var clusterTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"pref": func(i int) int { return 10 * (i + 1) }, // MX preferences 10, 20, ...
	"inc":  func(i int) int { return i + 1 },        // secondary-1, secondary-2
}).ParseGlob("testdata/cluster/*.tmpl"))

// TestProviderCluster is a provider's deployment, proven: the zones on a
// hidden primary reach two secondaries by NOTIFY and zone transfer, two
// Caddy nodes share one storage and both ask both secondaries, and the CA
// is slower than a sender's patience. The steps run in order, each on the
// state the ones before it leave; the first that fails stops the run.
func TestProviderCluster(t *testing.T) {
	s := newSuite(t)
	runSteps(t, s, []step{
		{"setup: zones on the hidden primary, the secondaries' Corefile, the nodes' Caddyfiles", setupCluster},
		{"start knot, the hidden primary, on " + primaryAddr, startKnot},
		{"start two secondaries (CoreDNS: secondary + mtasts): the same id for every domain on both", startSecondaries},
		{"an MX change on the primary reaches both secondaries by NOTIFY: the same new id", testNotifyChange},
		{"start a slow pebble: random validation delays and a Retry-After on every order", startSlowPebble},
		{"start two caddy nodes on one storage: the report site ordered once", startCaddyCluster},
		{"concurrent first contact on both nodes: one ACME order, the same certificate on both", testConcurrentFirstContact},
		{"a slow CA: the first sender gives up, issuance completes anyway, the next fetch succeeds", testSlowCA},
		{"a domain leaves: 404 on both nodes, refused on both after a restart, no new order", testClusterLeave},
		{"one secondary down: both nodes serve from the other", testSecondaryDown},
		{"the primary gone: an expired zone answers SERVFAIL on both secondaries, others keep answering", testExpiredZone},
	})
}

// clusterData is what the cluster's templates refer to.
type clusterData struct {
	Primary, Work      string
	Secondaries, Nodes []string
	Zones              []string
	Bind               string // Corefile: the secondary's address
	MaxAge             int
}

// customerZone is what customer.zone.tmpl refers to.
type customerZone struct {
	Zone                   string
	Refresh, Retry, Expire int
	MX                     []string
}

func setupCluster(t *testing.T, s *suite) {
	checkNamespace(t, s)
	out, err := exec.Command("knotd", "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("knotd: %v: %s", err, out)
	}
	s.ok(t, "primary: %s", strings.TrimSpace(string(out)))
	for _, dir := range []string{"knot", "knot/zones", "knot/db"} {
		if err := os.MkdirAll(s.path(dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := clusterData{Primary: primaryAddr, Work: s.work, Secondaries: clusterSecondaries, Nodes: clusterNodes, Zones: clusterZones, MaxAge: maxAge}
	render(t, clusterTemplates, "knot.conf.tmpl", data, s.path("knot.conf"))
	render(t, clusterTemplates, "provider.test.zone.tmpl", data, s.path("knot/zones/provider.test.zone"))
	// A day of expiry for the zones that must outlive the primary; refresh
	// far beyond the run, so that only a NOTIFY brings a change in time.
	for _, z := range []customerZone{
		{Zone: "shop.test", Refresh: 3600, Retry: 600, Expire: 86400, MX: []string{"mx1.shop.test"}},
		{Zone: "slow.test", Refresh: 3600, Retry: 600, Expire: 86400, MX: []string{"mx.slow.test"}},
		{Zone: "expiring.test", Refresh: 2, Retry: 1, Expire: 3, MX: []string{"mx.expiring.test"}},
	} {
		render(t, clusterTemplates, "customer.zone.tmpl", z, s.path("knot/zones", z.Zone+".zone"))
	}
	for i, addr := range clusterSecondaries {
		data.Bind = addr
		render(t, clusterTemplates, "Corefile.tmpl", data, s.path(secondaryName(i)+".Corefile"))
	}
	// The mta_sts app of Caddyfile.example trusts the MX hosts' CA; the
	// cluster runs no MX hosts, so its checks fail, and change nothing here.
	s.mxCA = newMXCA(t, s.path(mxCAFile))
	for i, addr := range clusterNodes {
		s.writeCaddyfile(t, caddyName(i)+".Caddyfile", caddyVariant{
			admin: "off", bind: addr, acme: clusterACME, handlerServer: clusterServers, servers: clusterServers,
		})
	}
	s.ok(t, "knot.conf, %d zones, %d Corefiles, %d Caddyfiles from Caddyfile.example in %s",
		len(clusterZones), len(clusterSecondaries), len(clusterNodes), s.work)
}

func secondaryName(i int) string { return "secondary-" + string(rune('1'+i)) }
func caddyName(i int) string     { return "caddy-" + string(rune('1'+i)) }

// logHas reports whether a line of the daemon's log holds every one of
// parts.
func (s *suite) logHas(t *testing.T, name string, parts ...string) bool {
	t.Helper()
	log, err := os.ReadFile(s.path(name + ".log"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(log)) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
