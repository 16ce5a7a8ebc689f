package mtasts

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// FuzzServeDNS feeds arbitrary messages, those CoreDNS's server passes to
// its plugins (serverAccepts), to the plugin with the file plugin
// behind it, serving the example zone, MX targets the plugin refuses and
// settings records, valid and not (newExampleMTASTS). The seeds include
// queries carrying the proof option.
// Whatever arrives, the plugin must not panic, whatever it writes must be a
// valid message answering the question, and a managed domain's _mta-sts
// name never gets NXDOMAIN.
func FuzzServeDNS(f *testing.F) {
	m := newExampleMTASTS(f)
	for _, name := range []string{"_mta-sts.example.com.", "mta-sts.sub.example.com.", "_smtp._tls.example.com.",
		"_tls.example.com.", "_mta-sts.owner.example.com.", "_MTA-STS.x.WILD.example.com.", "mta-sts.", "_mta-sts.nullmx.example.com.",
		`_mta-sts.a\.b.example.com.`, "_mta-sts.child.example.com.", "example.com.", "_mta-sts.ulabel.example.com.",
		"mta-sts.wildmx.example.com.", "_mta-sts.escaped.example.com.", "mta-sts.mixed.example.com.", "_mta-sts.upper.example.com.",
		"_mta-sts.s-all.example.com.", "mta-sts.s-mx.example.com.", "_smtp._tls.s-none.example.com.", "_tls.s-off.example.com.",
		"mta-sts.s-off.example.com.", "_mta-sts.s-owner.example.com.", "mta-sts.s-two.example.com.", "_mta-sts.s-longline.example.com."} {
		for _, qtype := range []uint16{dns.TypeTXT, dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeMX, dns.TypeAXFR} {
			q := new(dns.Msg)
			q.SetQuestion(name, qtype)
			if qtype == dns.TypeA {
				q.SetEdns0(1232, true)
			}
			if b, err := q.Pack(); err == nil {
				f.Add(b)
			}
			if qtype == dns.TypeTXT {
				q.SetEdns0(dns.MaxMsgSize, false)
				opt := q.IsEdns0()
				opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: []byte("nonce-0123456789")})
				if b, err := q.Pack(); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(dns.Msg)
		if !serverAccepts(data) || r.Unpack(data) != nil {
			return
		}
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		m.ServeDNS(context.Background(), rec, r)
		if rec.Msg == nil {
			return
		}
		if _, err := rec.Msg.Pack(); err != nil {
			t.Fatalf("unpackable answer to %v: %v\n%v", r, err, rec.Msg)
		}
		if len(rec.Msg.Question) != len(r.Question) || rec.Msg.Id != r.Id {
			t.Fatalf("answer does not match the query %v:\n%v", r, rec.Msg)
		}
		if name, ok := m.match(request.Request{W: rec, Req: r}); ok && name.kind == nameRecord && name.domain == "example.com." && rec.Msg.Rcode == dns.RcodeNameError {
			t.Fatalf("NXDOMAIN for a managed domain's record:\n%v", rec.Msg)
		}
	})
}

// serverAccepts reports whether CoreDNS's server passes the message in data
// to the plugins at all: miekg/dns's DefaultMsgAcceptFunc, which CoreDNS
// applies, answers anything but one question in a query or NOTIFY itself
// (FORMERR, NOTIMP) or drops it.
func serverAccepts(data []byte) bool {
	if len(data) < 12 {
		return false
	}
	u16 := func(i int) uint16 { return binary.BigEndian.Uint16(data[i:]) }
	dh := dns.Header{Id: u16(0), Bits: u16(2), Qdcount: u16(4), Ancount: u16(6), Nscount: u16(8), Arcount: u16(10)}
	return dns.DefaultMsgAcceptFunc(dh) == dns.MsgAccept
}
