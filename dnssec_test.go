package mtasts

import (
	"crypto"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// newZoneKey makes an ECDSA P-256 key-signing key for zone and writes it as
// the K<zone>+013+<tag>.key/.private pair the dnssec plugin reads from dir.
func newZoneKey(t *testing.T, zone, dir string) (*dns.DNSKEY, crypto.Signer, string) {
	t.Helper()
	key := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     257,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, fmt.Sprintf("K%s+%03d+%05d", zone, key.Algorithm, key.KeyTag()))
	writeFile(t, base+".key", key.String()+"\n")
	writeFile(t, base+".private", key.PrivateKeyString(priv))
	return key, priv.(crypto.Signer), base
}

// verifySigned checks that every RRset of rrs of the given types is covered
// by a valid RRSIG made with key.
func verifySigned(t *testing.T, key *dns.DNSKEY, rrs []dns.RR, types ...uint16) {
	t.Helper()
	for _, typ := range types {
		var rrset []dns.RR
		var sig *dns.RRSIG
		for _, rr := range rrs {
			if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == typ {
				sig = s
			} else if rr.Header().Rrtype == typ {
				rrset = append(rrset, rr)
			}
		}
		if len(rrset) == 0 || sig == nil {
			t.Fatalf("no signed %s RRset in %v", dns.TypeToString[typ], rrs)
		}
		if err := sig.Verify(key, rrset); err != nil {
			t.Fatalf("RRSIG over %s does not verify: %v", dns.TypeToString[typ], err)
		}
		if !sig.ValidityPeriod(time.Now()) {
			t.Fatalf("RRSIG over %s is not valid now", dns.TypeToString[typ])
		}
	}
}

func TestDNSSECAboveSignsSynthesizedAnswers(t *testing.T) {
	dir := t.TempDir()
	key, _, keyBase := newZoneKey(t, "example.com.", dir)
	writeFile(t, filepath.Join(dir, "example.com.zone"), zoneWithSerial(1))
	s := startCoreDNS(t, fmt.Sprintf(`example.com:0 {
	bind 127.0.0.1
	dnssec {
		key file %s
	}
	mtasts {
		policy_server 192.0.2.10
	}
	file %s/example.com.zone
}`, keyBase, dir), nil)

	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_mta-sts.example.com.", dns.TypeTXT},
		{"mta-sts.example.com.", dns.TypeTXT},
		{"mta-sts.example.com.", dns.TypeA},
	} {
		resp := s.exchange(t, "tcp", q.name, q.qtype, true)
		if resp.Rcode != dns.RcodeSuccess {
			t.Fatalf("%s: %v", q.name, resp)
		}
		verifySigned(t, key, resp.Answer, q.qtype)
	}

	// NODATA: the SOA and the black-lies NSEC that denies the type are signed.
	resp := s.exchange(t, "udp", "mta-sts.example.com.", dns.TypeMX, true)
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 {
		t.Fatalf("want NODATA, got %v", resp)
	}
	verifySigned(t, key, resp.Ns, dns.TypeSOA, dns.TypeNSEC)
	for _, rr := range resp.Ns {
		if nsec, ok := rr.(*dns.NSEC); ok && (slices.Contains(nsec.TypeBitMap, dns.TypeMX) || !slices.Contains(nsec.TypeBitMap, dns.TypeTXT)) {
			t.Errorf("NSEC bitmap %v denies TXT or claims MX at mta-sts.example.com", nsec.TypeBitMap)
		}
	}

	// Without DO there is nothing to sign.
	resp = s.exchange(t, "udp", "_mta-sts.example.com.", dns.TypeTXT, false)
	if len(resp.Answer) != 1 {
		t.Fatalf("without DO: want the TXT record alone, got %v", resp)
	}
}

func TestPresignedZonePassesThrough(t *testing.T) {
	dir := t.TempDir()
	key, signer, _ := newZoneKey(t, "signed.example.", dir)
	mx, err := dns.NewRR("signed.example. 3600 IN MX 10 mx.signed.example.")
	if err != nil {
		t.Fatal(err)
	}
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: "signed.example.", Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 3600},
		Algorithm:  key.Algorithm,
		Expiration: uint32(time.Now().Add(24 * time.Hour).Unix()),
		Inception:  uint32(time.Now().Add(-time.Hour).Unix()),
		KeyTag:     key.KeyTag(),
		SignerName: "signed.example.",
	}
	if err := sig.Sign(signer, []dns.RR{mx}); err != nil {
		t.Fatal(err)
	}
	zone := fmt.Sprintf(`signed.example. 3600 IN SOA ns hostmaster 1 7200 3600 1209600 300
signed.example. 3600 IN NS ns.signed.example.
%s
%s
%s
`, key, mx, sig)
	corefile := `signed.example:0 {
	bind 127.0.0.1
	mtasts {
		policy_server 192.0.2.10
	}
	file {dir}/signed.zone
}`
	s := startCoreDNS(t, corefile, map[string]string{"signed.zone": zone})
	for _, do := range []bool{false, true} {
		for _, name := range []string{"_mta-sts.signed.example.", "mta-sts.signed.example."} {
			if resp := s.exchange(t, "udp", name, dns.TypeTXT, do); resp.Rcode != dns.RcodeNameError {
				t.Errorf("%s (DO %v): want the zone's NXDOMAIN, got %v", name, do, resp)
			}
		}
	}
}
