package mtasts

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// benchDomains is how many mail domains the benchmark zone holds, shaped
// like the zones of bench/run: an A record, two MX records and the
// addresses of the MX hosts per domain.
const benchDomains = 1000

// benchZone returns the benchmark zone, with a TXT record at _mta-sts of
// every domain if record returns one for it.
func benchZone(b *testing.B, record func(domain string) string) file.File {
	b.Helper()
	var z strings.Builder
	z.WriteString("$ORIGIN bench.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	for i := range benchDomains {
		d := fmt.Sprintf("c%06d", i)
		fmt.Fprintf(&z, "%[1]s IN A 192.0.2.1\n%[1]s IN MX 10 mx1.%[1]s\n%[1]s IN MX 20 mx2.%[1]s\nmx1.%[1]s IN A 198.51.100.1\nmx2.%[1]s IN A 203.0.113.1\n", d)
		if txt := record(d); txt != "" {
			fmt.Fprintf(&z, "_mta-sts.%s IN TXT %q\n", d, txt)
		}
	}
	zone, err := file.Parse(strings.NewReader(z.String()), "bench.test.", "bench.zone", 0)
	if err != nil {
		b.Fatal(err)
	}
	return file.File{Zones: file.Zones{Z: map[string]*file.Zone{"bench.test.": zone}, Names: []string{"bench.test."}}}
}

// staticRecord is the _mta-sts record mtasts would synthesize for domain.
func staticRecord(b *testing.B) func(string) string {
	return func(d string) string {
		p, err := policy.New(policy.ModeTesting, []string{"mx1." + d + ".bench.test", "mx2." + d + ".bench.test"}, defaultMaxAge)
		if err != nil {
			b.Fatal(err)
		}
		return policy.Record{ID: p.ID()}.String()
	}
}

func benchPlugin(next plugin.Handler) *MTASTS {
	return &MTASTS{
		Next:          next,
		Zones:         []string{"bench.test."},
		PolicyServers: []net.IP{net.ParseIP("192.0.2.10")},
		Mode:          policy.ModeTesting,
		MaxAge:        defaultMaxAge,
		TTL:           defaultTTL,
	}
}

// cpuTime returns the CPU time the process has used, in nanoseconds. Unlike
// the wall time of ns/op it does not count time the benchmark spent waiting
// for a core that other processes held, so it is the steadier measure on a
// shared machine.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkServeDNS answers queries in process the way bench/run's CoreDNS
// instances do over UDP, packing each response as the server would:
// a static _mta-sts record from the file plugin (the ceiling), the same
// record synthesized by mtasts in front of file, with and without a
// settings record per domain, and ordinary A queries with and without
// mtasts in the chain.
func BenchmarkServeDNS(b *testing.B) {
	static, base := benchZone(b, staticRecord(b)), benchZone(b, func(string) string { return "" })
	settings := benchZone(b, func(string) string { return "v=STSCFG1; mode=enforce; mx=*.mail.example.net" })
	for _, bc := range []struct {
		name    string
		handler plugin.Handler
		prefix  string
		qtype   uint16
		proof   bool // the query carries the proof option, as the Caddy modules' do
		want    int  // answer records
	}{
		{"static_txt", static, "_mta-sts.", dns.TypeTXT, false, 1},
		{"synthesized_txt", benchPlugin(base), "_mta-sts.", dns.TypeTXT, false, 1},
		{"settings_txt", benchPlugin(settings), "_mta-sts.", dns.TypeTXT, false, 1},
		{"policy_txt", benchPlugin(base), "mta-sts.", dns.TypeTXT, false, 1},
		{"policy_txt_proof", benchPlugin(base), "mta-sts.", dns.TypeTXT, true, 1},
		{"a_without", base, "", dns.TypeA, false, 1},
		{"a_with", benchPlugin(base), "", dns.TypeA, false, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			queries := make([]*dns.Msg, benchDomains)
			for i := range queries {
				queries[i] = new(dns.Msg)
				queries[i].SetQuestion(fmt.Sprintf("%sc%06d.bench.test.", bc.prefix, i), bc.qtype)
				if bc.proof {
					queries[i].SetEdns0(dns.MaxMsgSize, false)
					opt := queries[i].IsEdns0()
					opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: []byte("nonce-0123456789")})
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			start := cpuTime()
			for b.Loop() {
				rec := dnstest.NewRecorder(&test.ResponseWriter{})
				bc.handler.ServeDNS(ctx, rec, queries[i%benchDomains])
				if rec.Msg == nil || len(rec.Msg.Answer) != bc.want {
					b.Fatalf("%s: unexpected answer %v", queries[i%benchDomains].Question[0].Name, rec.Msg)
				}
				if _, err := rec.Msg.Pack(); err != nil {
					b.Fatal(err)
				}
				i += 7 // visit the domains out of zone order
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
