package tlsrpt

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coredns-mtasts/mtasts/caddymtasts/internal/reporttest"
	"github.com/coredns-mtasts/mtasts/policy"
)

// FuzzParse reads bodies as the handler does, gzip or JSON, and parses
// them. Whatever the input: no panic, only the two error kinds, and a
// report that parses has its required fields, canonical domains, counts
// from 0 and known types, and sums up without a negative count.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(reporttest.Gzip(data))
	}
	limits := Limits{MaxBodySize: 1 << 16, MaxReportSize: 1 << 18}
	f.Fuzz(func(t *testing.T, body []byte) {
		data, err := ReadBody(bytes.NewReader(body), -1, limits)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ReadBody: %v", err)
			}
			return
		}
		r, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse: %v", err)
			}
			return
		}
		checkReport(t, r)
	})
}

func checkReport(t *testing.T, r *Report) {
	if r.Organization == "" || r.ID == "" || r.Start.IsZero() || len(r.Day()) != 10 || len(r.Hash()) != 32 {
		t.Fatalf("required fields: %+v", r)
	}
	for _, p := range r.Policies {
		if p.Domain != "" {
			if d, err := policy.NormalizeHost(p.Domain); err != nil || d != p.Domain {
				t.Fatalf("policy domain %q not canonical: %q, %v", p.Domain, d, err)
			}
		}
		if !slices.Contains([]PolicyType{PolicySTS, PolicyTLSA, PolicyNone, PolicyOther}, p.Type) || p.Successful < 0 || p.Failed < 0 {
			t.Fatalf("policy %+v", p)
		}
		for _, f := range p.Failures {
			if f.Sessions < 0 || f.ResultType != ResultOther && !slices.Contains(ResultTypes, f.ResultType) || len(f.RawResultType) > maxRawTypeLen {
				t.Fatalf("failure %+v", f)
			}
		}
	}
	s := NewSummary("", r.Day())
	for _, d := range r.Sessions() {
		if d.Successful < 0 || d.Failed < 0 {
			t.Fatalf("sessions %+v", d)
		}
		for _, n := range d.Failures {
			if n < 0 {
				t.Fatalf("sessions %+v", d)
			}
		}
		if _, err := s.Add(r, d); err != nil {
			t.Fatal(err)
		}
	}
}
