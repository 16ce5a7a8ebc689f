// Package mtasts is a CoreDNS plugin that publishes MTA-STS (RFC 8461) for
// every mail domain in its zones. For a domain D with MX records it answers
// "_mta-sts.D TXT" with an id derived from the policy that D's MX set
// implies, "mta-sts.D" with the addresses of the policy web servers, and
// "mta-sts.D TXT" with the policy itself, which the Caddy module in
// caddymtasts serves over HTTPS. Optionally it publishes TLS-RPT (RFC 8460)
// at "_smtp._tls.D". Everything is computed from the zone data the rest of
// the plugin chain serves, on every query, so it never lags behind it.
package mtasts

import (
	"context"
	"errors"
	"net"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

var log = clog.NewWithPlugin(pluginName)

// MTASTS is the mtasts plugin. Its fields are the Corefile's properties.
type MTASTS struct {
	Next  plugin.Handler
	Zones []string

	PolicyServers []net.IP // addresses answered for mta-sts.D
	PolicyCNAME   string   // or the target of a CNAME at mta-sts.D
	Mode          policy.Mode
	MaxAge        uint32
	TTL           uint32   // upper bound of the synthesized records' TTL
	TLSRPT        []string // rua URI templates; {domain} stands for D
}

// ServeDNS implements the plugin.Handler interface.
func (m *MTASTS) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	name, ok := m.match(state)
	if !ok {
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	}
	if name.proof != nil {
		w = vouchingWriter{ResponseWriter: w, nonce: name.proof}
	}
	d, err := m.managed(ctx, w, name)
	switch {
	case errors.Is(err, errPresigned):
		logPresigned(name.zone)
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	case err != nil:
		log.Debugf("%s: cannot tell whether %s is managed: %v", state.Name(), name.domain, err)
		lookupFailures.WithLabelValues(metrics.WithServer(ctx)).Inc()
		return dns.RcodeServerFailure, err
	case d == nil || d.ownTLSRPT:
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	case name.kind == nameTLSParent:
		return m.serveTLSParent(ctx, w, r, d.policy.Mode)
	}
	return m.answer(ctx, w, r, name, d)
}

// Name implements the plugin.Handler interface.
func (m *MTASTS) Name() string { return pluginName }

// logPresigned reports once per zone that the plugin steps aside: an
// unsigned synthesized answer would be bogus in a signed zone.
func logPresigned(zone string) {
	warnOnce("presigned "+zone, "zone %s is DNSSEC-signed: not synthesizing MTA-STS records in it", zone)
}
