package caddymtasts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
)

// eventsReport is a report of example.com at at, with policy id and mx
// patterns mx, and its MX hosts' results.
func eventsReport(at time.Time, id string, mx []string, hosts ...readiness.HostResult) readiness.DomainReport {
	for i := range hosts {
		hosts[i].CheckedAt = at
	}
	return readiness.DomainReport{Domain: "example.com", CheckedAt: at, Mode: "enforce", PolicyID: id, PolicyMX: mx, MXHosts: hosts}
}

func passing(host string, notAfter time.Time) readiness.HostResult {
	return readiness.HostResult{Host: host, Outcome: readiness.OutcomePass, NotAfter: notAfter}
}

func failing(host string, o readiness.Outcome, failure string) readiness.HostResult {
	return readiness.HostResult{Host: host, Outcome: o, Failure: failure}
}

// eventLine is an event on one line: type, host, severity, problem.
func eventLine(e event) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s %s", e.Type, e.Host, e.Severity, e.Problem))
}

// TestDetectEvents runs one domain's reports through detectEvents in
// order, with warn_days 14, and checks what each one adds.
func TestDetectEvents(t *testing.T) {
	day0 := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	at := func(days int) time.Time { return day0.AddDate(0, 0, days) }
	year := at(365)
	mx1, mx2 := []string{"mx1.example.com"}, []string{"mx2.example.com"}
	steps := []struct {
		name   string
		report readiness.DomainReport
		events []string
	}{
		{"first check: the policy is no change", eventsReport(at(0), "id1", mx1, passing("mx1.example.com", year)), nil},
		{"the same again", eventsReport(at(1), "id1", mx1, passing("mx1.example.com", year)), nil},
		{"the policy could not be read", eventsReport(at(2), "", nil), nil},
		{"the host could not be reached", eventsReport(at(3), "id1", mx1, failing("mx1.example.com", readiness.OutcomeConnect, "refused")), nil},
		{"the MX moved", eventsReport(at(4), "id2", mx2, passing("mx2.example.com", year)), []string{"policy_changed"}},
		{"a renewed certificate", eventsReport(at(5), "id2", mx2, passing("mx2.example.com", at(400))), nil},
		{"it expires in 13 days", eventsReport(at(387), "id2", mx2, passing("mx2.example.com", at(400))),
			[]string{"mx_tls_problem mx2.example.com warning certificate expires in 13 days, at 2026-04-05T03:00:00Z; from then on senders that enforce MTA-STS refuse this host"}},
		{"still expiring", eventsReport(at(390), "id2", mx2, passing("mx2.example.com", at(400))), nil},
		{"expired", eventsReport(at(401), "id2", mx2, failing("mx2.example.com", readiness.OutcomeExpired, "certificate expired at T")),
			[]string{"mx_tls_problem mx2.example.com failure certificate expired at T"}},
		{"another failure", eventsReport(at(402), "id2", mx2, failing("mx2.example.com", readiness.OutcomeNoSTARTTLS, "STARTTLS not offered")),
			[]string{"mx_tls_problem mx2.example.com failure STARTTLS not offered"}},
		{"down meanwhile", eventsReport(at(403), "id2", mx2, failing("mx2.example.com", readiness.OutcomeDNS, "no addresses")), nil},
		{"replaced", eventsReport(at(404), "id2", mx2, passing("mx2.example.com", at(800))), []string{"mx_tls_recovered mx2.example.com"}},
		{"a failing host appears with a new policy",
			eventsReport(at(405), "id3", []string{"mx2.example.com", "mx3.example.com"}, passing("mx2.example.com", at(800)),
				failing("mx3.example.com", readiness.OutcomeSelfSigned, "self-signed certificate")),
			[]string{"policy_changed", "mx_tls_problem mx3.example.com failure self-signed certificate"}},
	}
	b := new(baseline)
	var ids []string
	for _, s := range steps {
		events, _ := detectEvents(b, s.report, 14*24*time.Hour)
		var got []string
		for _, e := range events {
			got = append(got, eventLine(e))
			ids = append(ids, e.ID)
			if e.Domain != "example.com" || !e.Time.Equal(s.report.CheckedAt) || e.Mode != "enforce" || len(e.ID) != 32 {
				t.Errorf("%s: %+v", s.name, e)
			}
		}
		if !slices.Equal(got, s.events) {
			t.Errorf("%s: events %q, want %q", s.name, got, s.events)
		}
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != 7 {
		t.Errorf("ids %v: want 7 different ones", ids)
	}
}

func TestPolicyChangedBeforeAndAfter(t *testing.T) {
	seen := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	b := new(baseline)
	detectEvents(b, eventsReport(seen, "id1", []string{"mx1.example.com", "mx2.example.com"}), 0)
	events, changed := detectEvents(b, eventsReport(seen.Add(time.Hour), "id2", []string{"mx2.example.com", "mx.attacker.example"}), 0)
	if len(events) != 1 || !changed {
		t.Fatalf("events %+v, changed %v", events, changed)
	}
	e := events[0]
	if got := fmt.Sprint(e.Before, e.After, e.MXAdded, e.MXRemoved); got != fmt.Sprint(
		&policyState{ID: "id1", Mode: "enforce", MX: []string{"mx1.example.com", "mx2.example.com"}, Since: seen},
		&policyState{ID: "id2", Mode: "enforce", MX: []string{"mx2.example.com", "mx.attacker.example"}},
		[]string{"mx.attacker.example"}, []string{"mx1.example.com"}) {
		t.Errorf("before, after, added, removed: %s", got)
	}
	if b.Policy.ID != "id2" || !b.Policy.Since.Equal(seen.Add(time.Hour)) {
		t.Errorf("baseline %+v", b.Policy)
	}
}

// TestEventIDsAreTheSameForTheSameChange checks what makes two nodes, or a
// run that ran again, give the same id: the change and the time its
// before state was first seen, not the time the change was seen.
func TestEventIDsAreTheSameForTheSameChange(t *testing.T) {
	seen := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	changeSeenAt := func(first, later time.Time) string {
		b := new(baseline)
		detectEvents(b, eventsReport(first, "id1", []string{"mx1.example.com"}), 0)
		events, _ := detectEvents(b, eventsReport(later, "id2", []string{"mx2.example.com"}), 0)
		return events[0].ID
	}
	if a, b := changeSeenAt(seen, seen.Add(time.Hour)), changeSeenAt(seen, seen.Add(time.Hour+time.Minute)); a != b {
		t.Errorf("the same change seen a minute apart: ids %s, %s", a, b)
	}
	if a, b := changeSeenAt(seen, seen.Add(time.Hour)), changeSeenAt(seen.Add(time.Minute), seen.Add(time.Hour)); a == b {
		t.Errorf("changes from policies first seen at different times: the same id %s", a)
	}
}

func TestHostsLeaveTheBaseline(t *testing.T) {
	now := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	b := new(baseline)
	detectEvents(b, eventsReport(now, "id1", nil, passing("mx1.example.com", now.AddDate(1, 0, 0)), passing("mx2.example.com", now.AddDate(1, 0, 0))), 0)
	if _, changed := detectEvents(b, eventsReport(now, "id1", nil), 0); changed || len(b.Hosts) != 2 {
		t.Errorf("a report without MX hosts (the lookup failed) changed the baseline: %v", b.Hosts)
	}
	detectEvents(b, eventsReport(now, "id1", nil, passing("mx2.example.com", now.AddDate(1, 0, 0))), 0)
	if _, ok := b.Hosts["mx1.example.com"]; ok || len(b.Hosts) != 1 {
		t.Errorf("hosts %v, want mx2.example.com alone", b.Hosts)
	}
}

func TestCertificateProblem(t *testing.T) {
	now := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	failed := errors.New("acme: rate limited")
	for _, c := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"identifier": "mta-sts.Example.com", "renewal": false, "error": failed},
			"certificate_problem mta-sts.example.com failure no certificate could be obtained for mta-sts.example.com, so senders cannot fetch the policy: acme: rate limited"},
		{map[string]any{"identifier": "mta-sts.example.com", "renewal": true, "remaining": 9*24*time.Hour + time.Hour, "error": failed},
			"certificate_problem mta-sts.example.com warning renewing the certificate of mta-sts.example.com failed; it expires in 9 days: acme: rate limited"},
		{map[string]any{"identifier": "mta-sts.example.com", "renewal": true, "remaining": -time.Hour, "error": failed},
			"certificate_problem mta-sts.example.com failure the certificate of mta-sts.example.com expired and renewing it failed, so senders cannot fetch the policy: acme: rate limited"},
		{map[string]any{"identifier": "reports.provider.example", "error": failed}, ""},
		{map[string]any{"identifier": "mta-sts.", "error": failed}, ""},
	} {
		e, ok := certificateProblem(c.data, now)
		if got := eventLine(e); ok != (c.want != "") || ok && (got != c.want || e.Domain != "example.com") {
			t.Errorf("%v: %v %q, want %q", c.data, ok, got, c.want)
		}
	}
	first, _ := certificateProblem(map[string]any{"identifier": "mta-sts.example.com", "error": failed}, now)
	again, _ := certificateProblem(map[string]any{"identifier": "mta-sts.example.com", "error": errors.New("other")}, now.Add(time.Hour))
	tomorrow, _ := certificateProblem(map[string]any{"identifier": "mta-sts.example.com", "error": failed}, now.Add(24*time.Hour))
	if first.ID != again.ID || first.ID == tomorrow.ID {
		t.Errorf("ids %s, %s an hour later, %s a day later: want one a day", first.ID, again.ID, tomorrow.ID)
	}
}
