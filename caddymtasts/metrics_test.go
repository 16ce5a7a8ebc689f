package caddymtasts

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterMetricsTwice(t *testing.T) {
	registry := prometheus.NewPedanticRegistry()
	// Two modules of one config, then the same collectors in the next
	// config's registry.
	for _, r := range []*prometheus.Registry{registry, registry, prometheus.NewPedanticRegistry()} {
		if err := registerMetrics(r); err != nil {
			t.Fatal(err)
		}
	}
	policyRequests.WithLabelValues("served")
	permissionDecisions.WithLabelValues("allowed")
	reportsReceived.WithLabelValues("accepted")
	sessionsReported.WithLabelValues("successful")
	observeLookup(0, nil)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{
		"caddy_mta_sts_policy_requests_total",
		"caddy_mta_sts_permission_decisions_total",
		"caddy_mta_sts_tlsrpt_reports_total",
		"caddy_mta_sts_tlsrpt_sessions_total",
		"caddy_mta_sts_dns_lookup_duration_seconds",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not registered; have %v", want, names)
		}
	}
}
