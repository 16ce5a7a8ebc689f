package caddymtasts

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/internal/reporttest"
	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// parseReport parses a report the way the receiver does.
func parseReport(t *testing.T, data []byte) *tlsrpt.Report {
	t.Helper()
	r, err := tlsrpt.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// expectedSummary is the summary of domain on day that the pure package
// makes of reports, in this order.
func expectedSummary(t *testing.T, domain, day string, reports ...[]byte) *tlsrpt.Summary {
	t.Helper()
	s := tlsrpt.NewSummary(domain, day)
	for _, data := range reports {
		r := parseReport(t, data)
		for _, d := range r.Sessions() {
			if d.Domain == domain && r.Day() == day {
				if _, err := s.Add(r, d); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return s
}

// expectSummaries checks that the admin endpoint of c serves exactly want
// for domain.
func expectSummaries(t *testing.T, c *reportCaddy, domain string, want ...*tlsrpt.Summary) {
	t.Helper()
	got := c.summaries(t, domain, "")
	if got.Domain != domain || !reflect.DeepEqual(got.Days, want) {
		t.Errorf("summaries of %s:\n got %+v\nwant %+v", domain, got, want)
	}
}

// storedReports lists the files under the receiver's keys in storage, as
// paths relative to mta_sts/tlsrpt.
func storedReports(t *testing.T, storage string) []string {
	t.Helper()
	root := filepath.Join(storage, "mta_sts", "tlsrpt")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			files = append(files, filepath.ToSlash(rel))
		}
		if os.IsNotExist(err) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func expectStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: got %d %q, want %d", what, r.status, r.body, status)
	}
}

// TestReceiveRFC8460Example posts RFC 8460's example report (Appendix B),
// gzip, then the same report as plain JSON: taken before, since it has the
// same organization-name and report-id.
func TestReceiveRFC8460Example(t *testing.T) {
	d := startDNS(t)
	storage := t.TempDir()
	c := startReportCaddy(t, d.addr, storage, nil)
	report := testReport(t, "rfc8460-appendix-b.json")

	expectStatus(t, "gzip", c.post(t, "application/tlsrpt+gzip", reporttest.Gzip(report)), http.StatusCreated)
	expectStatus(t, "the same as JSON", c.post(t, "application/tlsrpt+json", report), http.StatusOK)

	want := expectedSummary(t, "company-y.example", "2016-04-01", report)
	if want.Reports != 1 || want.SuccessfulSessions != 5326 || want.FailedSessions != 303 ||
		want.FailuresByResultType["starttls-not-supported"] != 200 || want.Organizations["Company-X"].FailedSessions != 303 {
		t.Fatalf("the expected summary is wrong: %+v", want)
	}
	expectSummaries(t, c, "company-y.example", want)

	hash := parseReport(t, report).Hash()
	stored, err := os.ReadFile(filepath.Join(storage, "mta_sts", "tlsrpt", "reports", "2016-04-01", hash+".json"))
	if err != nil || !bytes.Equal(stored, report) {
		t.Errorf("stored report: %v; want the JSON as sent", err)
	}
}

// TestReceiveDeviations posts one report of each deviation from RFC 8460
// that real senders make, gzip or JSON under every media type senders use:
// all are taken, and the summaries say what package tlsrpt makes of them.
func TestReceiveDeviations(t *testing.T) {
	d := startDNS(t)
	storage := t.TempDir()
	c := startReportCaddy(t, d.addr, storage, nil)
	accepted := total(t, reportsReceived.WithLabelValues("accepted"))
	successful := total(t, sessionsReported.WithLabelValues("successful"))

	var reports [][]byte
	for _, tc := range []struct {
		file, contentType string
		gzip              bool
	}{
		{"no-time-zone.json", "application/tlsrpt+json", false},
		{"end-next-midnight.json", "application/tlsrpt+gzip", true},
		{"several-policies.json", "application/tlsrpt", true},
		{"dane-and-sts.json", "application/gzip", true},
		{"dane-policy-string-json.json", "application/octet-stream", true},
		{"policy-string-forms.json", "application/tlsrpt+json", true}, // gzip, told by its first bytes
		{"sparse-failure-details.json", "application/json; charset=utf-8", false},
		{"contact-info-null.json", "application/tlsrpt", false},
		{"unknown-types.json", "application/x-gzip", true},
		{"misspelled-keys.json", "Application/TLSRPT+JSON", false},
		{"no-policy-domain.json", "application/tlsrpt+gzip", true},
	} {
		report := testReport(t, tc.file)
		reports = append(reports, report)
		body := report
		if tc.gzip {
			body = reporttest.Gzip(report)
		}
		expectStatus(t, tc.file, c.post(t, tc.contentType, body), http.StatusCreated)
	}

	exampleCom := expectedSummary(t, "example.com", "2025-03-01", reports...)
	if exampleCom.Reports != 10 || exampleCom.SuccessfulSessions != 301 || exampleCom.FailedSessions != 20 {
		t.Fatalf("the expected summary is wrong: %+v", exampleCom)
	}
	expectSummaries(t, c, "example.com", exampleCom)
	exampleNet := expectedSummary(t, "example.net", "2025-03-01", reports...)
	expectSummaries(t, c, "example.net", exampleNet)

	unattributed := "unattributed/2025-03-01/" + parseReport(t, reports[len(reports)-1]).Hash() + ".json"
	if files := storedReports(t, storage); !strings.Contains(strings.Join(files, " "), unattributed) || len(files) != 11+2 {
		t.Errorf("stored: %v; want 10 reports, %s and two summaries", files, unattributed)
	}
	if n := total(t, reportsReceived.WithLabelValues("accepted")) - accepted; n != 10 {
		t.Errorf("%v reports counted as accepted, want 10", n)
	}
	if n := total(t, sessionsReported.WithLabelValues("successful")) - successful; n != 301 {
		t.Errorf("%v successful sessions counted, want 301", n)
	}
}

func TestReceiveTheSameReportTwice(t *testing.T) {
	d := startDNS(t)
	c := startReportCaddy(t, d.addr, t.TempDir(), nil)
	report := testReport(t, "several-policies.json")
	duplicates := total(t, reportsReceived.WithLabelValues("duplicate"))
	expectStatus(t, "first", c.post(t, "application/tlsrpt+gzip", reporttest.Gzip(report)), http.StatusCreated)
	expectStatus(t, "again", c.post(t, "application/tlsrpt+gzip", reporttest.Gzip(report)), http.StatusOK)
	expectSummaries(t, c, "example.com", expectedSummary(t, "example.com", "2025-03-01", report))
	if n := total(t, reportsReceived.WithLabelValues("duplicate")) - duplicates; n != 1 {
		t.Errorf("%v duplicates counted, want 1", n)
	}
}

// TestReceiveRefuses posts what is no report of a managed domain: each is
// refused with its status, and nothing is stored.
func TestReceiveRefuses(t *testing.T) {
	d := startDNS(t)
	storage := t.TempDir()
	c := startReportCaddy(t, d.addr, storage, map[string]any{"max_body_size": 100_000})
	report := testReport(t, "no-time-zone.json")
	about := func(domain string) []byte {
		return bytes.ReplaceAll(report, []byte(`"example.com"`), []byte(`"`+domain+`"`))
	}
	nextYear := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	for _, tc := range []struct {
		name, method, contentType string
		body                      []byte
		status                    int
	}{
		{"a gzip bomb", http.MethodPost, "application/tlsrpt+gzip", reporttest.Bomb(64), http.StatusRequestEntityTooLarge},
		{"a body over max_body_size", http.MethodPost, "application/tlsrpt+json", bytes.Repeat([]byte(" "), 100_001), http.StatusRequestEntityTooLarge},
		{"truncated gzip", http.MethodPost, "application/tlsrpt+gzip", reporttest.Gzip(report)[:100], http.StatusBadRequest},
		{"malformed JSON", http.MethodPost, "application/tlsrpt+json", report[:len(report)-2], http.StatusBadRequest},
		{"gzip of no JSON", http.MethodPost, "application/tlsrpt+gzip", reporttest.Gzip([]byte("report")), http.StatusBadRequest},
		{"a required field missing", http.MethodPost, "application/tlsrpt+json",
			bytes.Replace(report, []byte(`"report-id"`), []byte(`"report_id"`), 1), http.StatusBadRequest},
		{"dated next year", http.MethodPost, "application/tlsrpt+json",
			bytes.ReplaceAll(report, []byte("2025-03-01"), []byte(nextYear)), http.StatusBadRequest},
		{"text/plain", http.MethodPost, "text/plain", report, http.StatusUnsupportedMediaType},
		{"no media type", http.MethodPost, "", report, http.StatusUnsupportedMediaType},
		{"GET", http.MethodGet, "", nil, http.StatusMethodNotAllowed},
		{"PUT", http.MethodPut, "application/tlsrpt+json", report, http.StatusMethodNotAllowed},
		{"a domain without MX", http.MethodPost, "application/tlsrpt+json", about("www.example.com"), http.StatusForbidden},
		{"a domain in no zone of ours", http.MethodPost, "application/tlsrpt+json", about("not-hosted.example"), http.StatusForbidden},
	} {
		r := c.do(t, reportHost, reportRequest(t, tc.method, tc.contentType, tc.body))
		expectStatus(t, tc.name, r, tc.status)
		if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") != http.MethodPost {
			t.Errorf("%s: Allow %q", tc.name, r.header.Get("Allow"))
		}
	}
	if files := storedReports(t, storage); len(files) != 0 {
		t.Errorf("stored: %v", files)
	}
}

// A DNS that fails is no statement that a domain is not managed: the
// sender is told to retry, and nothing is stored.
func TestReceiveWhileDNSFails(t *testing.T) {
	d := startDNS(t)
	storage := t.TempDir()
	c := startReportCaddy(t, d.addr, storage, nil)
	report := testReport(t, "no-time-zone.json")
	// The plugin answers SERVFAIL for broken.example.com: its MX backend fails.
	broken := bytes.ReplaceAll(report, []byte(`"example.com"`), []byte(`"broken.example.com"`))
	expectUnavailableReport(t, "SERVFAIL", c.post(t, "application/tlsrpt+json", broken))
	d.stop()
	expectUnavailableReport(t, "DNS down", c.post(t, "application/tlsrpt+json", report))
	if files := storedReports(t, storage); len(files) != 0 {
		t.Errorf("stored: %v", files)
	}
}

func expectUnavailableReport(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != retryAfter {
		t.Errorf("%s: got %d %v, want 503 with Retry-After", what, r.status, r.header)
	}
}

// TestTwoCaddysShareOneStorage runs two Caddy instances, two processes,
// with one file system storage, as a cluster does. Each report is posted
// to both at once: both take it (2xx), and the summary counts it once.
func TestTwoCaddysShareOneStorage(t *testing.T) {
	d := startDNS(t)
	storage := t.TempDir()
	a := startReportCaddy(t, d.addr, storage, nil)
	b := startReportCaddyProcess(t, d.addr, storage)

	const n = 4
	var reports [][]byte
	for i := range n {
		reports = append(reports, bytes.Replace(testReport(t, "several-policies.json"),
			[]byte("several-policies-1"), fmt.Appendf(nil, "cluster-%d", i), 1))
	}
	created := 0
	for _, report := range reports {
		statuses := make([]int, 2)
		var wg sync.WaitGroup
		for i, c := range []*reportCaddy{a, b} {
			req := reportRequest(t, http.MethodPost, "application/tlsrpt+gzip", reporttest.Gzip(report))
			wg.Go(func() {
				r, err := c.send(reportHost, req)
				if err != nil {
					t.Error(err)
				}
				statuses[i] = r.status
			})
		}
		wg.Wait()
		for _, status := range statuses {
			switch status {
			case http.StatusCreated:
				created++
			case http.StatusOK:
			default:
				t.Errorf("statuses %v, want 201 and 200", statuses)
			}
		}
	}
	if created != n {
		t.Errorf("%d reports created, want %d: one of each pair", created, n)
	}
	want := expectedSummary(t, "example.com", "2025-03-01", reports...)
	got := a.summaries(t, "example.com", "")
	if len(got.Days) != 1 || got.Days[0].Reports != n || got.Days[0].SuccessfulSessions != want.SuccessfulSessions ||
		!reflect.DeepEqual(got.Days[0].Organizations, want.Organizations) {
		t.Errorf("summary\n got %+v\nwant %+v", got.Days, want)
	}
	if other := b.summaries(t, "example.com", ""); !reflect.DeepEqual(other, got) {
		t.Errorf("the other node's summary %+v differs", other)
	}
}

func TestAdminSummaries(t *testing.T) {
	d := startDNS(t)
	c := startReportCaddy(t, d.addr, t.TempDir(), nil)
	report := testReport(t, "no-time-zone.json")
	for _, day := range []string{"2025-03-01", "2025-03-02", "2025-03-03"} {
		body := bytes.ReplaceAll(report, []byte("2025-03-01"), []byte(day))
		expectStatus(t, day, c.post(t, "application/tlsrpt+json", body), http.StatusCreated)
	}
	for query, want := range map[string]string{
		"":                               "2025-03-01 2025-03-02 2025-03-03",
		"?from=2025-03-02":               "2025-03-02 2025-03-03",
		"?to=2025-03-01":                 "2025-03-01",
		"?from=2025-03-02&to=2025-03-02": "2025-03-02",
		"?from=2025-04-01":               "",
	} {
		var days []string
		for _, s := range c.summaries(t, "EXAMPLE.com.", query).Days {
			days = append(days, s.Day)
		}
		if got := strings.Join(days, " "); got != want {
			t.Errorf("%q: days %q, want %q", query, got, want)
		}
	}
	if got := c.summaries(t, "bücher.example", ""); got.Domain != "xn--bcher-kva.example" || len(got.Days) != 0 {
		t.Errorf("an IDN without reports: %+v", got)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, summaryRoute + "exa_mple.com", http.StatusBadRequest},
		{http.MethodGet, summaryRoute, http.StatusBadRequest},
		{http.MethodGet, summaryRoute + "example.com?from=March", http.StatusBadRequest},
		{http.MethodPost, summaryRoute + "example.com", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+c.admin+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.status)
		}
	}
}
