// Package autopilot decides when a managed mail domain's MTA-STS policy
// moves to mode enforce, and when it steps back to testing, from the
// evidence the mta_sts app keeps about the domain: its readiness checks
// (package readiness) and the TLS reports senders sent about it (RFC 8460).
//
// The rules live here and nowhere else, without I/O: the app reads the
// evidence, adds each check to the domain's History, asks Decide, makes
// the change it returns and records it in the History, which is also the
// domain's audit trail.
package autopilot

import (
	"errors"
	"fmt"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

// Config holds the thresholds of the rules. DefaultConfig says what they
// are and why.
type Config struct {
	// A promotion needs PromoteChecks consecutive passing checks, the
	// first of them at least PromoteAfter ago.
	PromoteChecks int
	PromoteAfter  time.Duration
	// And the TLS reports of the last ReportDays days, today's included,
	// must count no failed session and at least MinSessions successful
	// ones.
	ReportDays  int
	MinSessions int64
	// A promotion waits until the domain's last change is ChangeInterval
	// old. A demotion never waits.
	ChangeInterval time.Duration
	// Checks more than MaxGap apart are not consecutive: a streak says
	// nothing about the days no check saw.
	MaxGap time.Duration
}

// DefaultConfig returns the defaults, chosen for the asymmetry of the two
// mistakes. A domain left in testing too long loses no mail; one in
// enforce while a host fails loses mail from every sender that applies the
// policy. So a promotion needs two kinds of evidence over two weeks, and a
// demotion one signal.
//
//   - 7 consecutive passing checks, the first at least 14 days ago: daily
//     checks, two weeks of them, sample a host through two weekly cycles
//     of maintenance and deployments, and an MX name in front of a pool of
//     servers many times (a probe sees one address per check). 7 rather
//     than 14 tolerates missed runs, which MaxGap bounds.
//   - TLS reports of the last 14 days with no failed session and at least
//     100 successful ones: the senders' view, from their networks, of
//     every address they used, over the same two weeks. 100 sessions (7 a
//     day) is the least that makes an intermittent failure likely to
//     show; a domain that gets fewer reported sessions stays in testing
//     unless the operator lowers it.
//   - At most one promotion per domain per 24 hours: senders that check
//     the id daily (RFC 8461 §3.3) see at most one new policy a day from
//     it, and a demotion, which never waits, follows a promotion at most
//     once, so a domain changes at most twice a day.
//   - A gap of more than 72 hours between checks ends a streak: two
//     missed daily runs are a restart or a retried claim, a week is no
//     evidence.
func DefaultConfig() Config {
	return Config{
		PromoteChecks:  7,
		PromoteAfter:   14 * 24 * time.Hour,
		ReportDays:     14,
		MinSessions:    100,
		ChangeInterval: 24 * time.Hour,
		MaxGap:         72 * time.Hour,
	}
}

// Validate checks that the thresholds make sense.
func (c Config) Validate() error {
	switch {
	case c.PromoteChecks < 1:
		return fmt.Errorf("autopilot: promote_checks %d: want at least 1", c.PromoteChecks)
	case c.ReportDays < 1:
		return fmt.Errorf("autopilot: report_days %d: want at least 1", c.ReportDays)
	case c.PromoteAfter < 0 || c.ChangeInterval < 0 || c.MinSessions < 0:
		return errors.New("autopilot: promote_after, change_interval and min_sessions may not be negative")
	case c.MaxGap <= 0:
		return errors.New("autopilot: max_gap must be positive")
	}
	return nil
}

// Action is what the autopilot does with a domain.
type Action string

// The actions.
const (
	Keep    Action = "keep"    // nothing: the evidence calls for no change
	Promote Action = "promote" // write mode=enforce
	Demote  Action = "demote"  // write mode=testing
	Blocked Action = "blocked" // the evidence calls for a change the autopilot may not make
)

// Mode returns the mode a change writes, or "" for an action that writes
// nothing.
func (a Action) Mode() policy.Mode {
	switch a {
	case Promote:
		return policy.ModeEnforce
	case Demote:
		return policy.ModeTesting
	}
	return ""
}

// Input is the evidence about one domain at one run.
type Input struct {
	Now time.Time
	// The latest check; its Mode is the mode the domain publishes.
	Check Check
	// Who wrote the domain's settings record. SettingsUnread blocks any
	// change, so that a caller reads the record, from the primary, only
	// for the domains the evidence wants to change, and decides again.
	Settings Settings
	// With SettingsAutopilot, the mode the autopilot's record sets: a
	// change it holds already waits for the zone transfer to publish it.
	RecordMode policy.Mode
	// What the TLS reports of the last Config.ReportDays days count.
	Reports readiness.Sessions
}

// Decision is what Decide returns: the action, why, and for Blocked, the
// change the evidence called for.
type Decision struct {
	Action Action `json:"action"`
	Wanted Action `json:"wanted,omitempty"`
	Reason string `json:"reason"`
}

// Decide returns what to do with a domain whose history is h (its streak
// already counting in.Check) and whose evidence is in.
//
// In mode enforce, a check that found a failure a sender would hit
// (Fail), or any failed session in the reports, demotes at once. In
// testing, a promotion needs the streak and the reports of Config. Mode
// none, or no policy, is never changed: none is a removal under way (RFC
// 8461 §8.3). A change is Blocked when the settings record is not the
// autopilot's (or was not read), and a promotion when the domain changed
// less than Config.ChangeInterval ago.
func (c Config) Decide(h *History, in Input) Decision {
	var d Decision
	switch in.Check.Mode {
	case policy.ModeEnforce:
		d = c.whetherToDemote(in)
	case policy.ModeTesting:
		d = c.whetherToPromote(h, in)
	case policy.ModeNone:
		return Decision{Action: Keep, Reason: "mode none: MTA-STS is being removed; the autopilot leaves it"}
	default:
		return Decision{Action: Keep, Reason: "no policy published: " + in.Check.reasons()}
	}
	if d.Action == Keep {
		return d
	}
	switch {
	case in.Settings == SettingsUnread:
		return blocked(d, "the settings record is not read yet")
	case in.Settings == SettingsExplicit:
		return blocked(d, "the settings record at _mta-sts is not the autopilot's: a customer's or operator's settings win")
	case in.Settings == SettingsAutopilot && in.RecordMode == d.Action.Mode():
		return Decision{Action: Keep, Reason: fmt.Sprintf("the autopilot's record sets mode=%s already; the secondaries publish it after the zone transfer", in.RecordMode)}
	case d.Action == Promote && !h.LastChange.IsZero() && in.Now.Sub(h.LastChange) < c.ChangeInterval:
		return blocked(d, fmt.Sprintf("changed at %s, less than %s ago", stamp(h.LastChange), c.ChangeInterval))
	}
	return d
}

func blocked(d Decision, why string) Decision {
	return Decision{Action: Blocked, Wanted: d.Action, Reason: fmt.Sprintf("%s; it would %s: %s", why, d.Action, d.Reason)}
}

// whetherToDemote decides for a domain in mode enforce.
func (c Config) whetherToDemote(in Input) Decision {
	switch {
	case in.Check.Result == Fail:
		return Decision{Action: Demote, Reason: "senders applying enforce would refuse an MX host: " + in.Check.reasons()}
	case in.Reports.Failed > 0:
		return Decision{Action: Demote, Reason: fmt.Sprintf("TLS reports of the last %d days: %d of %d sessions failed",
			c.ReportDays, in.Reports.Failed, in.Reports.Failed+in.Reports.Successful)}
	case in.Check.Result == Inconclusive:
		return Decision{Action: Keep, Reason: "enforce; the check found no failure a sender would hit: " + in.Check.reasons()}
	}
	return Decision{Action: Keep, Reason: "enforce; every MX host passes"}
}

// whetherToPromote decides for a domain in mode testing.
func (c Config) whetherToPromote(h *History, in Input) Decision {
	s := h.Streak
	keep := func(format string, args ...any) Decision {
		return Decision{Action: Keep, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case in.Check.Result != Pass:
		return keep("the latest check did not pass: %s", in.Check.reasons())
	case s.Passes < c.PromoteChecks:
		return keep("%d of %d consecutive passing checks", s.Passes, c.PromoteChecks)
	case in.Now.Sub(s.Since) < c.PromoteAfter:
		return keep("passing since %s, %s of %s", stamp(s.Since), in.Now.Sub(s.Since).Round(time.Second), c.PromoteAfter)
	case in.Reports.Failed > 0:
		return keep("TLS reports of the last %d days: %d of %d sessions failed",
			c.ReportDays, in.Reports.Failed, in.Reports.Failed+in.Reports.Successful)
	case in.Reports.Successful < c.MinSessions:
		return keep("TLS reports of the last %d days: %d successful sessions, %d needed", c.ReportDays, in.Reports.Successful, c.MinSessions)
	}
	return Decision{Action: Promote, Reason: fmt.Sprintf("%d consecutive passing checks since %s; TLS reports of the last %d days: %d successful sessions, none failed",
		s.Passes, stamp(s.Since), c.ReportDays, in.Reports.Successful)}
}

func stamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}
