//go:build e2e

package e2e

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"
	"text/template"

	"github.com/miekg/dns"
)

// templates are the configs (testdata/*.tmpl, filled in from configData)
// and zones (testdata/zones/*.tmpl, from zoneData). The Caddyfile is not
// among them: it is made from the repository's Caddyfile.example.
var templates = template.Must(template.Must(template.New("").Funcs(template.FuncMap{
	"pref": func(i int) int { return 10 * (i + 1) }, // MX preferences 10, 20, ...
}).ParseGlob("testdata/*.tmpl")).ParseGlob("testdata/zones/*.tmpl"))

// configData is what the templates refer to.
type configData struct {
	DNS, Resolver, Cache, Web, OwnerWeb, Primary string
	MaxAge                                       int
	Work, PebbleDir, KeyBase                     string
	TSIGKey, TSIGSecret                          string // the autopilot's key on the primary
}

func (s *suite) configData() configData {
	return configData{
		DNS: dnsAddr, Resolver: resolverAddr, Cache: cacheAddr, Web: webAddr, OwnerWeb: ownerWebAddr, Primary: autopilotPrimaryAddr,
		MaxAge: maxAge, Work: s.work, PebbleDir: s.pebbleDir, KeyBase: s.keyBase,
		TSIGKey: exampleTSIGKey, TSIGSecret: s.tsigSecret,
	}
}

// zoneData is what a zone template refers to: the serial and MX hosts of the
// zones that change while everything runs.
type zoneData struct {
	DNS, OwnerWeb, Web string
	Serial             int
	MX                 []string
	SubMX              string // example.test: the MX host of sub.example.test, if any
	Settings           string // customers.test: the settings record of moving.customers.test, if any
}

// render executes a template into a file of the work dir, atomically, so
// that a zone reload never sees a half-written file.
func render(t *testing.T, tmpl *template.Template, name string, data any, path string) {
	t.Helper()
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// writeZone writes work/zones/ZONE.zone from testdata/zones/ZONE.zone.tmpl.
func (s *suite) writeZone(t *testing.T, zone string, z zoneData) {
	t.Helper()
	z.DNS, z.OwnerWeb, z.Web = dnsAddr, ownerWebAddr, webAddr
	render(t, templates, zone+".zone.tmpl", z, s.path("zones", zone+".zone"))
}

// writeConfigs writes the zones, the DNSSEC key of signed.test and the
// configs of every daemon.
func (s *suite) writeConfigs(t *testing.T) {
	for _, dir := range []string{"zones", "keys", "unbound", "unbound-sender", "caddy-home", "caddy-cached-home", "knot", "knot/db", "knot/zones"} {
		if err := os.Mkdir(s.path(dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.writeZone(t, "example.test", zoneData{Serial: 1, MX: []string{"mx1.example.test", "mx2.example.test"}, SubMX: "mail.sub.example.test"})
	s.writeZone(t, "owner.test", zoneData{})
	s.writeZone(t, "nomail.test", zoneData{})
	s.writeZone(t, "provider.test", zoneData{})
	s.writeZone(t, "signed.test", zoneData{Serial: 1, MX: []string{"mx.signed.test"}})
	s.writeZone(t, "customers.test", movingStart)
	s.makeKey(t, "signed.test.")
	s.mxCA = newMXCA(t, s.path(mxCAFile))
	secret := make([]byte, 32)
	rand.Read(secret)
	s.tsigSecret = base64.StdEncoding.EncodeToString(secret)
	data := s.configData()
	render(t, templates, "autopilot.test.zone.tmpl", zoneData{}, s.path("knot", "zones", "autopilot.test.zone"))
	render(t, templates, "knot.conf.tmpl", data, s.path("knot.conf"))
	render(t, templates, "Corefile.tmpl", data, s.path("Corefile"))
	render(t, templates, "unbound.conf.tmpl", data, s.path("unbound.conf"))
	s.writeCaddyfile(t, "Caddyfile", caddyVariant{admin: adminAddr, handlerServer: dnsAddr, dashboardPort: dashboardPort})
	// The same with Caddyfile.example's autopilot, for the primary.
	s.writeCaddyfile(t, "Caddyfile.autopilot", caddyVariant{admin: adminAddr, handlerServer: dnsAddr, dashboardPort: dashboardPort, autopilot: true})
	// The same Caddy on other ports, asking the caching server block for
	// policies (and the authoritative one for permissions).
	s.writeCaddyfile(t, "Caddyfile.cached", caddyVariant{admin: "off", httpPort: 8080, httpsPort: 8443, handlerServer: cacheAddr, dashboardPort: dashboardPort + 1})
}

// makeKey makes the zone's key, a CSK (flags 257) that the dnssec plugin
// uses for both roles, in the files BIND's dnssec-keygen would write. Its
// DNSKEY is the trust anchor of unbound and delv.
func (s *suite) makeKey(t *testing.T, zone string) {
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     257,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	priv, err := k.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	s.keyBase = fmt.Sprintf("K%s+%03d+%05d", zone, k.Algorithm, k.KeyTag())
	files := map[string]string{
		s.keyBase + ".key":     k.String() + "\n",
		s.keyBase + ".private": k.PrivateKeyString(priv.(*ecdsa.PrivateKey)),
		"signed.test.anchor":   k.String() + "\n",
		// delv wants the anchor in named.conf syntax.
		"delv.anchor": fmt.Sprintf("trust-anchors {\n  %s static-key %d %d %d \"%s\";\n};\n",
			zone, k.Flags, k.Protocol, k.Algorithm, k.PublicKey),
	}
	for name, content := range files {
		if err := os.WriteFile(s.path("keys", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// caddyVariant is what a Caddyfile of the suite changes in Caddyfile.example.
type caddyVariant struct {
	admin               string
	httpPort, httpsPort int
	handlerServer       string // the DNS servers the mta_sts handler asks
	servers             string // the DNS servers the permission, the mta_sts app and tlsrpt ask; dnsAddr if empty
	bind                string // the address of every listener (default_bind); all if empty
	acme                string // the ACME directory's host:port; pebbleACME if empty
	dashboardPort       int    // the port of the staff's dashboard site (bound to bind, or webAddr); dashboardPort if 0
	autopilot           bool   // the app's autopilot, uncommented, for the suite's primary
}

// exampleServers is the servers line of Caddyfile.example, in the
// permission module, the mta_sts app, the policy handler and the report
// receiver.
const exampleServers = "servers 192.0.2.53 198.51.100.53"

// The mta_sts app of Caddyfile.example checks once a day; the suite's once
// every 3 s, trusting the MX hosts' CA (work/mxCAFile).
const (
	exampleInterval = "interval 24h"
	mxCAFile        = "mx-ca.pem"
)

// The autopilot block of Caddyfile.example, commented out there. The
// suite's uncomments it, points it at Knot with autopilot.test as the
// zone its key is checked on, and has it act, at once, on short periods:
// two passing checks a second apart and one successful session in the
// TLS reports of two days promote; a change may follow a second after
// the last.
const (
	exampleAutopilot = "# autopilot {"
	examplePrimary   = "primary 192.0.2.1"
	exampleCheckZone = "check_zone provider.example"
	exampleDryRun    = "dry_run"
	exampleTSIGKey   = "autopilot.provider.example"
)

var autopilotPeriods = []string{"promote_checks 2", "promote_after 1s", "report_days 2", "min_sessions 1", "change_interval 1s"}

// The report site of Caddyfile.example and of the suite: the host of the
// https rua in the Corefile.
const (
	exampleReportSite = "reports.provider.example {"
	reportHost        = "reports.provider.test"
)

// The webhook of Caddyfile.example's mta_sts app; the suite's posts to its
// own receiver (events_test.go), whose certificate is of the MX hosts' CA.
const exampleWebhook = "webhook https://hooks.provider.example/mta-sts {"

// The dashboard site of Caddyfile.example: its address, its internal
// listen address and its user's password hash, which the suite replaces
// with its own host on the node's address and a hash of a password it
// makes.
const (
	exampleDashboardSite = "https://dashboard.provider.example:8443 {"
	exampleDashboardBind = "bind 10.0.0.5"
	exampleDashboardUser = "staff "
)

// writeCaddyfile writes Caddy's config as the README and Caddyfile.example
// describe it, made from Caddyfile.example itself so the two cannot drift:
// with global options for the suite (admin, storage, Pebble as the CA),
// the servers lines pointing at our CoreDNS, the mta_sts app checking
// every 3 s with the MX hosts' CA and posting events to the suite's
// receiver, and the report site at reportHost.
func (s *suite) writeCaddyfile(t *testing.T, name string, v caddyVariant) {
	t.Helper()
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	var globals bytes.Buffer
	err = templates.ExecuteTemplate(&globals, "caddy-globals.tmpl", map[string]any{
		"Admin": v.admin, "Work": s.work, "PebbleDir": s.pebbleDir, "HTTPPort": v.httpPort, "HTTPSPort": v.httpsPort,
		"Bind": v.bind, "ACME": cmp.Or(v.acme, pebbleACME),
	})
	if err != nil {
		t.Fatal(err)
	}
	servers := "servers " + cmp.Or(v.servers, dnsAddr)
	if s.dashboardHash == "" {
		s.makeDashboardPassword(t)
	}
	var out []string
	block, replaced, globalsAt, inGlobals := "", 0, -1, false
	autopilotLines, inAutopilot := 0, false
	for _, line := range strings.Split(string(example), "\n") {
		trimmed := strings.TrimSpace(line)
		if v.autopilot && (inAutopilot || trimmed == exampleAutopilot) {
			line, inAutopilot, autopilotLines = autopilotLine(line, autopilotLines)
			out = append(out, line)
			continue
		}
		switch {
		case trimmed == "{" && globalsAt < 0:
			globalsAt, inGlobals = len(out), true
			line += "\n" + strings.TrimRight(globals.String(), "\n")
		case line == "}":
			inGlobals = false
		case trimmed == exampleServers && block == "mta_sts {" && inGlobals:
			line, replaced = strings.Replace(line, exampleServers, servers, 1), replaced+1
		case trimmed == exampleInterval && block == "mta_sts {" && inGlobals:
			indent, _, _ := strings.Cut(line, exampleInterval)
			line, replaced = indent+"interval 3s\n"+indent+"ca_file "+s.path(mxCAFile), replaced+1
		case trimmed == exampleWebhook && inGlobals:
			indent, _, _ := strings.Cut(line, exampleWebhook)
			line, replaced = indent+"webhook "+hooksURL+" {\n"+indent+"\tca_file "+s.path(mxCAFile), replaced+1
		case trimmed == exampleReportSite:
			line, replaced = reportHost+" {", replaced+1
		case trimmed == exampleDashboardSite:
			line, replaced = fmt.Sprintf("https://%s:%d {", dashboardHost, cmp.Or(v.dashboardPort, dashboardPort)), replaced+1
		case trimmed == exampleDashboardBind:
			line, replaced = strings.Replace(line, exampleDashboardBind, "bind "+cmp.Or(v.bind, webAddr), 1), replaced+1
		case strings.HasPrefix(trimmed, exampleDashboardUser) && block == "basic_auth {":
			indent, _, _ := strings.Cut(line, exampleDashboardUser)
			line, replaced = indent+dashboardUser+" "+s.dashboardHash, replaced+1
		case strings.HasSuffix(trimmed, "{") && !strings.HasPrefix(trimmed, "#"):
			block = trimmed
		case trimmed == exampleServers && block == "permission mta_sts {":
			line, replaced = strings.Replace(line, exampleServers, servers, 1), replaced+1
		case trimmed == exampleServers && block == "mta_sts {":
			line, replaced = strings.Replace(line, exampleServers, "servers "+v.handlerServer, 1), replaced+1
		case trimmed == exampleServers && strings.HasPrefix(block, "tlsrpt "):
			line, replaced = strings.Replace(line, exampleServers, servers, 1), replaced+1
		case trimmed == exampleServers && block == "mta_sts_dashboard {":
			line, replaced = strings.Replace(line, exampleServers, servers, 1), replaced+1
		}
		out = append(out, line)
	}
	if globalsAt < 0 || replaced != 11 {
		t.Fatalf("Caddyfile.example changed shape: global options at line %d, %d of 11 lines found "+
			"(5 servers lines, the app's interval and webhook, the report site, the dashboard's site, bind and user)", globalsAt+1, replaced)
	}
	if v.autopilot && autopilotLines != 5 {
		t.Fatalf("Caddyfile.example's autopilot block changed shape: %d of 5 lines found (its start and end, primary, check_zone, dry_run)", autopilotLines)
	}
	if err := os.WriteFile(s.path(name), []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// autopilotLine uncomments a line of Caddyfile.example's autopilot block
// and makes it the suite's, counting the lines it changes: it returns the
// line, whether the block goes on after it, and the count.
func autopilotLine(line string, changed int) (string, bool, int) {
	indent, rest, _ := strings.Cut(line, "# ")
	switch strings.TrimSpace(rest) {
	case "}":
		return indent + rest, false, changed + 1
	case examplePrimary:
		rest = "\tprimary " + autopilotPrimaryAddr
	case exampleCheckZone:
		rest = "\tcheck_zone autopilot.test"
	case exampleDryRun:
		rest = "\t" + strings.Join(autopilotPeriods, "\n"+indent+"\t")
	case strings.TrimPrefix(exampleAutopilot, "# "):
	default:
		return indent + rest, true, changed
	}
	return indent + rest, true, changed + 1
}
