package caddymtasts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

// eventType names what an event tells. Receivers should ignore types they
// do not know: more will come.
type eventType string

const (
	// The domain's policy changed: its MX records or its settings did.
	// An attacker who takes over a DNS account and points MX at its own
	// host gets a valid policy for it, so the customer must hear of it.
	eventPolicyChanged eventType = "policy_changed"
	// An MX host fails what a sender checks under mode enforce, or its
	// certificate expires within warn_days.
	eventMXTLSProblem eventType = "mx_tls_problem"
	// An MX host with a problem passes again.
	eventMXTLSRecovered eventType = "mx_tls_recovered"
	// The certificate of mta-sts.D could not be obtained or renewed.
	eventCertificateProblem eventType = "certificate_problem"
	// The autopilot moved the domain to mode enforce, or back to testing
	// (autopilot.go): a change of the policy made for the customer, who
	// should hear of it and why.
	eventPromoted eventType = "promoted"
	eventDemoted  eventType = "demoted"
)

// Severities of the problem events.
const (
	severityWarning = "warning" // it will fail if nothing is done
	severityFailure = "failure" // senders that enforce refuse it now
)

// event is what a customer should hear of about one of its domains: the
// JSON kept in storage and posted to the webhook.
type event struct {
	// The same for the same change wherever it is seen (eventID): what a
	// receiver de-duplicates on.
	ID     string    `json:"id"`
	Type   eventType `json:"type"`
	Domain string    `json:"domain"`
	Time   time.Time `json:"time"` // when the change was seen
	// The MX host (mx_tls_*), or mta-sts.D (certificate_problem).
	Host     string `json:"host,omitempty"`
	Severity string `json:"severity,omitempty"`
	// What a sender sees, in words: "certificate expired at ...",
	// "STARTTLS not offered ...", "certificate expires in 9 days ...".
	Problem string `json:"problem,omitempty"`
	// The mode of the domain's policy when the event was seen: under
	// enforce, a failure means refused mail. For promoted and demoted,
	// the mode the autopilot wrote.
	Mode policy.Mode `json:"mode,omitempty"`
	// promoted, demoted: why the autopilot changed the mode, with its
	// evidence in words.
	Reason string `json:"reason,omitempty"`
	Before any    `json:"before"`
	After  any    `json:"after"`
	// policy_changed: the mx patterns that appeared and disappeared.
	MXAdded   []string `json:"mx_added,omitempty"`
	MXRemoved []string `json:"mx_removed,omitempty"`
}

// policyState is a domain's policy as the checks saw it.
type policyState struct {
	ID   string      `json:"policy_id"`
	Mode policy.Mode `json:"mode"`
	MX   []string    `json:"mx"`
	// When the checks first saw this policy; in an event's before only.
	Since time.Time `json:"since,omitzero"`
}

// hostState is what an MX host's probe says about its TLS.
type hostState struct {
	State    string            `json:"state"` // "pass", or a severity
	Outcome  readiness.Outcome `json:"outcome"`
	NotAfter time.Time         `json:"not_after,omitzero"`
	// When the checks first saw the host in this state; in an event's
	// before only.
	Since time.Time `json:"since,omitzero"`
}

// baseline is what the checks last knew of a domain: the state each event
// compares against. It changes only with what a check could see, so a
// failed DNS lookup or an MX host that could not be reached makes no event.
type baseline struct {
	Policy *policyState          `json:"policy,omitempty"`
	Hosts  map[string]*hostState `json:"hosts,omitempty"`
}

// detectEvents compares a domain's readiness report with its baseline,
// updates the baseline and returns the events and whether the baseline
// changed. A certificate that expires within warn counts as a warning.
//
// The first policy seen is no change; a problem seen first is an event,
// since the customer has not heard of it.
func detectEvents(b *baseline, r readiness.DomainReport, warn time.Duration) ([]event, bool) {
	var events []event
	changed := false
	if r.PolicyID != "" {
		now := &policyState{ID: r.PolicyID, Mode: r.Mode, MX: r.PolicyMX}
		switch {
		case b.Policy == nil:
			changed = true
		case b.Policy.ID != now.ID:
			events = append(events, policyChanged(r, b.Policy, now))
			changed = true
		}
		if changed {
			seen := *now
			seen.Since = r.CheckedAt
			b.Policy = &seen
		}
	}
	hostEvents, hostsChanged := detectHostEvents(b, r, warn)
	return append(events, hostEvents...), changed || hostsChanged
}

func policyChanged(r readiness.DomainReport, before, after *policyState) event {
	e := event{
		Type: eventPolicyChanged, Domain: r.Domain, Time: r.CheckedAt, Mode: r.Mode,
		Before: before, After: after,
	}
	for _, mx := range after.MX {
		if !slices.Contains(before.MX, mx) {
			e.MXAdded = append(e.MXAdded, mx)
		}
	}
	for _, mx := range before.MX {
		if !slices.Contains(after.MX, mx) {
			e.MXRemoved = append(e.MXRemoved, mx)
		}
	}
	e.ID = transitionID(e)
	return e
}

// detectHostEvents compares the report's MX hosts with the baseline's.
// A host no longer among the domain's MX hosts leaves the baseline.
func detectHostEvents(b *baseline, r readiness.DomainReport, warn time.Duration) ([]event, bool) {
	var events []event
	changed := false
	if b.Hosts == nil {
		b.Hosts = map[string]*hostState{}
	}
	for _, h := range r.MXHosts {
		now, problem, ok := hostStateOf(h, warn)
		if !ok {
			continue
		}
		before := b.Hosts[h.Host]
		switch {
		case before == nil && now.State == "pass":
		case before == nil || before.State != now.State || before.Outcome != now.Outcome:
			events = append(events, hostEvent(r, h, before, now, problem))
		case before.NotAfter.Equal(now.NotAfter):
			continue // nothing new
		default:
			// Another certificate in the same state: no event, but the
			// baseline shows the certificate the next event changes from.
			before.NotAfter, changed = now.NotAfter, true
			continue
		}
		seen := now
		seen.Since = h.CheckedAt
		b.Hosts[h.Host], changed = &seen, true
	}
	if len(r.MXHosts) > 0 {
		for host := range b.Hosts {
			if !slices.ContainsFunc(r.MXHosts, func(h readiness.HostResult) bool { return h.Host == host }) {
				delete(b.Hosts, host)
				changed = true
			}
		}
	}
	return events, changed
}

func hostEvent(r readiness.DomainReport, h readiness.HostResult, before *hostState, after hostState, problem string) event {
	e := event{Domain: r.Domain, Time: h.CheckedAt, Host: h.Host, Mode: r.Mode, After: after}
	if before != nil {
		e.Before = before
	}
	if after.State == "pass" {
		e.Type = eventMXTLSRecovered
	} else {
		e.Type, e.Severity, e.Problem = eventMXTLSProblem, after.State, problem
	}
	e.ID = transitionID(e)
	return e
}

// hostStateOf classifies a probe's result, with the problem in words. A
// host that could not be reached (DNS, TCP, SMTP) says nothing about its
// TLS: the node may not connect out to port 25, or the host is down for a
// while, and mail waits for it with or without MTA-STS. That is no state.
func hostStateOf(h readiness.HostResult, warn time.Duration) (hostState, string, bool) {
	s := hostState{Outcome: h.Outcome, NotAfter: h.NotAfter}
	switch h.Outcome {
	case readiness.OutcomeDNS, readiness.OutcomeConnect, readiness.OutcomeSMTP, readiness.OutcomeCanceled:
		return s, "", false
	case readiness.OutcomePass:
		left := h.NotAfter.Sub(h.CheckedAt)
		if left >= warn {
			s.State = "pass"
			return s, "", true
		}
		s.State = severityWarning
		return s, fmt.Sprintf("certificate expires %s, at %s; from then on senders that enforce MTA-STS refuse this host",
			inDays(left), h.NotAfter.UTC().Format(time.RFC3339)), true
	}
	s.State = severityFailure
	return s, h.Failure, true
}

// inDays says when something d from now happens, in whole days.
func inDays(d time.Duration) string {
	switch days := int(d / (24 * time.Hour)); days {
	case 0:
		return "within a day"
	case 1:
		return "in 1 day"
	default:
		return fmt.Sprintf("in %d days", days)
	}
}

// transitionID is the id of a change from e.Before to e.After: the same
// on every node that sees it, and again if a run that stored the event
// is run again, since Before holds the time its state was first seen.
// After holds no time, and the event's Time and Problem (which counts
// days) are not in it.
func transitionID(e event) string {
	before, _ := json.Marshal(e.Before)
	after, _ := json.Marshal(e.After)
	return eventID(string(e.Type), e.Domain, e.Host, string(before), string(after))
}

// eventID hashes the parts that make an event the one it is: the first
// 32 hex digits of the SHA-256 of the parts, each followed by a NUL.
func eventID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
