package caddymtasts

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
)

// defaultWarnDays is EventOptions.WarnDays' default: two weeks leave the
// MX host's operator time to renew, and stay below the renewal window of
// the usual 90-day certificates (renewed 30 days before they expire).
const defaultWarnDays = 14

// EventOptions say what the mta_sts app tells the customers through the
// provider: how long events are kept, when an MX certificate that expires
// soon is a problem, and where events are posted.
type EventOptions struct {
	// How long events are kept after the day they were seen; the node
	// that runs the checks removes older ones. Default: 90 days.
	Retention caddy.Duration `json:"retention,omitempty"`

	// An MX host whose certificate expires within this many days has a
	// problem of severity warning: under enforce, an expired certificate
	// means refused mail. Keep it below the certificates' renewal window.
	// Default: 14.
	WarnDays int `json:"warn_days,omitempty"`

	// Where each event is posted; by default events are only stored.
	Webhook *Webhook `json:"webhook,omitempty"`
}

// provisionEvents sets up the event store, the webhook's queue and the
// subscription to the certificate failures of Caddy's events app.
func (a *App) provisionEvents(ctx caddy.Context) error {
	setDefault(&a.Events.Retention, defaultEventsRetention)
	a.Events.WarnDays = cmp.Or(a.Events.WarnDays, defaultWarnDays)
	a.events = &eventStore{storage: a.storage}
	if a.Events.Webhook != nil {
		q, err := a.Events.Webhook.queue(a.storage, a.logger)
		if err != nil {
			return err
		}
		a.webhook = q
	}
	events, err := ctx.App("events")
	if err != nil {
		return err
	}
	a.certFailures = newCertificateFailures()
	return events.(*caddyevents.App).Subscribe(&caddyevents.Subscription{
		Events:   []string{"cert_failed"},
		Handlers: []caddyevents.Handler{a.certFailures},
	})
}

// recordEvents compares a domain's new report with its baseline, stores
// the events found and then the baseline. When an event cannot be
// stored, the baseline stays, so that the next run finds the change again.
func (a *App) recordEvents(ctx context.Context, r readiness.DomainReport) error {
	b, err := a.events.baseline(ctx, r.Domain)
	if err != nil {
		return err
	}
	events, changed := detectEvents(b, r, time.Duration(a.Events.WarnDays)*24*time.Hour)
	for _, e := range events {
		if err := a.emit(ctx, e); err != nil {
			return fmt.Errorf("event %s of %s: %w", e.Type, e.Domain, err)
		}
	}
	if !changed {
		return nil
	}
	return a.events.storeBaseline(ctx, r.Domain, b)
}

// emit stores e, unless it is stored already, and queues its delivery:
// of the nodes that see the same event, only the one that stores it
// counts, logs and queues it.
func (a *App) emit(ctx context.Context, e event) error {
	key, added, err := a.events.add(ctx, e)
	if err != nil || !added {
		return err
	}
	eventsStored.WithLabelValues(string(e.Type)).Inc()
	a.logger.Info("event", zap.String("type", string(e.Type)), zap.String("domain", e.Domain),
		zap.String("host", e.Host), zap.String("id", e.ID), zap.String("problem", e.Problem))
	if a.webhook == nil {
		return nil
	}
	return a.webhook.enqueue(ctx, e.ID, key)
}

// recordCertificateProblems stores a certificate_problem event for each
// certificate of a policy host that could not be obtained or renewed,
// until ctx ends.
func (a *App) recordCertificateProblems(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case failed := <-a.certFailures.pending:
			e, ok := certificateProblem(failed.Data, failed.Timestamp())
			if !ok {
				continue
			}
			if err := a.emit(ctx, e); err != nil && ctx.Err() == nil {
				a.logger.Error("storing a certificate problem", zap.String("domain", e.Domain), zap.Error(err))
			}
		}
	}
}
