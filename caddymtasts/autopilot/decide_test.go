package autopilot

import (
	"strings"
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

var day0 = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)

// cleanReports are reports that allow a promotion under DefaultConfig.
var cleanReports = readiness.Sessions{Reports: 14, Successful: 500}

// domain drives a domain through daily runs as the app does: a check is
// observed, decided on with the settings read, and a change is recorded
// as written, which changes the mode the next check sees.
type domain struct {
	t        *testing.T
	cfg      Config
	h        History
	now      time.Time
	mode     policy.Mode
	settings Settings
	reports  readiness.Sessions
}

func newDomain(t *testing.T, mode policy.Mode) *domain {
	return &domain{t: t, cfg: DefaultConfig(), h: History{Domain: "example.com"}, now: day0, mode: mode,
		settings: SettingsNone, reports: cleanReports}
}

// run checks the domain with result at d.now, decides, applies a change,
// and moves d.now on by a day.
func (d *domain) run(result Result, reasons ...string) Decision {
	c := Check{At: d.now, Mode: d.mode, Result: result, Reasons: reasons}
	d.h.Observe(c, d.cfg.MaxGap)
	in := Input{Now: d.now, Check: c, Settings: d.settings, Reports: d.reports}
	if d.settings == SettingsAutopilot {
		in.RecordMode = d.mode
	}
	dec := d.cfg.Decide(&d.h, in)
	e := Entry{At: d.now, Decision: dec}
	if dec.Action == Promote || dec.Action == Demote {
		e.Outcome, e.Record = Written, RecordFor(dec.Action)
		d.mode, d.settings = dec.Action.Mode(), SettingsAutopilot
	}
	d.h.Record(e)
	d.now = d.now.Add(24 * time.Hour)
	return dec
}

// runUntil runs passing checks until the decision is want, and returns
// the number of runs it took; it fails after limit runs.
func (d *domain) runUntil(want Action, limit int) int {
	d.t.Helper()
	for n := 1; n <= limit; n++ {
		if got := d.run(Pass); got.Action == want {
			return n
		}
	}
	d.t.Fatalf("no %s after %d runs; history %+v", want, limit, d.h)
	return 0
}

func TestPromotion(t *testing.T) {
	d := newDomain(t, policy.ModeTesting)
	// The 15th daily check is the 14th day after the first.
	if n := d.runUntil(Promote, 30); n != 15 {
		t.Errorf("promoted at run %d, want 15", n)
	}
	if d.mode != policy.ModeEnforce || d.h.LastChange.IsZero() {
		t.Errorf("after the promotion: mode %s, last change %v", d.mode, d.h.LastChange)
	}
	if got := d.run(Pass); got.Action != Keep || got.Reason != "enforce; every MX host passes" {
		t.Errorf("the run after: %+v", got)
	}
}

// Each condition of a promotion, alone unmet, keeps the domain in testing
// and says which.
func TestPromotionNeedsEveryCondition(t *testing.T) {
	cfg := DefaultConfig()
	now := day0.Add(20 * 24 * time.Hour)
	long := Streak{Passes: 20, Since: day0, Last: now}
	pass := Check{At: now, Mode: policy.ModeTesting, Result: Pass}
	for _, c := range []struct {
		name    string
		streak  Streak
		check   Check
		reports readiness.Sessions
		reason  string
	}{
		{"all met", long, pass, cleanReports, ""},
		{"the latest check failed", Streak{}, Check{At: now, Mode: policy.ModeTesting, Result: Fail, Reasons: []string{"mx: expired"}},
			cleanReports, "the latest check did not pass: mx: expired"},
		{"few checks", Streak{Passes: 6, Since: day0, Last: now}, pass, cleanReports, "6 of 7 consecutive passing checks"},
		{"a short streak", Streak{Passes: 9, Since: now.Add(-13 * 24 * time.Hour), Last: now}, pass, cleanReports,
			"passing since 2026-03-08T03:00:00Z, 312h0m0s of 336h0m0s"},
		{"failed sessions", long, pass, readiness.Sessions{Successful: 500, Failed: 1},
			"TLS reports of the last 14 days: 1 of 501 sessions failed"},
		{"few sessions", long, pass, readiness.Sessions{Successful: 99}, "TLS reports of the last 14 days: 99 successful sessions, 100 needed"},
		{"no reports", long, pass, readiness.Sessions{}, "TLS reports of the last 14 days: 0 successful sessions, 100 needed"},
	} {
		h := &History{Streak: c.streak}
		got := cfg.Decide(h, Input{Now: now, Check: c.check, Settings: SettingsNone, Reports: c.reports})
		switch {
		case c.reason == "" && got.Action != Promote:
			t.Errorf("%s: %+v, want a promotion", c.name, got)
		case c.reason != "" && (got.Action != Keep || got.Reason != c.reason):
			t.Errorf("%s: %+v, want keep: %s", c.name, got, c.reason)
		}
	}
	// Without a minimum of sessions, the checks alone promote.
	cfg.MinSessions = 0
	if got := cfg.Decide(&History{Streak: long}, Input{Now: now, Check: pass, Settings: SettingsNone}); got.Action != Promote {
		t.Errorf("min_sessions 0, no reports: %+v, want a promotion", got)
	}
}

// Every outcome of a probe, found in a domain in enforce: the failures a
// sender applying enforce refuses demote at once; the others say nothing
// about TLS and keep it.
func TestDemotionByOutcome(t *testing.T) {
	for outcome, demotes := range map[readiness.Outcome]bool{
		readiness.OutcomeNoSTARTTLS:      true,
		readiness.OutcomeSTARTTLSRefused: true,
		readiness.OutcomeHandshake:       true,
		readiness.OutcomeTLSVersion:      true,
		readiness.OutcomeExpired:         true,
		readiness.OutcomeUntrusted:       true,
		readiness.OutcomeSelfSigned:      true,
		readiness.OutcomeNameMismatch:    true,
		readiness.OutcomeDNS:             false,
		readiness.OutcomeConnect:         false,
		readiness.OutcomeSMTP:            false,
		readiness.OutcomeCanceled:        false,
	} {
		report := readiness.DomainReport{
			Domain: "example.com", CheckedAt: day0, Mode: policy.ModeEnforce,
			Reasons: []string{"mx2.example.com: " + string(outcome)},
			MXHosts: []readiness.HostResult{
				{Host: "mx1.example.com", Outcome: readiness.OutcomePass},
				{Host: "mx2.example.com", Outcome: outcome, Failure: string(outcome)},
			},
		}
		check := CheckOf(report)
		h := &History{}
		h.Observe(check, time.Hour)
		got := DefaultConfig().Decide(h, Input{Now: day0, Check: check, Settings: SettingsNone, Reports: cleanReports})
		want := Keep
		if demotes {
			want = Demote
		}
		if got.Action != want || !strings.Contains(got.Reason, "mx2.example.com: "+string(outcome)) {
			t.Errorf("%s: %+v, want %s with the host's failure", outcome, got, want)
		}
	}
}

func TestCheckOf(t *testing.T) {
	ready := readiness.DomainReport{CheckedAt: day0, Ready: true, Mode: policy.ModeTesting,
		MXHosts: []readiness.HostResult{{Host: "mx", Outcome: readiness.OutcomePass}}}
	if c := CheckOf(ready); c.Result != Pass || !c.At.Equal(day0) || c.Mode != policy.ModeTesting {
		t.Errorf("ready: %+v", c)
	}
	// Failed sessions in the reports, or no policy: not ready, no host
	// failing.
	for _, r := range []readiness.DomainReport{
		{Mode: policy.ModeEnforce, Reasons: []string{"TLS reports of the last 7 days: 3 of 123 sessions failed"},
			MXHosts: []readiness.HostResult{{Host: "mx", Outcome: readiness.OutcomePass}}},
		{Reasons: []string{"no policy to enforce: SERVFAIL"}, MXHosts: []readiness.HostResult{}},
	} {
		if c := CheckOf(r); c.Result != Inconclusive || len(c.Reasons) != 1 {
			t.Errorf("%v: %+v, want inconclusive with the reason", r.Reasons, c)
		}
	}
}

func TestDemotionByReports(t *testing.T) {
	d := newDomain(t, policy.ModeEnforce)
	d.reports = readiness.Sessions{Reports: 3, Successful: 120, Failed: 3}
	got := d.run(Pass)
	if got.Action != Demote || got.Reason != "TLS reports of the last 14 days: 3 of 123 sessions failed" {
		t.Errorf("%+v, want a demotion for the reports", got)
	}
	// An inconclusive check in enforce, reports clean: kept.
	d = newDomain(t, policy.ModeEnforce)
	if got := d.run(Inconclusive, "mx.example.com: connect_failed"); got.Action != Keep ||
		got.Reason != "enforce; the check found no failure a sender would hit: mx.example.com: connect_failed" {
		t.Errorf("inconclusive in enforce: %+v", got)
	}
}

// After a demotion, a promotion needs the whole period again, however long
// the host passed before it failed; so a host that fails now and then
// changes the policy at most twice per period.
func TestHysteresis(t *testing.T) {
	d := newDomain(t, policy.ModeTesting)
	d.runUntil(Promote, 15)
	d.run(Pass)
	if got := d.run(Fail, "mx.example.com: certificate expired"); got.Action != Demote {
		t.Fatalf("a failure in enforce: %+v, want a demotion", got)
	}
	if n := d.runUntil(Promote, 30); n != 15 {
		t.Errorf("promoted again %d runs after the demotion, want 15", n)
	}

	// Failed sessions demote too, with checks passing throughout: the
	// streak starts again at the demotion all the same.
	d = newDomain(t, policy.ModeTesting)
	d.runUntil(Promote, 15)
	d.reports = readiness.Sessions{Successful: 500, Failed: 1}
	if got := d.run(Pass); got.Action != Demote {
		t.Fatalf("failed sessions in enforce: %+v, want a demotion", got)
	}
	d.reports = cleanReports
	if n := d.runUntil(Promote, 30); n != 15 {
		t.Errorf("promoted again %d runs after a demotion for reports, want 15", n)
	}
}

// A host that fails every few days never gets its domain promoted.
func TestFlappingHostStaysInTesting(t *testing.T) {
	d := newDomain(t, policy.ModeTesting)
	for run := range 120 {
		result := Pass
		if run%10 == 9 {
			result = Fail
		}
		if got := d.run(result); got.Action != Keep {
			t.Fatalf("run %d: %+v", run, got)
		}
	}
}

// A promotion waits for ChangeInterval after the last change; a demotion
// never waits.
func TestChangeBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PromoteChecks, cfg.PromoteAfter, cfg.MinSessions = 1, 0, 0
	now := day0
	h := &History{Streak: Streak{Passes: 1, Since: now, Last: now}, LastChange: now.Add(-23 * time.Hour)}
	pass := Check{At: now, Mode: policy.ModeTesting, Result: Pass}
	got := cfg.Decide(h, Input{Now: now, Check: pass, Settings: SettingsAutopilot, RecordMode: policy.ModeTesting})
	if got.Action != Blocked || got.Wanted != Promote || !strings.HasPrefix(got.Reason, "changed at 2026-02-28T04:00:00Z, less than 24h0m0s ago; it would promote: ") {
		t.Errorf("a promotion 23 hours after a change: %+v", got)
	}
	h.LastChange = now.Add(-24 * time.Hour)
	if got := cfg.Decide(h, Input{Now: now, Check: pass, Settings: SettingsAutopilot, RecordMode: policy.ModeTesting}); got.Action != Promote {
		t.Errorf("a promotion 24 hours after a change: %+v", got)
	}
	h.LastChange = now.Add(-time.Minute)
	fail := Check{At: now, Mode: policy.ModeEnforce, Result: Fail, Reasons: []string{"mx: expired"}}
	if got := cfg.Decide(h, Input{Now: now, Check: fail, Settings: SettingsAutopilot, RecordMode: policy.ModeEnforce}); got.Action != Demote {
		t.Errorf("a demotion a minute after a change: %+v", got)
	}

	// Driven day by day with periods shorter than a day, the bound is
	// what spaces the promotions.
	d := newDomain(t, policy.ModeTesting)
	d.cfg = cfg
	if got := d.run(Pass); got.Action != Promote {
		t.Fatalf("first run: %+v", got)
	}
	d.now = d.now.Add(-23 * time.Hour) // an hour after the promotion
	if got := d.run(Fail); got.Action != Demote {
		t.Fatalf("a failure an hour after the promotion: %+v", got)
	}
	d.now = d.now.Add(-22 * time.Hour) // two hours after the demotion
	if got := d.run(Pass); got.Action != Blocked {
		t.Errorf("a pass two hours after the demotion: %+v, want blocked", got)
	}
}

// A change is made only to a domain whose settings record is none or the
// autopilot's, once read.
func TestSettingsDecide(t *testing.T) {
	now := day0
	fail := Check{At: now, Mode: policy.ModeEnforce, Result: Fail, Reasons: []string{"mx: expired"}}
	for _, c := range []struct {
		settings   Settings
		recordMode policy.Mode
		action     Action
		reason     string
	}{
		{SettingsUnread, "", Blocked, "the settings record is not read yet; it would demote: "},
		{SettingsExplicit, "", Blocked, "the settings record at _mta-sts is not the autopilot's: a customer's or operator's settings win; it would demote: "},
		{SettingsNone, "", Demote, "senders applying enforce would refuse an MX host: mx: expired"},
		{SettingsAutopilot, policy.ModeEnforce, Demote, "senders applying enforce would refuse an MX host: mx: expired"},
		{SettingsAutopilot, policy.ModeTesting, Keep, "the autopilot's record sets mode=testing already; the secondaries publish it after the zone transfer"},
	} {
		got := DefaultConfig().Decide(&History{}, Input{Now: now, Check: fail, Settings: c.settings, RecordMode: c.recordMode, Reports: cleanReports})
		if got.Action != c.action || !strings.HasPrefix(got.Reason, c.reason) || (got.Action == Blocked) != (got.Wanted == Demote) {
			t.Errorf("settings %q: %+v, want %s: %s", c.settings, got, c.action, c.reason)
		}
	}
	// With no change called for, the settings need no reading.
	pass := Check{At: now, Mode: policy.ModeEnforce, Result: Pass}
	if got := DefaultConfig().Decide(&History{}, Input{Now: now, Check: pass, Reports: cleanReports}); got.Action != Keep {
		t.Errorf("unread settings, nothing to change: %+v", got)
	}
}

func TestModeNoneAndNoPolicyAreLeftAlone(t *testing.T) {
	for _, c := range []Check{
		{At: day0, Mode: policy.ModeNone, Result: Fail, Reasons: []string{"mx: expired"}},
		{At: day0, Result: Inconclusive, Reasons: []string{"no policy to enforce: SERVFAIL"}},
	} {
		h := &History{Streak: Streak{Passes: 30, Since: day0.AddDate(0, -1, 0), Last: day0}}
		if got := DefaultConfig().Decide(h, Input{Now: day0, Check: c, Settings: SettingsNone, Reports: cleanReports}); got.Action != Keep {
			t.Errorf("mode %q: %+v, want keep", c.Mode, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	for _, change := range []func(*Config){
		func(c *Config) { c.PromoteChecks = 0 },
		func(c *Config) { c.ReportDays = 0 },
		func(c *Config) { c.PromoteAfter = -time.Second },
		func(c *Config) { c.ChangeInterval = -time.Second },
		func(c *Config) { c.MinSessions = -1 },
		func(c *Config) { c.MaxGap = 0 },
	} {
		c := DefaultConfig()
		change(&c)
		if c.Validate() == nil {
			t.Errorf("%+v: valid", c)
		}
	}
}
