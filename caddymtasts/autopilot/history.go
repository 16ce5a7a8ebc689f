package autopilot

import (
	"slices"
	"strings"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

// Result is what one readiness check says to the autopilot.
type Result string

// The results of a check.
const (
	Pass Result = "pass" // ready for enforce
	// An MX host fails a check that a sender applying enforce makes:
	// mail from such senders stops (RFC 8461 §5).
	Fail Result = "fail"
	// Neither: the check found no verdict on the hosts' TLS. A host not
	// reached, a policy or MX lookup that failed, failed sessions in the
	// TLS reports: no promotion, and no demotion for it (a demotion for
	// reports is the Decide's, from the reports themselves). A sender
	// that cannot reach a host delivers to it in no mode, and the usual
	// cause is the checker's own network (port 25 blocked), which would
	// otherwise demote every domain at once.
	Inconclusive Result = "inconclusive"
)

// senderRefuses lists the outcomes of a probe that a sender applying a
// policy in mode enforce refuses to deliver through, and delivers through
// in testing: the checks of RFC 8461 §4.1, §4.2 and §5.
var senderRefuses = []readiness.Outcome{
	readiness.OutcomeNoSTARTTLS,
	readiness.OutcomeSTARTTLSRefused,
	readiness.OutcomeHandshake,
	readiness.OutcomeTLSVersion,
	readiness.OutcomeExpired,
	readiness.OutcomeUntrusted,
	readiness.OutcomeSelfSigned,
	readiness.OutcomeNameMismatch,
}

// Check is what the autopilot keeps of one readiness check of a domain.
type Check struct {
	At time.Time `json:"at"`
	// The mode the domain published at the check; "" for none.
	Mode    policy.Mode `json:"mode,omitempty"`
	Result  Result      `json:"result"`
	Reasons []string    `json:"reasons,omitempty"` // why it did not pass
}

// CheckOf reads a readiness report.
func CheckOf(r readiness.DomainReport) Check {
	c := Check{At: r.CheckedAt, Mode: r.Mode, Reasons: r.Reasons}
	switch {
	case r.Ready:
		c.Result = Pass
	case slices.ContainsFunc(r.MXHosts, func(h readiness.HostResult) bool { return slices.Contains(senderRefuses, h.Outcome) }):
		c.Result = Fail
	default:
		c.Result = Inconclusive
	}
	return c
}

func (c Check) reasons() string {
	if len(c.Reasons) == 0 {
		return string(c.Result)
	}
	return strings.Join(c.Reasons, "; ")
}

// Streak counts a domain's consecutive passing checks.
type Streak struct {
	Passes int       `json:"passes"`
	Since  time.Time `json:"since,omitzero"` // the first of them
	Last   time.Time `json:"last,omitzero"`  // the latest
}

// History is what the autopilot keeps about one domain: what its
// decisions need, and its audit trail.
type History struct {
	Domain string `json:"domain"`
	// The passing checks since the last one that did not pass, the last
	// gap of more than Config.MaxGap, or the last demotion: after one,
	// a promotion needs the whole period again (the hysteresis that keeps
	// a flapping host from flapping the policy).
	Streak Streak `json:"streak"`
	// When the autopilot last changed the domain's settings record.
	LastChange time.Time `json:"last_change,omitzero"`
	// The decisions, oldest first; at most MaxEntries, repeats folded.
	Entries []Entry `json:"entries"`
}

// MaxEntries bounds a History's audit trail. Repeated decisions fold into
// one entry, so 50 entries span months of a domain's changes.
const MaxEntries = 50

// Observe counts a check in the streak.
func (h *History) Observe(c Check, maxGap time.Duration) {
	switch {
	case c.Result != Pass:
		h.Streak = Streak{}
	case h.Streak.Passes > 0 && !c.At.After(h.Streak.Last):
		// Seen already: a check counts once.
	case h.Streak.Passes == 0 || c.At.Sub(h.Streak.Last) > maxGap:
		h.Streak = Streak{Passes: 1, Since: c.At, Last: c.At}
	default:
		h.Streak.Passes++
		h.Streak.Last = c.At
	}
}

// Outcome says how a change went.
type Outcome string

// The outcomes of a change.
const (
	Written Outcome = "written" // the primary took the UPDATE
	DryRun  Outcome = "dry_run" // not written: the autopilot runs in dry-run mode
	Failed  Outcome = "failed"  // not written; Entry.Error says why
)

// Entry is one decision in a domain's audit trail, with its evidence.
type Entry struct {
	At time.Time `json:"at"`
	Decision
	Evidence Evidence `json:"evidence"`
	// For a change: the settings record written, or that would have been,
	// and how it went.
	Record  string  `json:"record,omitempty"`
	Outcome Outcome `json:"outcome,omitempty"`
	Error   string  `json:"error,omitempty"`
	// How many decisions like this one followed it, folded into it (its
	// reason and evidence are the latest's), and when the latest was.
	Repeated int       `json:"repeated,omitempty"`
	Latest   time.Time `json:"latest,omitzero"`
}

// Evidence is what a decision was made on.
type Evidence struct {
	Check    Check              `json:"check"`
	Streak   Streak             `json:"streak"`
	Reports  readiness.Sessions `json:"tls_reports"`
	Settings Settings           `json:"settings,omitempty"`
}

// Record adds e to the audit trail, and a change written to the state:
// the time of the last change and, after a demotion, a streak that starts
// again. An entry like the one before it (the same action, wanted change
// and outcome), unless it is a change written, is folded into it.
func (h *History) Record(e Entry) {
	if e.Outcome == Written {
		h.LastChange = e.At
		if e.Action == Demote {
			h.Streak = Streak{}
		}
	}
	if n := len(h.Entries); n > 0 && foldable(h.Entries[n-1], e) {
		last := &h.Entries[n-1]
		first, repeated := last.At, last.Repeated+1
		*last = e
		last.At, last.Repeated, last.Latest = first, repeated, e.At
		return
	}
	h.Entries = append(h.Entries, e)
	if len(h.Entries) > MaxEntries {
		h.Entries = slices.Delete(h.Entries, 0, len(h.Entries)-MaxEntries)
	}
}

func foldable(last, e Entry) bool {
	return last.Action == e.Action && last.Wanted == e.Wanted && last.Outcome == e.Outcome && e.Outcome != Written
}
