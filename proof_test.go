package mtasts

import (
	"bytes"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

var testNonce = []byte("nonce-0123456789")

// exchangeWithProof asks for name TXT over network with the proof option
// carrying nonce, as the Caddy modules do.
func (s *dnsServer) exchangeWithProof(t *testing.T, network, name string, nonce []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	m.RecursionDesired = false
	m.SetEdns0(dns.MaxMsgSize, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: nonce})
	return s.send(t, network, m)
}

// echo returns the data of the proof option in resp, or nil.
func echo(resp *dns.Msg) []byte {
	if opt := resp.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if local, ok := o.(*dns.EDNS0_LOCAL); ok && local.Code == policy.ProofOption {
				return local.Data
			}
		}
	}
	return nil
}

// The policy lines come with the nonce echoed and, in the additional
// section, the id the plugin publishes at _mta-sts.D, which they hash to.
func TestProofOfPolicyLines(t *testing.T) {
	s := startExample(t)
	const name = "mta-sts.example.com."
	for _, network := range []string{"udp", "tcp"} {
		resp := s.exchangeWithProof(t, network, name, testNonce)
		if !bytes.Equal(echo(resp), testNonce) {
			t.Fatalf("%s: nonce not echoed:\n%v", network, resp)
		}
		lines := txtStrings(t, resp, name)
		if len(lines) != 1 {
			t.Fatalf("%s: want one policy record, got %q", network, lines)
		}
		var ids []string
		for _, rr := range resp.Extra {
			if txt, ok := rr.(*dns.TXT); ok && strings.EqualFold(txt.Hdr.Name, "_"+name) {
				ids = append(ids, strings.Join(txt.Txt, ""))
			}
		}
		rec, err := policy.SelectRecord(ids)
		if err != nil {
			t.Fatalf("%s: id beside the policy: %v\n%v", network, err, resp)
		}
		if got := policy.IDOf(policy.JoinLines(lines[0])); rec.ID != got || rec.ID != s.stsID(t, "_mta-sts.example.com.") {
			t.Errorf("%s: id beside the policy %s, lines hash to %s, published id %s", network, rec.ID, got, s.stsID(t, "_mta-sts.example.com."))
		}
	}
}

// For a name the plugin does not manage, the answer of the plugins behind
// it comes back with the nonce echoed: the plugin's verdict, so a TXT
// record in the zone that imitates a policy is recognizably not the
// plugin's policy.
func TestProofOfPassThrough(t *testing.T) {
	imitation := `version: STSv1" "mode: enforce" "mx: evil.example" "max_age: 86400`
	zone := exampleZoneWith(1, exampleApexMX) +
		"mta-sts.nomx IN TXT \"" + imitation + "\"\n" +
		"mta-sts.owner IN TXT \"" + imitation + "\"\n"
	s := startCoreDNS(t, basicCorefile, map[string]string{"example.com.zone": zone})
	for _, name := range []string{"mta-sts.nomx.example.com.", "mta-sts.owner.example.com.", "mta-sts.nullmx.example.com."} {
		resp := s.exchangeWithProof(t, "tcp", name, testNonce)
		if !bytes.Equal(echo(resp), testNonce) {
			t.Errorf("%s: nonce not echoed:\n%v", name, resp)
		}
		if len(resp.Extra) != 1 { // the OPT record alone: no id beside the zone's TXT
			t.Errorf("%s: additional records beside the zone's answer:\n%v", name, resp)
		}
	}
}

// Without the option, or with a nonce of a length out of bounds, nothing
// is echoed and no id is added.
func TestNoProofUnasked(t *testing.T) {
	s := startExample(t)
	const name = "mta-sts.example.com."
	for _, nonce := range [][]byte{
		[]byte("short"),
		bytes.Repeat([]byte{'x'}, policy.ProofNonceMax+1),
	} {
		resp := s.exchangeWithProof(t, "tcp", name, nonce)
		if echo(resp) != nil || len(resp.Extra) != 1 {
			t.Errorf("nonce of %d octets: got\n%v", len(nonce), resp)
		}
	}
	if resp := s.exchange(t, "tcp", name, dns.TypeTXT, false); len(resp.Extra) != 0 {
		t.Errorf("query without the option: additional records\n%v", resp)
	}
}

// A cache above mtasts never passes the echo on, neither from its store
// nor on a miss: CoreDNS's cache drops OPT records, which are hop-by-hop.
// So the Caddy modules can tell that a cache answered.
func TestCacheAboveDropsProof(t *testing.T) {
	corefile := strings.Replace(basicCorefile, "\tmtasts {", "\tcache 30\n\tmtasts {", 1)
	s := startCoreDNS(t, corefile, map[string]string{"example.com.zone": zoneWithSerial(1)})
	for i := range 2 {
		if resp := s.exchangeWithProof(t, "tcp", "mta-sts.example.com.", testNonce); echo(resp) != nil {
			t.Errorf("query %d through the cache: nonce echoed\n%v", i+1, resp)
		}
	}
}
