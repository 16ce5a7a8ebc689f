package caddymtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"

	"github.com/coredns-mtasts/mtasts/caddymtasts/internal/reporttest"
	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// benchDashboard provisions a dashboard asking dnsAddr, on a loopback
// server, with a storage that knows n domains c000000.bench.test, ... as
// a provider's does: a certificate for each, a readiness result for each,
// and each one's TLS report summary of yesterday. The first page's
// domains have summaries for every day of the report window.
func benchDashboard(b *testing.B, dnsAddr string, n int) *Dashboard {
	b.Helper()
	ctx := testContext(b, "INFO")
	ctx.Context = context.WithValue(ctx.Context, caddyhttp.ServerCtxKey, &caddyhttp.Server{Listen: []string{"127.0.0.1:2020"}})
	d := &Dashboard{PolicyDNS: PolicyDNS{Servers: []string{dnsAddr}}}
	if err := d.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Cleanup() })

	cert := benchCertificate(b)
	today := time.Now().UTC()
	readiness, err := json.Marshal(readiness.DomainReport{CheckedAt: today, Ready: true, MXHosts: []readiness.HostResult{{Host: "mx1.bench.test", Outcome: readiness.OutcomePass}}})
	if err != nil {
		b.Fatal(err)
	}
	store := func(key string, data []byte) {
		if err := d.storage.Store(context.Background(), key, data); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		domain := fmt.Sprintf("c%06d.bench.test", i)
		store(certmagic.StorageKeys.SiteCert("acme-v02.api.letsencrypt.org-directory", policyHostPrefix+domain), cert)
		store(domainReportKey(domain), readiness)
		days := 1
		if i < dashboardPageSize {
			days = reportWindowDays
		}
		for ago := range days {
			day := today.AddDate(0, 0, -1-ago).Format(time.DateOnly)
			store(summaryKey(day, domain), benchSummary(b, domain, day))
		}
	}
	return d
}

// benchSummary is the summary of a day with two reports, one with failures.
func benchSummary(b *testing.B, domain, day string) []byte {
	b.Helper()
	s := tlsrpt.NewSummary(domain, day)
	for i, org := range []string{"Google Inc.", "Microsoft Corporation"} {
		r, err := tlsrpt.Parse(reporttest.Report(org, fmt.Sprint(i), domain, day, 3*i))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Add(r, r.Sessions()[0]); err != nil {
			b.Fatal(err)
		}
	}
	data, err := json.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// benchCertificate is a PEM certificate such as CertMagic stores.
func benchCertificate(b *testing.B) []byte {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mta-sts.bench.test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(90 * 24 * time.Hour), DNSNames: []string{"mta-sts.bench.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// BenchmarkDashboardTable renders the first page of the table with 1,000
// and 10,000 domains in storage (table): listing the storage, 50 DNS
// lookups to our CoreDNS, and each row's certificate, 30 days of summaries
// and readiness result. list is the listing alone: the storage's List
// calls allocate every key (certmagic.Storage has no paging, and
// FileStorage stats every entry), so table's B/op less list's is what the
// dashboard itself allocates, which should not grow with the domains.
func BenchmarkDashboardTable(b *testing.B) {
	dnsAddr := startBenchDNS(b)
	for _, n := range []int{1000, 10000} {
		d := benchDashboard(b, dnsAddr, n)
		b.Run(fmt.Sprintf("domains=%d/list", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := listDomains(context.Background(), d.storage, domainQuery{}, dashboardPageSize); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("domains=%d/table", n), func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				if err := d.ServeHTTP(rec, req, nil); err != nil || rec.Code != http.StatusOK {
					b.Fatalf("%d %v", rec.Code, err)
				}
			}
		})
	}
}
