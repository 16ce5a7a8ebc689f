package mtasts

import (
	"context"
	"slices"
	"strings"

	"github.com/coredns/coredns/plugin/metrics"

	"github.com/coredns-mtasts/mtasts/policy"
)

// domainPolicy returns the policy the plugin publishes for domain, whose MX
// targets are hosts and whose settings records (policy.SelectSettings) are
// records, or nil if it does not manage domain: its settings say off, or
// its MX set gives no policy the plugin can publish. Settings that do not
// parse, or that give no policy the plugin can publish, leave domain on the
// Corefile's defaults: a mistake in one record must not become an outage,
// nor withdraw a policy senders hold.
func (m *MTASTS) domainPolicy(ctx context.Context, domain string, hosts, records []string) *policy.Policy {
	s, err := policy.SelectSettings(records)
	if s.Off {
		return nil
	}
	if err == nil {
		p, perr := m.servablePolicy(domain, hosts, s)
		if perr == nil {
			return &p
		}
		if len(records) == 0 {
			reportUnusable(ctx, domain, perr)
			return nil
		}
		err = perr // the settings' fault, unless the defaults fail too
	}
	p, perr := m.servablePolicy(domain, hosts, policy.Settings{})
	if perr != nil {
		reportUnusable(ctx, domain, perr)
		return nil
	}
	reportInvalidSettings(ctx, domain, records, err)
	return &p
}

// reportInvalidSettings counts a query for domain whose settings records
// are invalid, and logs the domain, why and the records the first time for
// these records: an operator who fixes one sees the next mistake.
func reportInvalidSettings(ctx context.Context, domain string, records []string, err error) {
	invalidSettings.WithLabelValues(metrics.WithServer(ctx)).Inc()
	// Sorted: backends need not return an RRset in the same order every time.
	version := strings.Join(slices.Sorted(slices.Values(records)), "\x00")
	warnOnce("settings "+domain+" "+version, "%s: settings ignored, the Corefile's defaults apply: %v: %q", domain, err, records)
}
