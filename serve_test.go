package mtasts

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// The SOA records of a negative answer: the plugin's NODATA carries the
// negative-caching TTL (RFC 2308 §3), the file plugin's answers the SOA's own.
const (
	nodataSOA = "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300"
	zoneSOA   = "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300"
	zoneNS    = "example.com. 3600 IN NS ns1.example.com."
)

// serveCases are queries to newExampleMTASTS and their exact answers. The
// TTL of a synthesized record is min(ttl 300, the MX RRset's TTL).
func serveCases(t *testing.T) []test.Case {
	apexID := expectedID(t, "mx1.example.com", "mx2.example.com")
	subID := expectedID(t, "mail.sub.example.com")
	wildID := expectedID(t, "mx.wild.example.net")
	settings := settingsPolicies(t)
	return []test.Case{
		// The names of a mail domain.
		{
			Qname: "_mta-sts.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=` + apexID + `"`)},
		},
		{
			Qname: "_mta-sts.example.com.", Qtype: dns.TypeANY, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=` + apexID + `"`)},
		},
		{
			Qname: "mta-sts.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`mta-sts.example.com. 300 IN TXT "version: STSv1" "mode: testing" "mx: mx1.example.com" "mx: mx2.example.com" "max_age: 604800"`)},
		},
		{
			Qname: "mta-sts.example.com.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []dns.RR{test.A("mta-sts.example.com. 300 IN A 192.0.2.10")},
		},
		{
			Qname: "mta-sts.example.com.", Qtype: dns.TypeAAAA, Authoritative: true,
			Answer: []dns.RR{test.AAAA("mta-sts.example.com. 300 IN AAAA 2001:db8::10")},
		},
		{
			Qname: "_smtp._tls.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_smtp._tls.example.com. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt+example.com@provider.example"`)},
		},
		// NODATA: the plugin's names hold no other types.
		{Qname: "_mta-sts.example.com.", Qtype: dns.TypeA, Authoritative: true, Ns: []dns.RR{test.SOA(nodataSOA)}},
		{Qname: "mta-sts.example.com.", Qtype: dns.TypeMX, Authoritative: true, Ns: []dns.RR{test.SOA(nodataSOA)}},
		{Qname: "_smtp._tls.example.com.", Qtype: dns.TypeA, Authoritative: true, Ns: []dns.RR{test.SOA(nodataSOA)}},
		// The empty non-terminal above _smtp._tls.D: the file plugin's
		// NXDOMAIN, turned NODATA.
		{Qname: "_tls.example.com.", Qtype: dns.TypeTXT, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		// A sub-domain, whose MX TTL (60) is below ttl.
		{
			Qname: "_mta-sts.sub.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.sub.example.com. 60 IN TXT "v=STSv1; id=` + subID + `"`)},
		},
		{
			Qname: "mta-sts.sub.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`mta-sts.sub.example.com. 60 IN TXT "version: STSv1" "mode: testing" "mx: mail.sub.example.com" "max_age: 604800"`)},
		},
		{
			Qname: "mta-sts.sub.example.com.", Qtype: dns.TypeAAAA, Authoritative: true,
			Answer: []dns.RR{test.AAAA("mta-sts.sub.example.com. 60 IN AAAA 2001:db8::10")},
		},
		{
			Qname: "_smtp._tls.sub.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_smtp._tls.sub.example.com. 60 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt+sub.example.com@provider.example"`)},
		},
		// A name the wildcard MX covers.
		{
			Qname: "_mta-sts.x.wild.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.x.wild.example.com. 300 IN TXT "v=STSv1; id=` + wildID + `"`)},
		},
		{
			Qname: "mta-sts.x.wild.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`mta-sts.x.wild.example.com. 300 IN TXT "version: STSv1" "mode: testing" "mx: mx.wild.example.net" "max_age: 604800"`)},
		},
		// The owner name as the client spelled it (0x20).
		{
			Qname: "_MTA-sts.ExAmple.COM.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_MTA-sts.ExAmple.COM. 300 IN TXT "v=STSv1; id=` + apexID + `"`)},
		},
		{
			Qname: "MTA-STS.Example.COM.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []dns.RR{test.A("MTA-STS.Example.COM. 300 IN A 192.0.2.10")},
		},
		// Settings records shape the policy and stay hidden.
		{
			Qname: "_mta-sts.s-enforce.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.s-enforce.example.com. 300 IN TXT "v=STSv1; id=` + settings["s-enforce"].ID() + `"`)},
		},
		{
			Qname: "mta-sts.s-mx.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`mta-sts.s-mx.example.com. 300 IN TXT "version: STSv1" "mode: testing" "mx: *.mail.protection.outlook.com" "mx: mail.new.example" "mx: mx1.example.com" "max_age: 604800"`)},
		},
		{
			Qname: "mta-sts.s-all.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`mta-sts.s-all.example.com. 300 IN TXT "version: STSv1" "mode: enforce" "mx: mx1.example.com" "mx: mx9.example.net" "max_age: 1209600"`)},
		},
		{
			Qname: "_mta-sts.s-none.example.com.", Qtype: dns.TypeA, Authoritative: true, Ns: []dns.RR{test.SOA(nodataSOA)},
		},
		// Off, and an owner's record beside settings: the zone's answers.
		{
			Qname: "_mta-sts.s-off.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.s-off.example.com. 3600 IN TXT "v=STSCFG1; off"`)},
			Ns:     []dns.RR{test.NS(zoneNS)},
		},
		{
			Qname: "mta-sts.s-off.example.com.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []dns.RR{test.A("mta-sts.s-off.example.com. 3600 IN A 198.51.100.7")},
			Ns:     []dns.RR{test.NS(zoneNS)},
		},
		{Qname: "mta-sts.s-off.example.com.", Qtype: dns.TypeTXT, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "_smtp._tls.s-off.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{
			Qname: "_mta-sts.s-owner.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{
				test.TXT(`_mta-sts.s-owner.example.com. 3600 IN TXT "v=STSCFG1; mode=enforce"`),
				test.TXT(`_mta-sts.s-owner.example.com. 3600 IN TXT "v=STSv1; id=ownerpolicy2"`),
			},
			Ns: []dns.RR{test.NS(zoneNS)},
		},
		// Names of domains the plugin does not manage get the zone's answer.
		{Qname: "_mta-sts.nullmx.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "mta-sts.nullmx.example.com.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "_mta-sts.nomx.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "_mta-sts.alias.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "mta-sts.alias.example.com.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "_mta-sts.badmx.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "_mta-sts.ulabel.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{Qname: "_mta-sts.mta-sts.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true, Ns: []dns.RR{test.SOA(zoneSOA)}},
		{
			Qname: "_mta-sts.owner.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.owner.example.com. 3600 IN TXT "v=STSv1; id=ownerpolicy1"`)},
			Ns:     []dns.RR{test.NS(zoneNS)},
		},
		{
			Qname: "mta-sts.owner.example.com.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []dns.RR{test.A("mta-sts.owner.example.com. 3600 IN A 198.51.100.1")},
			Ns:     []dns.RR{test.NS(zoneNS)},
		},
		{
			Qname: "_smtp._tls.reports.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_smtp._tls.reports.example.com. 3600 IN TXT "v=TLSRPTv1; rua=mailto:own@reports.example.com"`)},
			Ns:     []dns.RR{test.NS(zoneNS)},
		},
		{ // below a delegation: the referral
			Qname: "_mta-sts.child.example.com.", Qtype: dns.TypeTXT,
			Ns:    []dns.RR{test.NS("child.example.com. 3600 IN NS ns.child.example.com.")},
			Extra: []dns.RR{test.A("ns.child.example.com. 3600 IN A 192.0.2.54")},
		},
		{
			Qname: "www.example.com.", Qtype: dns.TypeA, Authoritative: true,
			Answer: []dns.RR{test.A("www.example.com. 3600 IN A 192.0.2.80")},
			Ns:     []dns.RR{test.NS(zoneNS)},
		},
	}
}

func TestServeDNS(t *testing.T) {
	m := newExampleMTASTS(t)
	for _, tc := range serveCases(t) {
		checkServeDNS(t, m, tc.Msg(), tc)
	}
}

// A query with the proof option gets the nonce echoed, and the policy lines
// the id record in the additional section. The OPT record is the plugin's,
// unsized: the server sizes it from the query's.
func TestServeDNSProof(t *testing.T) {
	m := newExampleMTASTS(t)
	apexID := expectedID(t, "mx1.example.com", "mx2.example.com")
	for _, tc := range []test.Case{
		{
			Qname: "mta-sts.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`mta-sts.example.com. 300 IN TXT "version: STSv1" "mode: testing" "mx: mx1.example.com" "mx: mx2.example.com" "max_age: 604800"`)},
			Extra: []dns.RR{
				test.OPT(0, false),
				test.TXT(`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=` + apexID + `"`),
			},
		},
		{
			Qname: "_mta-sts.example.com.", Qtype: dns.TypeTXT, Authoritative: true,
			Answer: []dns.RR{test.TXT(`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=` + apexID + `"`)},
			Extra:  []dns.RR{test.OPT(0, false)},
		},
		{ // passed through, and vouched for all the same
			Qname: "mta-sts.nomx.example.com.", Qtype: dns.TypeTXT, Rcode: dns.RcodeNameError, Authoritative: true,
			Ns:    []dns.RR{test.SOA(zoneSOA)},
			Extra: []dns.RR{test.OPT(0, false)},
		},
	} {
		r := tc.Msg()
		r.SetEdns0(dns.MaxMsgSize, false)
		opt := r.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: testNonce})
		if resp := checkServeDNS(t, m, r, tc); resp != nil && !bytes.Equal(echo(resp), testNonce) {
			t.Errorf("%s %s: nonce not echoed:\n%v", tc.Qname, dns.TypeToString[tc.Qtype], resp)
		}
	}
}

// checkServeDNS runs r through m and checks the answer against tc, as
// CoreDNS's plugins test theirs, and more closely: the AA bit, and each
// record exactly, since test.SortAndCheck compares a TXT record's strings
// joined, and each policy line is a string of its own. It returns the
// answer, or nil if it does not match.
func checkServeDNS(t *testing.T, m *MTASTS, r *dns.Msg, tc test.Case) *dns.Msg {
	t.Helper()
	what := tc.Qname + " " + dns.TypeToString[tc.Qtype]
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if _, err := m.ServeDNS(context.Background(), rec, r); err != nil {
		t.Errorf("%s: %v", what, err)
		return nil
	}
	resp := rec.Msg
	if err := test.SortAndCheck(resp, tc); err != nil {
		t.Errorf("%s: %v\n%v", what, err, resp)
		return nil
	}
	if err := sameRecords(resp, tc); err != nil {
		t.Errorf("%s: %v\n%v", what, err, resp)
		return nil
	}
	if resp.Authoritative != tc.Authoritative {
		t.Errorf("%s: AA is %t, want %t\n%v", what, resp.Authoritative, tc.Authoritative, resp)
		return nil
	}
	return resp
}

// sameRecords compares the records of resp, sorted, and of tc, the OPT
// record aside, in their presentation format.
func sameRecords(resp *dns.Msg, tc test.Case) error {
	for _, s := range [][2][]dns.RR{{resp.Answer, tc.Answer}, {resp.Ns, tc.Ns}, {resp.Extra, tc.Extra}} {
		for i, rr := range s[0] {
			if _, ok := rr.(*dns.OPT); ok {
				continue
			}
			if got, want := rr.String(), s[1][i].String(); got != want {
				return fmt.Errorf("record %q, want %q", got, want)
			}
		}
	}
	return nil
}
