package tlsrpt

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// readReport parses testdata/NAME.
func readReport(t *testing.T, name string) *Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// sessions is a DomainSessions with its maps filled in from pairs.
func sessions(domain string, typ PolicyType, successful, failed int64, failures map[string]int64, other map[string]int64) DomainSessions {
	if failures == nil {
		failures = map[string]int64{}
	}
	if other == nil {
		other = map[string]int64{}
	}
	return DomainSessions{Domain: domain, PolicyType: typ, Successful: successful, Failed: failed, Failures: failures, OtherResultTypes: other}
}

// TestReports parses RFC 8460's example and one report of each deviation
// from it that real senders make, and checks what each counts for.
func TestReports(t *testing.T) {
	for _, tc := range []struct {
		file     string
		day      string
		sessions []DomainSessions
		check    func(t *testing.T, r *Report)
	}{
		{
			// Appendix B, with the line break that the RFC's layout put
			// into the additional-information URI undone. Its mx-host is
			// a string, not the array §4.4 asks for.
			file: "rfc8460-appendix-b.json", day: "2016-04-01",
			sessions: []DomainSessions{sessions("company-y.example", PolicySTS, 5326, 303,
				map[string]int64{"certificate-expired": 100, "starttls-not-supported": 200, "validation-failure": 3}, nil)},
			check: func(t *testing.T, r *Report) {
				p := r.Policies[0]
				want := Report{Organization: "Company-X", ID: "5065427c-23d3-47ca-b6e0-946ea0e8c4be", Contact: "sts-reporting@company-x.example",
					Start: time.Date(2016, 4, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2016, 4, 1, 23, 59, 59, 0, time.UTC)}
				if r.Organization != want.Organization || r.ID != want.ID || r.Contact != want.Contact || !r.Start.Equal(want.Start) || !r.End.Equal(want.End) {
					t.Errorf("got %+v", r)
				}
				expectStrings(t, "policy-string", p.Strings, "version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400")
				expectStrings(t, "mx-host", p.MXHosts, "*.mail.company-y.example")
				f := p.Failures[2]
				if f.SendingIP != "198.51.100.62" || f.ReceivingIP != "203.0.113.58" || f.ReceivingMX != "mx-backup.mail.company-y.example" ||
					f.ReasonCode != "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED" {
					t.Errorf("third failure detail: %+v", f)
				}
				if got := p.Failures[1].AdditionalInfo; got != "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported" {
					t.Errorf("additional-information %q", got)
				}
			},
		},
		{
			file: "no-time-zone.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicySTS, 40, 0, nil, nil)},
			check: func(t *testing.T, r *Report) {
				if want := time.Date(2025, 3, 1, 23, 59, 59, 0, time.UTC); !r.End.Equal(want) {
					t.Errorf("end %v, want %v (UTC)", r.End, want)
				}
			},
		},
		{
			file: "end-next-midnight.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicySTS, 12, 0, nil, nil)},
		},
		{
			// Two sts policies of one domain, one per MX host: distinct
			// sessions, summed.
			file: "several-policies.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicySTS, 40, 3,
				map[string]int64{"certificate-expired": 2, "starttls-not-supported": 1}, nil)},
		},
		{
			// The same 100 sessions under the domain's DANE and MTA-STS
			// policy: counted once, from the sts policy (a tie, 100 each).
			file: "dane-and-sts.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicySTS, 100, 0, nil, nil)},
		},
		{
			file: "dane-policy-string-json.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicyTLSA, 7, 0, nil, nil)},
			check: func(t *testing.T, r *Report) {
				expectStrings(t, "policy-string", r.Policies[0].Strings,
					"3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6",
					"3 1 1 1F850A337E6DB9C609C522D136A475638CC43E1ED424F8EEC8513D747D1D085D")
			},
		},
		{
			file: "policy-string-forms.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicySTS, 15, 0, nil, nil)},
			check: func(t *testing.T, r *Report) {
				// missing; empty; a string; an array; null and [].
				for i, want := range [][2][]string{
					{nil, nil},
					{nil, nil},
					{{"version: STSv1"}, {"mx1.example.com"}},
					{{"version: STSv1", "mode: testing", "mx: mx1.example.com", "max_age: 604800"}, {"mx1.example.com", "mx2.example.com"}},
					{nil, nil},
				} {
					p := r.Policies[i]
					expectStrings(t, fmt.Sprintf("policies[%d] policy-string", i), p.Strings, want[0]...)
					expectStrings(t, fmt.Sprintf("policies[%d] mx-host", i), p.MXHosts, want[1]...)
				}
			},
		},
		{
			// example.com: details for 6 of 10 failed sessions, none with
			// a sending IP or MX host; example.net: details for more than
			// the summary says failed, kept as sent.
			file: "sparse-failure-details.json", day: "2025-03-01",
			sessions: []DomainSessions{
				sessions("example.com", PolicySTS, 50, 10,
					map[string]int64{"certificate-host-mismatch": 4, "sts-webpki-invalid": 2, ResultUnspecified: 4}, nil),
				sessions("example.net", PolicySTS, 0, 1, map[string]int64{"certificate-expired": 3}, nil),
			},
		},
		{
			file: "contact-info-null.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicySTS, 8, 0, nil, nil)},
			check: func(t *testing.T, r *Report) {
				if r.Contact != "" {
					t.Errorf("contact %q", r.Contact)
				}
			},
		},
		{
			// A result type in capitals is known; one RFC 8460 does not
			// name is "other", and kept as sent; so is the policy type.
			file: "unknown-types.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicyOther, 20, 6,
				map[string]int64{"certificate-expired": 1, ResultOther: 5}, map[string]int64{"tls-version-too-old": 5})},
			check: func(t *testing.T, r *Report) {
				if p := r.Policies[0]; p.RawType != "sts-and-more" || p.Failures[1].RawResultType != "tls-version-too-old" {
					t.Errorf("raw types: %q, %q", p.RawType, p.Failures[1].RawResultType)
				}
			},
		},
		{
			// Misspelled optional keys are ignored: no end, contact,
			// policy-string, mx-host, MX host or reason.
			file: "misspelled-keys.json", day: "2025-03-01",
			sessions: []DomainSessions{sessions("example.com", PolicySTS, 9, 1, map[string]int64{"certificate-not-trusted": 1}, nil)},
			check: func(t *testing.T, r *Report) {
				p := r.Policies[0]
				if !r.End.IsZero() || r.Contact != "" || p.Strings != nil || p.MXHosts != nil || p.Failures[0].ReceivingMX != "" {
					t.Errorf("misspelled keys read: %+v", r)
				}
			},
		},
		{
			file: "no-policy-domain.json", day: "2025-03-01",
			sessions: nil,
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := readReport(t, tc.file)
			if got := r.Day(); got != tc.day {
				t.Errorf("day %s, want %s", got, tc.day)
			}
			if got := r.Sessions(); !reflect.DeepEqual(got, tc.sessions) {
				t.Errorf("sessions\n got %+v\nwant %+v", got, tc.sessions)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func expectStrings(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

func TestParseDateTime(t *testing.T) {
	want := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"2025-03-01T00:00:00Z",
		"2025-03-01T00:00:00.000Z",
		"2025-03-01t00:00:00z",
		"2025-03-01 00:00:00Z",
		"2025-03-01T01:00:00+01:00",
		"2025-03-01T01:00:00+0100",
		"2025-02-28T19:00:00-05:00",
		"2025-03-01T00:00:00",
		"2025-03-01 00:00:00",
		" 2025-03-01T00:00:00Z ",
		"2025-03-01",
	} {
		if got, err := parseDateTime(s); err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%q: got %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "yesterday", "2025-13-01T00:00:00Z", "2025-03-01T25:00:00Z", "1740787200"} {
		if got, err := parseDateTime(s); err == nil {
			t.Errorf("%q: got %v, want an error", s, got)
		}
	}
}

func TestTLSAPolicyStringSeparatedBySemicolons(t *testing.T) {
	r, err := Parse([]byte(`{"organization-name": "o", "report-id": "1", "date-range": {"start-datetime": "2025-03-01T00:00:00Z"},
		"policies": [{"policy": {"policy-type": "TLSA", "policy-domain": "Example.COM.", "policy-string": "3 1 1 AA; 3 1 1 BB;"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p := r.Policies[0]
	if p.Type != PolicyTLSA || p.Domain != "example.com" {
		t.Errorf("type %q, domain %q", p.Type, p.Domain)
	}
	expectStrings(t, "policy-string", p.Strings, "3 1 1 AA", "3 1 1 BB")
}

func TestParseTakesAByteOrderMarkAndIDNs(t *testing.T) {
	r, err := Parse([]byte("\xef\xbb\xbf" + `{"organization-name": "o", "report-id": "1", "date-range": {"start-datetime": "2025-03-01T00:00:00Z"},
		"policies": [{"policy": {"policy-type": "sts", "policy-domain": "Bücher.example"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	expectStrings(t, "domains", r.Domains(), "xn--bcher-kva.example")
}

// validReport is a minimal valid report with the given policies.
func validReport(policies string) string {
	return `{"organization-name": "o", "report-id": "1", "date-range": {"start-datetime": "2025-03-01T00:00:00Z"}, "policies": ` + policies + `}`
}

func TestParseRefuses(t *testing.T) {
	deep := strings.Repeat(`{"x": `, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1)
	many := validReport(`[]`)[:len(validReport(`[]`))-1] + `, "x": [` + strings.Repeat("0,", maxElements) + `0]}`
	var domains []string
	for i := range maxDomains + 1 {
		domains = append(domains, fmt.Sprintf(`{"policy": {"policy-domain": "d%d.example"}}`, i))
	}
	for _, tc := range []struct {
		name, report string
		err          error
	}{
		{"not JSON", "organization-name: o", ErrMalformed},
		{"truncated JSON", validReport(`[]`)[:40], ErrMalformed},
		{"an array", `[` + validReport(`[]`) + `]`, ErrMalformed},
		{"null", `null`, ErrMalformed},
		{"no organization-name", `{"report-id": "1", "date-range": {"start-datetime": "2025-03-01T00:00:00Z"}, "policies": []}`, ErrMalformed},
		{"empty organization-name", `{"organization-name": " ", "report-id": "1", "date-range": {"start-datetime": "2025-03-01T00:00:00Z"}, "policies": []}`, ErrMalformed},
		{"no report-id", `{"organization-name": "o", "date-range": {"start-datetime": "2025-03-01T00:00:00Z"}, "policies": []}`, ErrMalformed},
		{"no date-range", `{"organization-name": "o", "report-id": "1", "policies": []}`, ErrMalformed},
		{"no start", `{"organization-name": "o", "report-id": "1", "date-range": {"end-datetime": "2025-03-01T23:59:59Z"}, "policies": []}`, ErrMalformed},
		{"bad start", `{"organization-name": "o", "report-id": "1", "date-range": {"start-datetime": "March 1st"}, "policies": []}`, ErrMalformed},
		{"no policies", `{"organization-name": "o", "report-id": "1", "date-range": {"start-datetime": "2025-03-01T00:00:00Z"}}`, ErrMalformed},
		{"policies an object", validReport(`{}`), ErrMalformed},
		{"report-id a number", `{"organization-name": "o", "report-id": 1, "date-range": {"start-datetime": "2025-03-01T00:00:00Z"}, "policies": []}`, ErrMalformed},
		{"negative count", validReport(`[{"summary": {"total-successful-session-count": -1}}]`), ErrMalformed},
		{"fractional count", validReport(`[{"summary": {"total-failure-session-count": 1.5}}]`), ErrMalformed},
		{"count as string", validReport(`[{"failure-details": [{"failed-session-count": "3"}]}]`), ErrMalformed},
		{"count over 2^53", validReport(`[{"summary": {"total-successful-session-count": 1e16}}]`), ErrMalformed},
		{"policy-domain no domain name", validReport(`[{"policy": {"policy-domain": "exa mple.com"}}]`), ErrMalformed},
		{"policy-string of numbers", validReport(`[{"policy": {"policy-string": [1, 2]}}]`), ErrMalformed},
		{"nested too deep", deep, ErrMalformed},
		{"too many elements", many, ErrTooLarge},
		{"too many domains", validReport("[" + strings.Join(domains, ",") + "]"), ErrTooLarge},
	} {
		if r, err := Parse([]byte(tc.report)); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %+v, %v; want %v", tc.name, r, err, tc.err)
		}
	}
}

func TestParseTakesTheLimits(t *testing.T) {
	atDepth := validReport(`[{"x": ` + strings.Repeat("[", maxDepth-3) + strings.Repeat("]", maxDepth-3) + `}]`)
	if _, err := Parse([]byte(atDepth)); err != nil {
		t.Errorf("%d levels: %v", maxDepth, err)
	}
	var domains []string
	for i := range maxDomains {
		domains = append(domains, fmt.Sprintf(`{"policy": {"policy-domain": "d%d.example"}}`, i))
	}
	if _, err := Parse([]byte(validReport("[" + strings.Join(domains, ",") + "]"))); err != nil {
		t.Errorf("%d domains: %v", maxDomains, err)
	}
	// Brackets and commas inside strings, escaped quotes too, count for
	// nothing.
	inString := validReport(`[{"policy": {"policy-string": "` + strings.Repeat(`[{,\"`, maxElements) + `"}}]`)
	if _, err := Parse([]byte(inString)); err != nil {
		t.Errorf("brackets in a string: %v", err)
	}
}

func TestSessionsSaturate(t *testing.T) {
	p := fmt.Sprintf(`{"policy": {"policy-domain": "example.com"}, "summary": {"total-successful-session-count": %d, "total-failure-session-count": %d}}`,
		int64(maxSessionCount), int64(maxSessionCount))
	policies := "[" + strings.Repeat(p+",", 2000) + p + "]"
	r, err := Parse([]byte(validReport(policies)))
	if err != nil {
		t.Fatal(err)
	}
	d := r.Sessions()[0]
	if d.Successful != math.MaxInt64 || d.Failed != math.MaxInt64 || d.Failures[ResultUnspecified] != math.MaxInt64 {
		t.Errorf("got %+v, want counts at the largest int64", d)
	}
}

func TestHashTellsOrganizationsApart(t *testing.T) {
	a := &Report{Organization: "a", ID: "bc"}
	b := &Report{Organization: "ab", ID: "c"}
	if a.Hash() == b.Hash() {
		t.Error("organization a with id bc hashes like organization ab with id c")
	}
	if h := a.Hash(); len(h) != 32 || h != (&Report{Organization: "a", ID: "bc"}).Hash() {
		t.Errorf("hash %q: want 32 hex digits, the same every time", h)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aéb", 2, "a"}, // é is two bytes
		{"aéb", 3, "aé"},
	} {
		if got := truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
