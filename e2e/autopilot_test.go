//go:build e2e

package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The addresses of the autopilot's scenario.
const (
	// Knot, the hidden primary of autopilot.test, which our CoreDNS
	// transfers, and where the autopilot writes.
	autopilotPrimaryAddr = "127.0.0.57"
	// mx.autopilot.test in the zone on the primary; its SMTP server runs
	// during the autopilot step.
	autopilotMXAddr = "127.0.0.62"
)

// autopilotEntry is what the scenario reads of an entry of the autopilot's
// history in Caddy's storage (caddymtasts/autopilot.Entry).
type autopilotEntry struct {
	At       time.Time `json:"at"`
	Action   string    `json:"action"`
	Reason   string    `json:"reason"`
	Record   string    `json:"record"`
	Outcome  string    `json:"outcome"`
	Evidence struct {
		Streak struct {
			Passes int `json:"passes"`
		} `json:"streak"`
		Reports struct {
			Successful int `json:"successful_sessions"`
		} `json:"tls_reports"`
		Settings string `json:"settings"`
	} `json:"evidence"`
}

// testAutopilot: autopilot.test, which our CoreDNS serves as a secondary
// of Knot, starts in testing. Its MX host passes and a clean TLS report
// arrives; Caddy is reloaded with Caddyfile.example's autopilot, which
// promotes the domain by a TSIG-signed UPDATE to Knot, and a sender sees
// enforce with a new id. Then the MX host's certificate is swapped for an
// expired one: the autopilot demotes the domain, and the sender sees
// testing with a new id. The seconds from the swap to the demotion
// published by our CoreDNS are measured. Both changes are events, posted
// to the provider's webhook.
func testAutopilot(t *testing.T, s *suite) {
	now := time.Now().Truncate(time.Second)
	mx := startMXServer(t, autopilotMXAddr, s.mxCA.issue(t, "mx.autopilot.test", now.Add(-time.Hour), now.Add(24*time.Hour)))
	s.ok(t, "SMTP server with STARTTLS for mx.autopilot.test on %s:25, a certificate of the suite's CA", autopilotMXAddr)
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	s.expect(t, "POST a TLS report about autopilot.test: 120 sessions, none failed",
		s.curlPost(t, reportURL(t, "autopilot.test"), tlsReport("autopilot.test", yesterday, false)), "201")
	testingID := idOf(policyBody("testing", "mx.autopilot.test"))
	s.expect(t, "mta-sts-query autopilot.test (a sender fetches it: the app checks it)", s.stsQuery(t, "autopilot.test"),
		stsValid(testingID, "testing", "mx.autopilot.test"))
	s.expect(t, "_mta-sts.autopilot.test on the primary", cmp.Or(short(t, autopilotPrimaryAddr, "_mta-sts.autopilot.test", dns.TypeTXT, false), "no settings record"),
		"no settings record")

	s.loadCaddyfile(t, "Caddyfile.autopilot")
	enforceID := idOf(policyBody("enforce", "mx.autopilot.test"))
	s.waitUntil(t, "caddy", 60*time.Second, func() error { return expectID(t, "autopilot.test", enforceID) })
	s.expect(t, "the settings record the autopilot wrote on the primary", short(t, autopilotPrimaryAddr, "_mta-sts.autopilot.test", dns.TypeTXT, false),
		`"v=STSCFG1; mode=enforce; by=autopilot"`)
	s.expect(t, "mta-sts-query autopilot.test: promoted, a new id", s.stsQuery(t, "autopilot.test", testingID),
		stsValid(enforceID, "enforce", "mx.autopilot.test"))
	promoted := s.autopilotEntry(t, "autopilot.test", "promote")
	s.expect(t, "the promotion in the audit trail", fmt.Sprintf("%s %s, settings %s, %d passing checks, %d successful sessions",
		promoted.Outcome, promoted.Record, promoted.Evidence.Settings, promoted.Evidence.Streak.Passes, promoted.Evidence.Reports.Successful),
		"written v=STSCFG1; mode=enforce; by=autopilot, settings none, 2 passing checks, 120 successful sessions")

	mx.stop()
	swapped := time.Now()
	startMXServer(t, autopilotMXAddr, s.mxCA.issue(t, "mx.autopilot.test", now.Add(-48*time.Hour), now.Add(-time.Hour)))
	s.ok(t, "mx.autopilot.test's certificate swapped for one that expired an hour ago")
	s.waitUntil(t, "caddy", 60*time.Second, func() error { return expectID(t, "autopilot.test", testingID) })
	published := time.Since(swapped)
	demoted := s.autopilotEntry(t, "autopilot.test", "demote")
	s.ok(t, "%.1f s from the expired certificate to the demotion published by our CoreDNS (%.1f s to the UPDATE; checks every 3 s)",
		published.Seconds(), demoted.At.Sub(swapped).Seconds())
	s.expect(t, "mta-sts-query autopilot.test: demoted, a new id", s.stsQuery(t, "autopilot.test", enforceID),
		stsValid(testingID, "testing", "mx.autopilot.test"))
	s.expect(t, "the settings record on the primary", short(t, autopilotPrimaryAddr, "_mta-sts.autopilot.test", dns.TypeTXT, false),
		`"v=STSCFG1; mode=testing; by=autopilot"`)
	s.expect(t, "the demotion in the audit trail", fmt.Sprintf("%s %s: %v", demoted.Outcome, demoted.Record,
		strings.Contains(demoted.Reason, "mx.autopilot.test: certificate expired at ")),
		"written v=STSCFG1; mode=testing; by=autopilot: true")
	for _, typ := range []string{"promoted", "demoted"} {
		e := s.waitForDelivery(t, typ, "autopilot.test").event
		s.expect(t, typ+" posted to the provider's webhook, signed: before, after, why",
			fmt.Sprintf("%s %q -> %s %q: %v", e.Before.Mode, e.Before.Record, e.After.Mode, e.After.Record, e.Reason != ""),
			map[string]string{
				"promoted": `testing "" -> enforce "v=STSCFG1; mode=enforce; by=autopilot": true`,
				"demoted":  `enforce "v=STSCFG1; mode=enforce; by=autopilot" -> testing "v=STSCFG1; mode=testing; by=autopilot": true`,
			}[typ])
	}
	s.expect(t, "the dashboard's page of autopilot.test (JSON, with the password): the changes written", s.dashboardChanges(t, "autopilot.test"),
		"promote v=STSCFG1; mode=enforce; by=autopilot, demote v=STSCFG1; mode=testing; by=autopilot")
	changes := counts(t, "caddy_mta_sts_autopilot_changes_total")
	s.expect(t, "caddy_mta_sts_autopilot_changes_total: promote, demote", changes["promote"]+" "+changes["demote"], "1 1")
	s.expect(t, "caddy_mta_sts_autopilot_failures_total", fmt.Sprint(counts(t, "caddy_mta_sts_autopilot_failures_total")), "map[]")

	// The steps after this one run without the autopilot, as before it.
	s.loadCaddyfile(t, "Caddyfile")
}

// expectID is nil once our CoreDNS publishes id at _mta-sts.DOMAIN.
func expectID(t *testing.T, domain, id string) error {
	if got := stsID(t, domain); got != id {
		return fmt.Errorf("_mta-sts.%s: id %q, want %q", domain, got, id)
	}
	return nil
}

// loadCaddyfile makes the running Caddy take work/NAME, through its
// admin endpoint, as caddy reload does.
func (s *suite) loadCaddyfile(t *testing.T, name string) {
	t.Helper()
	config, err := os.Open(s.path(name))
	if err != nil {
		t.Fatal(err)
	}
	defer config.Close()
	resp, err := http.Post("http://"+adminAddr+"/load", "text/caddyfile", config)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.expect(t, "caddy reload with "+name, resp.StatusCode, http.StatusOK)
}

// autopilotEntry returns the latest entry with action in the autopilot's
// history of domain in Caddy's storage.
func (s *suite) autopilotEntry(t *testing.T, domain, action string) autopilotEntry {
	t.Helper()
	data, err := os.ReadFile(s.path("caddy-storage", "mta_sts", "autopilot", "domains", domain+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Entries []autopilotEntry `json:"entries"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	for _, e := range slices.Backward(h.Entries) {
		if e.Action == action {
			return e
		}
	}
	t.Fatalf("no %s in the autopilot's history of %s: %s", action, domain, data)
	return autopilotEntry{}
}

// dashboardChanges lists the changes written in the autopilot's history of
// domain, oldest first, as the dashboard's domain page has them in JSON.
func (s *suite) dashboardChanges(t *testing.T, domain string) string {
	t.Helper()
	var page struct {
		Autopilot struct {
			Entries []autopilotEntry `json:"entries"`
		} `json:"autopilot"`
	}
	s.dashboardJSON(t, s.dashboardClient(t), fmt.Sprintf("https://%s:%d/domain/%s?format=json", dashboardHost, dashboardPort, domain), &page)
	var written []string
	for _, e := range page.Autopilot.Entries {
		if e.Outcome == "written" {
			written = append(written, e.Action+" "+e.Record)
		}
	}
	return strings.Join(written, ", ")
}
