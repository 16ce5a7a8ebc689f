package readiness

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/policy"
)

// staticDNS answers from maps: a domain without a policy has none, a host
// without addresses fails to resolve.
type staticDNS struct {
	policies  map[string]policy.Policy
	mx        map[string][]string
	addresses map[string][]netip.Addr
}

var errNoRecords = errors.New("no records")

func (d staticDNS) Policy(_ context.Context, domain string) (policy.Policy, error) {
	if p, ok := d.policies[domain]; ok {
		return p, nil
	}
	return policy.Policy{}, errNoRecords
}

func (d staticDNS) MXHosts(_ context.Context, domain string) ([]string, error) {
	return d.mx[domain], nil
}

func (d staticDNS) Addresses(_ context.Context, host string) ([]netip.Addr, error) {
	if a, ok := d.addresses[host]; ok {
		return a, nil
	}
	return nil, errNoRecords
}

// staticReports is what TLS reports say, or an error reading them; it
// notes the days asked for.
type staticReports struct {
	sessions    Sessions
	err         error
	first, last *time.Time
}

func (r staticReports) Sessions(_ context.Context, _ string, first, last time.Time) (Sessions, error) {
	if r.first != nil {
		*r.first, *r.last = first, last
	}
	return r.sessions, r.err
}

func TestVerdict(t *testing.T) {
	inTesting := policy.Policy{Mode: policy.ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 86400}
	dns := staticDNS{
		policies: map[string]policy.Policy{"example.com": inTesting, "nomx.example.com": inTesting},
		mx:       map[string][]string{"example.com": {"mx.example.com"}},
	}
	unresolved := "mx.example.com: addresses of mx.example.com: no records"
	for name, c := range map[string]struct {
		domain  string
		reports TLSReports
		reasons []string
	}{
		"no policy":       {"other.example", nil, []string{"no policy to enforce: no records"}},
		"no MX":           {"nomx.example.com", nil, []string{"no MX hosts"}},
		"a host fails":    {"example.com", nil, []string{unresolved}},
		"no reports":      {"example.com", staticReports{}, []string{unresolved}},
		"clean reports":   {"example.com", staticReports{sessions: Sessions{Reports: 3, Successful: 120}}, []string{unresolved}},
		"failed sessions": {"example.com", staticReports{sessions: Sessions{Reports: 3, Successful: 117, Failed: 3}}, []string{unresolved, "TLS reports of the last 7 days: 3 of 120 sessions failed"}},
		"unreadable":      {"example.com", staticReports{err: errNoRecords}, []string{unresolved, "TLS reports: no records"}},
	} {
		checker, err := New(Config{DNS: dns, Reports: c.reports, EHLOName: "checker.test"})
		if err != nil {
			t.Fatal(err)
		}
		r := checker.CheckDomain(context.Background(), c.domain)
		if r.Ready || !slices.Equal(r.Reasons, c.reasons) {
			t.Errorf("%s: ready %v, reasons %q; want not ready, %q", name, r.Ready, r.Reasons, c.reasons)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no DNS":         {EHLOName: "checker.test"},
		"port":           {DNS: staticDNS{}, EHLOName: "checker.test", Port: 65536},
		"concurrency":    {DNS: staticDNS{}, EHLOName: "checker.test", Concurrency: -1},
		"two EHLO names": {DNS: staticDNS{}, EHLOName: "checker.test other.test"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReportsOfTheLastDays(t *testing.T) {
	now := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	var first, last time.Time
	checker, err := New(Config{
		DNS:        staticDNS{policies: map[string]policy.Policy{"example.com": {Mode: policy.ModeTesting}}, mx: map[string][]string{"example.com": {"mx.example.com"}}},
		Reports:    staticReports{sessions: Sessions{Reports: 1, Successful: 10}, first: &first, last: &last},
		ReportDays: 7,
		EHLOName:   "checker.test",
		Now:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := checker.CheckDomain(context.Background(), "example.com")
	if first.Format(time.DateOnly) != "2025-02-24" || last != now {
		t.Errorf("asked for the days from %s to %s, want 2025-02-24 to %s", first, last, now)
	}
	if r.TLSReports == nil || *r.TLSReports != (Sessions{Days: 7, Reports: 1, Successful: 10}) {
		t.Errorf("TLS reports in the report: %+v", r.TLSReports)
	}
}
