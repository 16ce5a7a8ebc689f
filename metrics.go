package mtasts

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// answers counts synthesized answers by kind: record (_mta-sts TXT),
	// policy (mta-sts TXT), address (mta-sts A/AAAA), cname (mta-sts CNAME),
	// tlsrpt (_smtp._tls TXT) and nodata.
	answers = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "answers_total",
		Help:      "Counter of answers synthesized by the mtasts plugin, by kind.",
	}, []string{"server", "kind"})
	// lookupFailures counts queries answered SERVFAIL because the zone data
	// behind the plugin could not be read.
	lookupFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "lookup_failures_total",
		Help:      "Counter of queries answered SERVFAIL because the zone data behind mtasts could not be read.",
	}, []string{"server"})
)
