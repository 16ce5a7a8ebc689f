package mtasts

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// answers counts synthesized answers by kind: record (_mta-sts TXT),
	// policy (mta-sts TXT), address (mta-sts A/AAAA), cname (mta-sts CNAME),
	// tlsrpt (_smtp._tls TXT) and nodata; and by the effective mode of the
	// domain's policy, so that the operator sees how the domains senders
	// ask for are spread over testing, enforce and none, without a label
	// per domain.
	answers = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "answers_total",
		Help:      "Counter of answers synthesized by the mtasts plugin, by kind and by the mode of the domain's policy.",
	}, []string{"server", "kind", "mode"})
	// lookupFailures counts queries answered SERVFAIL because the zone data
	// behind the plugin could not be read.
	lookupFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "lookup_failures_total",
		Help:      "Counter of queries answered SERVFAIL because the zone data behind mtasts could not be read.",
	}, []string{"server"})
	// unusableMXSets counts queries for a domain that is not managed because
	// its MX set gives no policy the plugin can publish, by reason:
	// invalid_mx (an MX target that is not an LDH host name in A-label form)
	// or too_large (a policy over policy.MaxSize, or whose answer at
	// mta-sts.D would not fit one DNS message).
	unusableMXSets = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "unusable_mx_sets_total",
		Help:      "Counter of queries for domains mtasts does not manage because their MX set gives no policy it can publish, by reason.",
	}, []string{"server", "reason"})
	// invalidSettings counts queries for a managed domain whose settings
	// records are invalid, so that the Corefile's defaults apply to it.
	invalidSettings = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "invalid_settings_total",
		Help:      "Counter of queries for domains whose settings records mtasts ignores as invalid, applying the Corefile's defaults.",
	}, []string{"server"})
)
