//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testTLSRPT sends a TLS report (RFC 8460) about example.test the way a
// sender does: to the https rua of _smtp._tls.example.test, as our CoreDNS
// publishes it, posted gzip with curl over HTTPS to our Caddy, which has a
// certificate from Pebble for the report host. Then it reads the summary
// of the day back from Caddy's admin endpoint.
func testTLSRPT(t *testing.T, s *suite) {
	url := reportURL(t, "example.test")
	s.ok(t, "the https rua of _smtp._tls.example.test: %s", url)
	day := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	report := tlsReport("example.test", day, true)
	s.expect(t, "POST the report, gzip", s.curlPost(t, url, report), "201")
	s.expect(t, "POST it again, as a sender retrying", s.curlPost(t, url, report), "200")
	s.expect(t, "POST a report about nomail.test (not managed)", s.curlPost(t, url, tlsReport("nomail.test", day, true)), "403")

	answer := adminSummaries(t, "example.test")
	s.expect(t, "days in the summary of example.test", len(answer.Days), 1)
	d := answer.Days[0]
	s.expect(t, "its day", d.Day, day)
	s.expect(t, "reports", d.Reports, 1)
	s.expect(t, "successful sessions", d.SuccessfulSessions, 120)
	s.expect(t, "failed sessions", d.FailedSessions, 3)
	s.expect(t, "failures by result type", fmt.Sprint(d.FailuresByResultType), "map[certificate-expired:2 starttls-not-supported:1]")
	s.expect(t, "reports of e2e-sender.test", d.Organizations["e2e-sender.test"].Reports, 1)

	outcomes := counts(t, "caddy_mta_sts_tlsrpt_reports_total")
	s.expect(t, "reports accepted, in Caddy's metrics", outcomes["accepted"], "1")
	s.expect(t, "reports taken before", outcomes["duplicate"], "1")
	s.expect(t, "reports about domains not managed", outcomes["not_managed"], "1")
	stored, err := os.ReadDir(s.path("caddy-storage", "mta_sts", "tlsrpt", "reports", day))
	if err != nil {
		t.Fatal(err)
	}
	s.expect(t, "reports in Caddy's storage", len(stored), 1)
}

// reportURL reads the https rua of _smtp._tls.DOMAIN from our CoreDNS.
func reportURL(t *testing.T, domain string) string {
	t.Helper()
	for _, rr := range mustAsk(t, dnsAddr, "_smtp._tls."+domain, dns.TypeTXT, false).Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		_, rua, found := strings.Cut(strings.Join(txt.Txt, ""), "rua=")
		if !found {
			continue
		}
		for uri := range strings.SplitSeq(rua, ",") {
			if strings.HasPrefix(uri, "https://") {
				return uri
			}
		}
	}
	t.Fatalf("_smtp._tls.%s has no https rua", domain)
	return ""
}

// tlsReport is a report about domain on day, as a sender writes it: 120
// sessions went well and, withFailures, 3 failed, which its failure
// details account for.
func tlsReport(domain, day string, withFailures bool) []byte {
	failed, details := 0, "[]"
	if withFailures {
		failed, details = 3, fmt.Sprintf(`[
      {"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.25", "receiving-mx-hostname": "mx1.%[1]s", "failed-session-count": 2},
      {"result-type": "starttls-not-supported", "sending-mta-ip": "192.0.2.26", "receiving-mx-hostname": "mx1.%[1]s", "failed-session-count": 1}
    ]`, domain)
	}
	return fmt.Appendf(nil, `{
  "organization-name": "e2e-sender.test",
  "date-range": {"start-datetime": "%[2]sT00:00:00Z", "end-datetime": "%[2]sT23:59:59Z"},
  "contact-info": "tlsrpt@e2e-sender.test",
  "report-id": "%[2]s-%[1]s",
  "policies": [{
    "policy": {
      "policy-type": "sts",
      "policy-string": ["version: STSv1", "mode: testing", "mx: mx1.%[1]s", "max_age: 86400"],
      "policy-domain": "%[1]s",
      "mx-host": ["mx1.%[1]s"]
    },
    "summary": {"total-successful-session-count": 120, "total-failure-session-count": %[3]d},
    "failure-details": %[4]s
  }]
}`, domain, day, failed, details)
}

// curlPost posts report, gzipped, to url with curl, which resolves the host
// through the namespace's resolv.conf (our CoreDNS) and trusts only
// Pebble's root, and returns the status code.
func (s *suite) curlPost(t *testing.T, url string, report []byte) string {
	t.Helper()
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write(report)
	zw.Close()
	cmd := exec.Command("curl", "--silent", "--show-error", "--cacert", s.pebbleCA, "--output", "/dev/null",
		"--write-out", "%{http_code}", "--header", "Content-Type: application/tlsrpt+gzip", "--data-binary", "@-", url)
	cmd.Stdin = &body
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	s.appendLog(t, "curl", fmt.Sprintf("curl POST %s (%d bytes): %s %v %s\n", url, body.Len(), out, err, stderr.String()))
	if err != nil {
		t.Fatalf("curl POST %s: %v: %s", url, err, stderr.String())
	}
	return string(out)
}

// reportSummaries is the answer of the admin endpoint's
// /tlsrpt/summary/DOMAIN, with the fields the suite checks.
type reportSummaries struct {
	Domain string `json:"domain"`
	Days   []struct {
		Day                  string           `json:"day"`
		Reports              int              `json:"reports"`
		SuccessfulSessions   int              `json:"successful_sessions"`
		FailedSessions       int              `json:"failed_sessions"`
		FailuresByResultType map[string]int64 `json:"failures_by_result_type"`
		Organizations        map[string]struct {
			Reports int `json:"reports"`
		} `json:"organizations"`
	} `json:"days"`
}

// adminSummaries reads the summaries of domain from Caddy's admin endpoint.
func adminSummaries(t *testing.T, domain string) reportSummaries {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/tlsrpt/summary/" + domain)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /tlsrpt/summary/%s: %s", domain, resp.Status)
	}
	var answer reportSummaries
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	return answer
}
