package caddymtasts

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// Every metric is named caddy_mta_sts_*.
const metricsNamespace, metricsSubsystem = "caddy", "mta_sts"

// The collectors live as long as the process, so counts carry over config
// reloads; each config's registry gets them in registerMetrics.
var (
	policyRequests = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("policy_requests_total", "Requests for /.well-known/mta-sts.txt, by outcome.")),
		[]string{"outcome"})

	permissionDecisions = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("permission_decisions_total", "On-demand TLS permission decisions, by outcome.")),
		[]string{"outcome"})

	reportsReceived = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("tlsrpt_reports_total", "TLS reports received, by outcome.")),
		[]string{"outcome"})

	// Sessions of the reports counted in a summary, each (report, domain)
	// once across the cluster: the node that added it counts it.
	sessionsReported = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("tlsrpt_sessions_total",
			"Sessions in the TLS reports counted, successful or failed by result type (failure types may overlap).")),
		[]string{"result"})

	lookupDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "dns_lookup_duration_seconds",
		Help:      "Time to read a policy from the authoritative DNS, by result.",
		Buckets:   prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms to about 4s
	}, []string{"result"})

	// Set from the last run of the checks in the cluster, on every node
	// with the mta_sts app; per domain, the results are in storage.
	readinessDomains = prometheus.NewGaugeVec(
		prometheus.GaugeOpts(metricOpts("readiness_domains", "Domains ready or not for enforce at the last run of the checks, by state.")),
		[]string{"state"})

	readinessProbes = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("readiness_probes_total", "MX hosts probed by this node, by outcome.")),
		[]string{"outcome"})

	// Each event counted once across the cluster: by the node that stored it.
	eventsStored = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("events_total", "Events about the domains stored by this node, by type.")),
		[]string{"type"})

	webhookDeliveries = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("webhook_deliveries_total",
			"Webhook attempts by this node, by outcome: delivered, failed (retried), gave_up, gone (the event expired), dropped (queue full).")),
		[]string{"outcome"})

	// What the autopilot did: promote and demote (written), blocked (a
	// change the evidence called for and the settings or the change bound
	// did not allow), and would_promote and would_demote in dry-run mode.
	autopilotChanges = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("autopilot_changes_total", "Changes the autopilot of this node made, would make (dry run) or may not make, by action.")),
		[]string{"action"})

	// Changes that failed, by why: an alert, since a demotion not written
	// leaves a failing domain in enforce.
	autopilotFailures = prometheus.NewCounterVec(
		prometheus.CounterOpts(metricOpts("autopilot_failures_total", "Changes the autopilot of this node could not make, by reason.")),
		[]string{"reason"})
)

func metricOpts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
}

// registerMetrics adds the collectors to a config's registry. Both modules
// call it, and a config may hold several handlers, so a collector that is
// already there is no error.
func registerMetrics(registry *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{
		policyRequests, permissionDecisions, reportsReceived, sessionsReported, lookupDuration, readinessDomains, readinessProbes,
		eventsStored, webhookDeliveries, autopilotChanges, autopilotFailures,
	} {
		if err := registry.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}

// lookupResult names the kind of result policySource.lookup gave.
func lookupResult(err error) string {
	switch {
	case err == nil:
		return "managed"
	case errors.Is(err, errNotManaged):
		return "not_managed"
	case errors.Is(err, errInvalidPolicy):
		return "invalid_policy"
	case errors.Is(err, errUnvouched):
		return "unvouched"
	}
	return "failed"
}

// countSessions adds the sessions one report counts for one domain to
// sessionsReported. The labels are result types, a fixed set: the unknown
// ones count as "other".
func countSessions(d tlsrpt.DomainSessions) {
	sessionsReported.WithLabelValues("successful").Add(float64(d.Successful))
	for result, n := range d.Failures {
		sessionsReported.WithLabelValues(result).Add(float64(n))
	}
}

func observeLookup(d time.Duration, err error) {
	lookupDuration.WithLabelValues(lookupResult(err)).Observe(d.Seconds())
}
