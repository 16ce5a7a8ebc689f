package mtasts

import (
	"context"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/nonwriter"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// answer writes the synthesized answer for a managed mail domain, or NODATA
// with the zone's SOA when the queried type has no record at the name.
func (m *MTASTS) answer(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, name ownedName, d *managedDomain) (int, error) {
	resp := new(dns.Msg)
	resp.SetReply(r)
	resp.Authoritative = true
	var kind string
	resp.Answer, kind = m.records(r.Question[0], name, d)
	if kind == "policy" && name.proof != nil {
		// The id beside the policy lines, hashed from those very lines: the
		// web server checks that they hash to it.
		lines := resp.Answer[0].(*dns.TXT).Txt
		resp.Extra = []dns.RR{&dns.TXT{
			Hdr: dns.RR_Header{Name: "_mta-sts." + name.domain, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: d.ttl},
			Txt: []string{policy.Record{ID: policy.IDOf(policy.JoinLines(lines))}.String()},
		}}
	}
	if len(resp.Answer) == 0 {
		soa, err := m.negativeSOA(ctx, w, name.domain)
		if err != nil {
			lookupFailures.WithLabelValues(metrics.WithServer(ctx)).Inc()
			return dns.RcodeServerFailure, err
		}
		resp.Ns, kind = []dns.RR{soa}, "nodata"
	}
	answers.WithLabelValues(metrics.WithServer(ctx), kind, string(d.policy.Mode)).Inc()
	return dns.RcodeSuccess, w.WriteMsg(resp)
}

// records returns the synthesized RRset for the question, owned by the
// question's name as the client spelled it, and its kind for the metrics.
func (m *MTASTS) records(question dns.Question, name ownedName, d *managedDomain) ([]dns.RR, string) {
	header := func(rrtype uint16) dns.RR_Header {
		return dns.RR_Header{Name: question.Name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: d.ttl}
	}
	txt := func(strs ...string) []dns.RR {
		return []dns.RR{&dns.TXT{Hdr: header(dns.TypeTXT), Txt: strs}}
	}
	wantTXT := question.Qtype == dns.TypeTXT || question.Qtype == dns.TypeANY
	switch {
	case name.kind == nameRecord && wantTXT:
		return txt(policy.Record{ID: d.policy.ID()}.String()), "record"
	case name.kind == nameTLSRPT && wantTXT:
		// The URIs were checked at setup; a host name cannot spoil them.
		if rec, err := policy.TLSRPTRecord(reportURIs(m.TLSRPT, strings.TrimSuffix(name.domain, "."))); err == nil {
			return txt(characterStrings(rec)...), "tlsrpt"
		}
	case name.kind == namePolicyHost:
		switch {
		case wantTXT:
			return txt(d.policy.Lines()...), "policy"
		case m.PolicyCNAME != "":
			return []dns.RR{&dns.CNAME{Hdr: header(dns.TypeCNAME), Target: m.PolicyCNAME}}, "cname"
		case question.Qtype == dns.TypeA || question.Qtype == dns.TypeAAAA:
			return m.addresses(header(question.Qtype)), "address"
		}
	}
	return nil, ""
}

// addresses returns the policy servers of the family hdr's type asks for.
func (m *MTASTS) addresses(hdr dns.RR_Header) []dns.RR {
	var rrs []dns.RR
	for _, ip := range m.PolicyServers {
		switch v4 := ip.To4(); {
		case v4 != nil && hdr.Rrtype == dns.TypeA:
			rrs = append(rrs, &dns.A{Hdr: hdr, A: v4})
		case v4 == nil && hdr.Rrtype == dns.TypeAAAA:
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: ip})
		}
	}
	return rrs
}

// serveTLSParent answers for _tls.D, which the zone may not hold although
// _smtp._tls.D below it now exists: an NXDOMAIN there would tell resolvers
// (RFC 8020) that the TLS-RPT record does not exist either, so it becomes
// NODATA.
func (m *MTASTS) serveTLSParent(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, mode policy.Mode) (int, error) {
	nw := nonwriter.New(w)
	rcode, err := plugin.NextOrFailure(m.Name(), m.Next, ctx, nw, r)
	if err != nil || nw.Msg == nil {
		return rcode, err
	}
	resp := nw.Msg
	if resp.Rcode == dns.RcodeNameError && resp.Authoritative {
		resp.Rcode = dns.RcodeSuccess
		answers.WithLabelValues(metrics.WithServer(ctx), "nodata", string(mode)).Inc()
	}
	return resp.Rcode, w.WriteMsg(resp)
}

// characterStrings splits a TXT record's text into DNS character-strings
// of at most 255 octets; readers concatenate them (RFC 8460 §3).
func characterStrings(s string) []string {
	var strs []string
	for len(s) > 255 {
		strs = append(strs, s[:255])
		s = s[255:]
	}
	return append(strs, s)
}
