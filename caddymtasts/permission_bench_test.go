package caddymtasts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/miekg/dns"
)

// benchDomains is how many managed domains the benchmark zone holds.
const benchDomains = 1000

// startBenchDNS starts our CoreDNS with mtasts in front of the
// file plugin, serving benchDomains mail domains c000000.bench.test, ...,
// and returns its TCP address.
func startBenchDNS(b *testing.B) string {
	b.Helper()
	var z strings.Builder
	z.WriteString("$ORIGIN bench.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	for i := range benchDomains {
		fmt.Fprintf(&z, "c%06d IN MX 10 mx1.c%06d\n", i, i)
	}
	zone := filepath.Join(b.TempDir(), "zone")
	if err := os.WriteFile(zone, []byte(z.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	addr, _ := startCoreDNS(b, fmt.Sprintf(`bench.test:{port} {
	bind 127.0.0.1
	mtasts {
		policy_server 127.0.0.1
	}
	file %s
}`, zone))
	return addr
}

// benchPermission provisions p as Caddy would, with debug logs off as in
// production, and stores a certificate for each of names, so that an
// uncached check is that of a restart or a renewal: DNS and the storage.
func benchPermission(b *testing.B, p *PermissionByMTASTS, names []string) *PermissionByMTASTS {
	b.Helper()
	if err := p.Provision(testContext(b, "INFO")); err != nil {
		b.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Cleanup() })
	for _, name := range names {
		err := p.stored.storage.Store(context.Background(), certmagic.StorageKeys.SiteCert("local", name), []byte("-----BEGIN CERTIFICATE-----\n"))
		if err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// BenchmarkPermission measures CertificateAllowed for managed domains: from
// the decisions it remembers (cached), and asking the DNS server for every
// call (uncached: allow_ttl of 1ns), which is what happens once per
// allow_ttl for a domain whose certificate is stored: a lookup, then the
// storage is asked whether the name is new. Besides the mean it reports
// the latency distribution of single calls (p50, p99, p99.9, max), because
// one slow check holds up a TLS handshake. cached_parallel calls from all
// cores at once, as concurrent handshakes do.
func BenchmarkPermission(b *testing.B) {
	server := startBenchDNS(b)
	names := make([]string, benchDomains)
	for i := range names {
		names[i] = fmt.Sprintf("mta-sts.c%06d.bench.test", i)
	}
	ctx := context.Background()

	for _, bc := range []struct {
		name     string
		allowTTL time.Duration
	}{
		{"cached", time.Hour},
		{"uncached", time.Nanosecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := benchPermission(b, &PermissionByMTASTS{
				PolicyDNS: PolicyDNS{Servers: []string{server}},
				AllowTTL:  caddy.Duration(bc.allowTTL),
			}, names)
			for _, name := range names { // every domain allowed once
				if err := p.CertificateAllowed(ctx, name); err != nil {
					b.Fatal(err)
				}
			}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				start := time.Now()
				err := p.CertificateAllowed(ctx, names[i%len(names)])
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				i += 7
			}
			reportLatencies(b, lat)
		})
	}

	b.Run("cached_parallel", func(b *testing.B) {
		p := benchPermission(b, &PermissionByMTASTS{
			PolicyDNS: PolicyDNS{Servers: []string{server}},
			AllowTTL:  caddy.Duration(time.Hour),
		}, names)
		for _, name := range names {
			if err := p.CertificateAllowed(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
		var mu sync.Mutex
		var all []time.Duration
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var lat []time.Duration
			i := 0
			for pb.Next() {
				start := time.Now()
				err := p.CertificateAllowed(ctx, names[i%len(names)])
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
		reportLatencies(b, all)
	})
}

// reportLatencies adds percentiles of the single-call latencies to the
// benchmark's output, in ns.
func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
	b.ReportMetric(at(0.999), "p99.9-ns")
	b.ReportMetric(float64(lat[len(lat)-1]), "max-ns")
}

// BenchmarkPolicyLookup measures one policy lookup, the DNS half of every
// policy request and of every uncached permission check: as shipped (over
// the connections the source keeps open) and, as the floor, the bare query
// and answer check over one TCP connection. Both include the work of
// CoreDNS, which runs as a separate process on the same cores.
func BenchmarkPolicyLookup(b *testing.B) {
	server := startBenchDNS(b)
	ctx := context.Background()
	domain := func(i int) string { return fmt.Sprintf("c%06d.bench.test", (i*7)%benchDomains) }

	b.Run("pooled_connections", func(b *testing.B) {
		source, err := PolicyDNS{Servers: []string{server}}.source()
		if err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			if _, err := source.lookup(ctx, domain(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	b.Run("one_connection", func(b *testing.B) {
		conn, err := dns.Dial("tcp", server)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		i := 0
		for b.Loop() {
			qname := "mta-sts." + domain(i) + "."
			q, nonce := policyQuery(qname)
			conn.SetDeadline(time.Now().Add(3 * time.Second))
			if err := conn.WriteMsg(q); err != nil {
				b.Fatal(err)
			}
			resp, err := conn.ReadMsg()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := policyFromAnswer(qname, nonce, resp); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
