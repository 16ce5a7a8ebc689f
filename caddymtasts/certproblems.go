package caddymtasts

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// maxPendingCertificateProblems bounds the certificate failures waiting
// to be stored; more are dropped (the same failure repeats, and makes the
// same event, at most one a day).
const maxPendingCertificateProblems = 1000

// certificateFailures receives CertMagic's cert_failed events from Caddy's
// events app. Caddy emits events in the goroutine that obtained or renewed
// the certificate, and a handshake waits for an on-demand one, so Handle
// only passes the event on; the app stores it in a goroutine of its own.
type certificateFailures struct {
	pending chan caddy.Event
}

func newCertificateFailures() *certificateFailures {
	return &certificateFailures{pending: make(chan caddy.Event, maxPendingCertificateProblems)}
}

// Handle passes e on, or drops it when too many wait.
func (c *certificateFailures) Handle(_ context.Context, e caddy.Event) error {
	select {
	case c.pending <- e:
	default:
	}
	return nil
}

// certificateState is the after of a certificate_problem: what failed.
type certificateState struct {
	Renewal bool   `json:"renewal"`
	Error   string `json:"error"`
}

// certificateProblem turns the data of a cert_failed event at now into a
// certificate_problem event, if it is about the certificate of a policy
// host mta-sts.D. Its id names the domain, the day and whether a renewal
// failed: CertMagic retries, each node that tries emits the event, and an
// on-demand certificate is tried at each handshake, so one event a day
// tells the customer without flooding it.
func certificateProblem(data map[string]any, now time.Time) (event, bool) {
	name, _ := data["identifier"].(string)
	name = strings.ToLower(name)
	domain, ok := strings.CutPrefix(name, "mta-sts.")
	if !ok || domain == "" {
		return event{}, false
	}
	renewal, _ := data["renewal"].(bool)
	failure := fmt.Sprint(data["error"])
	e := event{
		Type: eventCertificateProblem, Domain: domain, Time: now, Host: name,
		After: certificateState{Renewal: renewal, Error: failure},
	}
	remaining, _ := data["remaining"].(time.Duration)
	switch {
	case !renewal:
		e.Severity = severityFailure
		e.Problem = "no certificate could be obtained for " + name + ", so senders cannot fetch the policy: " + failure
	case remaining <= 0:
		e.Severity = severityFailure
		e.Problem = "the certificate of " + name + " expired and renewing it failed, so senders cannot fetch the policy: " + failure
	default:
		e.Severity = severityWarning
		e.Problem = "renewing the certificate of " + name + " failed; it expires " + inDays(remaining) + ": " + failure
	}
	e.ID = eventID(string(e.Type), domain, name, now.UTC().Format(time.DateOnly), strconv.FormatBool(renewal))
	return e, true
}
