package caddymtasts

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

func newSource(t *testing.T, timeout time.Duration, servers ...string) *policySource {
	t.Helper()
	s, err := PolicyDNS{Servers: servers, Timeout: caddy.Duration(timeout)}.source()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLookupAgainstCoreDNS(t *testing.T) {
	d := startDNS(t)
	s := newSource(t, 2*time.Second, d.addr)
	ctx := context.Background()

	body, err := s.lookup(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if want := expectedPolicy(t, "mx1.example.com").Encode(); !bytes.Equal(body, want) {
		t.Errorf("body %q, want %q", body, want)
	}
	if got, want := policy.IDOf(body), d.stsID(t, "example.com"); got != want {
		t.Errorf("body hashes to id %s, DNS publishes %s", got, want)
	}

	idn, err := s.lookup(ctx, "xn--bcher-kva.example")
	if want := expectedPolicy(t, "mx1.xn--bcher-kva.example").Encode(); err != nil || !bytes.Equal(idn, want) {
		t.Errorf("IDN domain: got %q, %v; want %q", idn, err, want)
	}
	for _, domain := range []string{
		"www.example.com",    // no MX: the plugin passes, the zone says NXDOMAIN
		"child.example.com",  // delegated: a referral
		"not-hosted.example", // in no zone of the server: REFUSED
	} {
		if body, err := s.lookup(ctx, domain); !errors.Is(err, errNotManaged) {
			t.Errorf("%s: got %q, %v; want %v", domain, body, err, errNotManaged)
		}
	}
	// The MX backend fails, the plugin answers SERVFAIL.
	if body, err := s.lookup(ctx, "broken.example.com"); err == nil || errors.Is(err, errNotManaged) || errors.Is(err, errInvalidPolicy) {
		t.Errorf("broken.example.com: got %q, %v; want a lookup failure", body, err)
	}
}

func TestLookupFailsOver(t *testing.T) {
	d := startDNS(t)
	closed := freeAddr(t)
	silent := silentServer(t)
	want := expectedPolicy(t, "mx1.example.com").Encode()

	for name, servers := range map[string][]string{
		"refused connection": {closed, d.addr},
		"silent server":      {silent, d.addr},
	} {
		start := time.Now()
		body, err := newSource(t, 2*time.Second, servers...).lookup(context.Background(), "example.com")
		if err != nil || !bytes.Equal(body, want) {
			t.Errorf("%s: got %q, %v", name, body, err)
		}
		// A silent server gets its share of the timeout, half, and no more.
		if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
			t.Errorf("%s: took %v", name, elapsed)
		}
	}
}

func TestLookupTimeout(t *testing.T) {
	silent := silentServer(t)
	start := time.Now()
	_, err := newSource(t, 300*time.Millisecond, silent, silent).lookup(context.Background(), "example.com")
	elapsed := time.Since(start)
	if err == nil || errors.Is(err, errNotManaged) {
		t.Fatalf("want a failure, got %v", err)
	}
	if elapsed < 250*time.Millisecond || elapsed > time.Second {
		t.Errorf("lookup gave up after %v, want about 300ms", elapsed)
	}
}

// silentServer returns the address of a TCP server that accepts
// connections and never answers, like an overloaded DNS server.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestServerAddress(t *testing.T) {
	expectMapping(t, "serverAddress", serverAddress, map[string]string{
		"192.0.2.53":       "192.0.2.53:53",
		"192.0.2.53:5353":  "192.0.2.53:5353",
		"2001:db8::53":     "[2001:db8::53]:53",
		"[2001:db8::53]":   "[2001:db8::53]:53",
		"[2001:db8::53]:5": "[2001:db8::53]:5",
		"ns1.example.com":  "ns1.example.com:53",
		"":                 "",
		":53":              "",
		"192.0.2.53:":      "",
		"127.0.0.1:abc":    "",
		"127.0.0.1:0":      "",
		"127.0.0.1:65536":  "",
		"127.0.0.1:-53":    "",
		"[::1":             "",
		"ns1 .example:53":  "",
	})
}

const qname = "mta-sts.example.com."

var policyLines = []string{"version: STSv1", "mode: testing", "mx: mx1.example.com", "max_age: 604800"}

func txtRR(name string, strs ...string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: strs}
}

// answer builds the response to "qname TXT" with the given flags and records.
func answer(rcode int, aa bool, records ...dns.RR) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(qname, dns.TypeTXT)
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.Authoritative = aa
	m.Answer = records
	return m
}

func referral() *dns.Msg {
	m := answer(dns.RcodeSuccess, false)
	m.Ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeNS, Class: dns.ClassINET}, Ns: "ns.example.net."}}
	return m
}

// testNonce stands for the nonce of the query the answers in the tables
// respond to.
var testNonce = []byte("0123456789abcdef")

// vouched returns m as the mtasts plugin answers a query carrying nonce: the
// nonce echoed, and the given "_mta-sts" records in the additional section.
func vouched(m *dns.Msg, nonce []byte, records ...string) *dns.Msg {
	for _, r := range records {
		m.Extra = append(m.Extra, txtRR("_"+qname, r))
	}
	m.SetEdns0(dns.MaxMsgSize, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: nonce})
	return m
}

// synthesized returns the plugin's answer for a policy of lines, with its id.
func synthesized(nonce []byte, lines ...string) *dns.Msg {
	id := policy.Record{ID: policy.IDOf(policy.JoinLines(lines))}.String()
	return vouched(answer(dns.RcodeSuccess, true, txtRR(qname, lines...)), nonce, id)
}

func TestPolicyFromAnswer(t *testing.T) {
	body := policy.JoinLines(policyLines)
	otherQuestion := synthesized(testNonce, policyLines...)
	otherQuestion.Question[0].Name = "mta-sts.example.net."
	cname := &dns.CNAME{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "policy.provider.example."}
	inOtherCase := vouched(answer(dns.RcodeSuccess, true, txtRR("MTA-STS.Example.COM.", policyLines...)), testNonce, policy.Record{ID: policy.IDOf(body)}.String())
	truncated := synthesized(testNonce, policyLines...)
	truncated.Truncated = true
	otherID := policy.Record{ID: policy.IDOf([]byte("other"))}.String()

	for name, tc := range map[string]struct {
		resp *dns.Msg
		want error // nil: body; errLookupFailure: neither sentinel
	}{
		"policy":                     {synthesized(testNonce, policyLines...), nil},
		"owner in other case":        {inOtherCase, nil},
		"beside an unrelated TXT":    {vouched(answer(dns.RcodeSuccess, true, txtRR(qname, "site-verification=x"), txtRR(qname, policyLines...)), testNonce, policy.Record{ID: policy.IDOf(body)}.String()), nil},
		"policy not vouched for":     {answer(dns.RcodeSuccess, true, txtRR(qname, policyLines...)), errUnvouched},
		"policy for another nonce":   {synthesized([]byte("fedcba9876543210"), policyLines...), errUnvouched},
		"zone data passed through":   {vouched(answer(dns.RcodeSuccess, true, txtRR(qname, policyLines...)), testNonce), errNotManaged},
		"id without the echo":        {vouched(answer(dns.RcodeSuccess, true), nil, policy.Record{ID: policy.IDOf(body)}.String()), errNotManaged},
		"another id":                 {vouched(answer(dns.RcodeSuccess, true, txtRR(qname, policyLines...)), testNonce, otherID), errInvalidPolicy},
		"two ids":                    {vouched(answer(dns.RcodeSuccess, true, txtRR(qname, policyLines...)), testNonce, policy.Record{ID: policy.IDOf(body)}.String(), otherID), errInvalidPolicy},
		"NODATA":                     {answer(dns.RcodeSuccess, true), errNotManaged},
		"NODATA vouched for":         {vouched(answer(dns.RcodeSuccess, true), testNonce), errNotManaged},
		"NXDOMAIN":                   {answer(dns.RcodeNameError, true), errNotManaged},
		"REFUSED":                    {answer(dns.RcodeRefused, false), errNotManaged},
		"referral":                   {referral(), errNotManaged},
		"only an unrelated TXT":      {answer(dns.RcodeSuccess, true, txtRR(qname, "site-verification=x")), errNotManaged},
		"TXT of a CNAME target":      {vouched(answer(dns.RcodeSuccess, true, cname, txtRR("policy.provider.example.", policyLines...)), testNonce), errNotManaged},
		"two policies":               {vouched(answer(dns.RcodeSuccess, true, txtRR(qname, policyLines...), txtRR(qname, policyLines[:3]...)), testNonce, policy.Record{ID: policy.IDOf(body)}.String()), errInvalidPolicy},
		"invalid policy":             {synthesized(testNonce, "version: STSv1", "mode: strict", "max_age: 1"), errInvalidPolicy},
		"empty line":                 {synthesized(testNonce, "version: STSv1", "", "mode: none", "max_age: 1"), errInvalidPolicy},
		"truncated":                  {truncated, errLookupFailure},
		"SERVFAIL":                   {answer(dns.RcodeServerFailure, true), errLookupFailure},
		"NXDOMAIN not authoritative": {answer(dns.RcodeNameError, false), errLookupFailure},
		"policy not authoritative":   {vouched(answer(dns.RcodeSuccess, false, txtRR(qname, policyLines...)), testNonce, policy.Record{ID: policy.IDOf(body)}.String()), errLookupFailure},
		"NODATA not authoritative":   {answer(dns.RcodeSuccess, false), errLookupFailure},
		"answer to another question": {otherQuestion, errLookupFailure},
	} {
		got, err := policyFromAnswer(qname, testNonce, tc.resp)
		switch {
		case tc.want == nil:
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s: got %q, %v; want %q", name, got, err, body)
			}
		case tc.want == errLookupFailure:
			if err == nil || errors.Is(err, errNotManaged) || errors.Is(err, errInvalidPolicy) || errors.Is(err, errUnvouched) {
				t.Errorf("%s: got %q, %v; want a lookup failure", name, got, err)
			}
		case !errors.Is(err, tc.want) || got != nil:
			t.Errorf("%s: got %q, %v; want %v", name, got, err, tc.want)
		}
	}
}

// errLookupFailure stands in the tables for "an error that is none of
// errNotManaged, errInvalidPolicy and errUnvouched".
var errLookupFailure = errors.New("lookup failure")

// FuzzPolicyFromAnswer checks that whatever response is accepted is an
// authoritative answer vouched for by the plugin, carrying a valid policy,
// exactly the joined strings of one TXT record owned by the name.
func FuzzPolicyFromAnswer(f *testing.F) {
	for _, m := range []*dns.Msg{
		synthesized(testNonce, policyLines...),
		answer(dns.RcodeSuccess, true, txtRR(qname, policyLines...)),
		answer(dns.RcodeSuccess, true, txtRR(qname, "site-verification=x"), txtRR(qname, policyLines...)),
		synthesized(testNonce, "version: STSv1", "mode: none", "max_age: 0", "x: y"),
		answer(dns.RcodeNameError, true),
		referral(),
	} {
		packed, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(packed)
	}
	f.Fuzz(func(t *testing.T, packed []byte) {
		m := new(dns.Msg)
		if m.Unpack(packed) != nil {
			return
		}
		body, err := policyFromAnswer(qname, testNonce, m)
		if err != nil {
			return
		}
		if !m.Authoritative || m.Rcode != dns.RcodeSuccess || m.Truncated {
			t.Fatalf("accepted a response that is not an authoritative, complete NOERROR:\n%v", m)
		}
		if !bytes.Equal(proofEcho(m), testNonce) {
			t.Fatalf("accepted a response that does not echo the nonce:\n%v", m)
		}
		if _, err := policy.Parse(body); err != nil {
			t.Fatalf("accepted an invalid policy %q: %v", body, err)
		}
		for _, rr := range m.Answer {
			if txt, ok := rr.(*dns.TXT); ok && bytes.Equal(policy.JoinLines(txt.Txt), body) {
				return
			}
		}
		t.Fatalf("body %q is no TXT record of\n%v", body, m)
	})
}
