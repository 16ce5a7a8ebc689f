package mtasts

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/nonwriter"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// errPresigned says a zone carries its own signatures: synthesized, unsigned
// records would be bogus in it.
var errPresigned = errors.New("zone is DNSSEC-signed")

// managedDomain is what the zone data says about a managed mail domain.
type managedDomain struct {
	policy    policy.Policy
	ttl       uint32 // of the synthesized records: at most the MX RRset's TTL
	ownTLSRPT bool   // the zone has its own record at _smtp._tls.D
}

// managed decides from the rest of the chain whether the plugin manages
// name.domain: nil if not, an error if the zone data cannot be read.
func (m *MTASTS) managed(ctx context.Context, w dns.ResponseWriter, name ownedName) (*managedDomain, error) {
	hosts, mxTTL, err := m.mxHosts(ctx, w, name.domain)
	if err != nil || len(hosts) == 0 {
		return nil, err
	}
	// The owner check reads the settings records too: they live at the same
	// name, so the settings cost no lookup of their own.
	owned, settings, err := m.ownerPublishes(ctx, w, "_mta-sts."+name.domain, policy.IsRecord)
	if err != nil || owned {
		return nil, err
	}
	p := m.domainPolicy(ctx, name.domain, hosts, settings)
	if p == nil {
		return nil, nil
	}
	d := &managedDomain{policy: *p, ttl: min(mxTTL, m.TTL)}
	if name.kind == nameTLSRPT || name.kind == nameTLSParent {
		d.ownTLSRPT, _, err = m.ownerPublishes(ctx, w, "_smtp._tls."+name.domain, policy.IsTLSRPTRecord)
	}
	return d, err
}

// mxHosts returns the targets of domain's MX records and the MX RRset's
// TTL, or no targets if the domain has no usable MX set: no MX, null MX
// only (RFC 7505), a CNAME or DNAME, or a delegation.
func (m *MTASTS) mxHosts(ctx context.Context, w dns.ResponseWriter, domain string) ([]string, uint32, error) {
	resp, err := m.lookup(ctx, w, domain, dns.TypeMX, true)
	if err != nil || !resp.Authoritative || resp.Rcode != dns.RcodeSuccess {
		return nil, 0, err
	}
	return mxTargets(resp, domain)
}

// mxTargets returns the targets of domain's MX records in an MX answer,
// without the null MX ".", and the smallest TTL among them. A CNAME or DNAME
// at domain gives none; a signature says the zone is pre-signed.
func mxTargets(resp *dns.Msg, domain string) ([]string, uint32, error) {
	var hosts []string
	ttl := uint32(maxTTL)
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *dns.RRSIG:
			return nil, 0, errPresigned
		case *dns.CNAME, *dns.DNAME:
			return nil, 0, nil
		case *dns.MX:
			if !strings.EqualFold(rr.Hdr.Name, domain) {
				continue
			}
			ttl = min(ttl, rr.Hdr.Ttl)
			if rr.Mx != "." {
				hosts = append(hosts, rr.Mx)
			}
		}
	}
	return hosts, ttl, nil
}

// ownerPublishes reports whether the zone holds its own data at name: a
// delegation, a CNAME, or a TXT record that isOwn recognizes. From the same
// answer it returns the texts of the settings records at name, if it does
// not.
func (m *MTASTS) ownerPublishes(ctx context.Context, w dns.ResponseWriter, name string, isOwn func(string) bool) (bool, []string, error) {
	resp, err := m.lookup(ctx, w, name, dns.TypeTXT, false)
	if err != nil {
		return false, nil, err
	}
	if !resp.Authoritative {
		return true, nil, nil // a referral: the name is delegated away
	}
	var settings []string
	for _, rr := range resp.Answer {
		if !strings.EqualFold(rr.Header().Name, name) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			return true, nil, nil
		case *dns.TXT:
			switch txt := strings.Join(rr.Txt, ""); {
			case isOwn(txt):
				return true, nil, nil
			case policy.IsSettingsRecord(txt):
				settings = append(settings, txt)
			}
		}
	}
	return false, settings, nil
}

// negativeSOA returns the SOA record for a NODATA answer about a name at or
// below domain, with the negative-caching TTL of RFC 2308 §3.
func (m *MTASTS) negativeSOA(ctx context.Context, w dns.ResponseWriter, domain string) (*dns.SOA, error) {
	resp, err := m.lookup(ctx, w, domain, dns.TypeSOA, false)
	if err != nil {
		return nil, err
	}
	for _, rr := range append(resp.Answer, resp.Ns...) {
		if soa, ok := rr.(*dns.SOA); ok {
			soa = dns.Copy(soa).(*dns.SOA)
			soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
			return soa, nil
		}
	}
	return nil, fmt.Errorf("no SOA record for %s", domain)
}

// lookup asks the rest of the plugin chain about name and qtype. The answer
// is captured and never reaches the client. With do, the DNSSEC OK bit makes
// a signed zone show its signatures; only the MX lookup needs them (to spot
// a pre-signed zone), and without it a backend such as file skips the work
// of proving a name's absence with NSEC records.
func (m *MTASTS) lookup(ctx context.Context, w dns.ResponseWriter, name string, qtype uint16, do bool) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	if do {
		req.SetEdns0(dns.DefaultMsgSize, true)
	}
	nw := nonwriter.New(w)
	rcode, err := plugin.NextOrFailure(m.Name(), m.Next, ctx, nw, req)
	if err != nil {
		return nil, err
	}
	if nw.Msg == nil {
		return nil, fmt.Errorf("%s %s: no answer (%s)", name, dns.TypeToString[qtype], dns.RcodeToString[rcode])
	}
	if rc := nw.Msg.Rcode; rc != dns.RcodeSuccess && rc != dns.RcodeNameError {
		return nil, fmt.Errorf("%s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[rc])
	}
	return nw.Msg, nil
}
