package caddymtasts

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/coredns-mtasts/mtasts/caddymtasts/internal/reporttest"
	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// benchReportSize is the size of the gzip report the benchmarks post: a
// large sender's report about a domain whose MX hosts fail for many
// senders, about 100 failure details (real reports are mostly smaller).
const benchReportSize = 10 << 10

// benchReportDetails is how many failure details make a report of
// benchReportSize.
func benchReportDetails(b *testing.B) int {
	b.Helper()
	body := reporttest.GzipOfSize("Bench Sender", "0", "example.com", "2025-03-01", benchReportSize)
	data, err := tlsrpt.ReadBody(bytes.NewReader(body), -1, tlsrpt.Limits{MaxBodySize: 1 << 20, MaxReportSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r, err := tlsrpt.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	return len(r.Policies[0].Failures)
}

// BenchmarkReportParse reads and parses one 10 KiB gzip report, as the
// receiver does with each: gunzip, the shape check, decoding,
// normalising and the per-domain sums. Bytes per op (-benchmem) is the
// memory a report costs.
func BenchmarkReportParse(b *testing.B) {
	details := benchReportDetails(b)
	report := reporttest.Report("Bench Sender", "1", "example.com", "2025-03-01", details)
	body := reporttest.Gzip(report)
	limits := tlsrpt.Limits{MaxBodySize: tlsrpt.DefaultMaxBodySize, MaxReportSize: tlsrpt.DefaultMaxReportSize}
	b.ReportAllocs()
	for b.Loop() {
		data, err := tlsrpt.ReadBody(bytes.NewReader(body), int64(len(body)), limits)
		if err != nil {
			b.Fatal(err)
		}
		r, err := tlsrpt.Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		r.Sessions()
	}
	b.ReportMetric(float64(len(body)), "gzip-bytes")
	b.ReportMetric(float64(len(report)), "json-bytes")
}

// BenchmarkReportReceive posts distinct 10 KiB gzip reports, each about
// one of benchDomains managed domains in turn, straight to the receiver's
// ServeHTTP (no TLS): reading, parsing, the DNS lookup at our CoreDNS, the
// report stored and the domain's summary updated under its lock in a file
// system storage. By the end a summary counts a few reports, as a real
// day's do. Every answer must be 201.
func BenchmarkReportReceive(b *testing.B) {
	dnsAddr := startBenchDNS(b)
	details := benchReportDetails(b)
	h := &TLSRPTReceiver{PolicyDNS: PolicyDNS{Servers: []string{dnsAddr}}}
	if err := h.Provision(testContext(b, "INFO")); err != nil {
		b.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Cleanup() })

	var posted atomic.Int64
	// The bodies are made before the clock runs: a gzip of 40 KiB of JSON
	// costs about as much as receiving it.
	bodies := func(n int) [][]byte {
		all := make([][]byte, n)
		for i := range all {
			id := posted.Add(1)
			all[i] = reporttest.Gzip(reporttest.Report("Bench Sender", fmt.Sprint(id), fmt.Sprintf("c%06d.bench.test", id%benchDomains), "2025-03-01", details))
		}
		return all
	}
	post := func(b *testing.B, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/tlsrpt", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/tlsrpt+gzip")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, req, nil); err != nil || w.Code != http.StatusCreated {
			b.Fatalf("got %d, %v", w.Code, err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		all := bodies(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			post(b, all[i])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
	})
	b.Run("parallel", func(b *testing.B) {
		all := bodies(b.N)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				post(b, all[next.Add(1)-1])
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
	})
}
