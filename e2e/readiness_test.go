//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The MX hosts of the readiness scenario, with their addresses in the
// example.test zone: two of example.test's, one of sub.example.test's.
const (
	mx1Addr     = "127.0.0.60" // mx1.example.test: a good certificate
	mx2Addr     = "127.0.0.61" // mx2.example.test: an expired one
	mailSubAddr = "127.0.0.27" // mail.sub.example.test: a good one
	checkEHLO   = "e2e-check.provider.test"
)

// readinessReport is what the scenario reads of a readiness.DomainReport,
// in the command's JSON and in Caddy's storage.
type readinessReport struct {
	Domain    string    `json:"domain"`
	CheckedAt time.Time `json:"checked_at"`
	Ready     bool      `json:"ready"`
	Reasons   []string  `json:"reasons"`
	MXHosts   []struct {
		Host    string `json:"host"`
		Outcome string `json:"outcome"`
	} `json:"mx_hosts"`
}

// testReadiness runs SMTP servers with STARTTLS on port 25 for the MX
// hosts of example.test and sub.example.test, with certificates of the
// suite's CA, one of them expired. caddy mta-sts check, given the CA's
// root as its CA file, finds sub.example.test ready and example.test not;
// the mta_sts app of Caddyfile.example (its interval cut to 3 s) stores
// the same verdicts after a sender fetched the policies, with the TLS
// report of the earlier step among example.test's reasons.
func testReadiness(t *testing.T, s *suite) {
	now := time.Now().Truncate(time.Second)
	valid, expired := now.Add(24*time.Hour), now.Add(-time.Hour)
	mx1 := startMXServer(t, mx1Addr, s.mxCA.issue(t, "mx1.example.test", now.Add(-time.Hour), valid))
	startMXServer(t, mx2Addr, s.mxCA.issue(t, "mx2.example.test", now.Add(-48*time.Hour), expired))
	startMXServer(t, mailSubAddr, s.mxCA.issue(t, "mail.sub.example.test", now.Add(-time.Hour), valid))
	s.ok(t, "SMTP servers with STARTTLS on %s, %s, %s port 25", mx1Addr, mx2Addr, mailSubAddr)

	out, code := s.caddyCheck(t, "sub.example.test")
	s.expect(t, "caddy mta-sts check sub.example.test: exit code", code, 0)
	s.expect(t, "its report", out, fmt.Sprintf(`sub.example.test: ready for enforce (policy mode now: testing)
  mail.sub.example.test  %s:25  pass  TLS 1.3, certificate for mail.sub.example.test until %s
`, mailSubAddr, valid.UTC().Format(time.DateOnly)))
	expiredAt := expired.UTC().Format(time.RFC3339)
	out, code = s.caddyCheck(t, "example.test")
	s.expect(t, "caddy mta-sts check example.test: exit code", code, 1)
	s.expect(t, "its report", out, fmt.Sprintf(`example.test: NOT ready for enforce (policy mode now: testing)
  mx1.example.test  %s:25  pass  TLS 1.3, certificate for mx1.example.test until %s
  mx2.example.test  %s:25  expired  TLS 1.3, certificate for mx2.example.test until %s
  - mx2.example.test: certificate expired at %s
`, mx1Addr, valid.UTC().Format(time.DateOnly), mx2Addr, expired.UTC().Format(time.DateOnly), expiredAt))
	out, code = s.caddyCheck(t, "--json", "example.test", "sub.example.test")
	var reports []readinessReport
	if err := json.Unmarshal([]byte(out), &reports); err != nil || len(reports) != 2 {
		t.Fatalf("caddy mta-sts check --json: %v\n%s", err, out)
	}
	s.expect(t, "--json: exit code", code, 1)
	s.expect(t, "--json: the verdicts", fmt.Sprintf("%s %v, %s %v", reports[0].Domain, reports[0].Ready, reports[1].Domain, reports[1].Ready),
		"example.test false, sub.example.test true")
	s.expect(t, "--json: example.test's MX hosts", fmt.Sprint(reports[0].MXHosts), "[{mx1.example.test pass} {mx2.example.test expired}]")

	fetched := time.Now()
	s.expect(t, "a sender fetches the policy of sub.example.test: mta-sts-query", strings.Fields(s.stsQuery(t, "sub.example.test"))[0], "VALID")
	stored := s.waitForReadiness(t, "sub.example.test", fetched)
	s.expect(t, "the app's report of sub.example.test in Caddy's storage: ready", stored.Ready, true)
	s.expect(t, "its MX hosts", fmt.Sprint(stored.MXHosts), "[{mail.sub.example.test pass}]")
	stored = s.waitForReadiness(t, "example.test", fetched)
	s.expect(t, "the app's report of example.test: ready", stored.Ready, false)
	s.expect(t, "its reasons, the TLS report of the earlier step among them", strings.Join(stored.Reasons, " | "),
		"mx2.example.test: certificate expired at "+expiredAt+" | TLS reports of the last 7 days: 3 of 123 sessions failed")
	s.expect(t, "EHLO names mx1.example.test heard: the command's, the app's (Caddyfile.example)", mx1.ehloNames(),
		checkEHLO+" mta-sts-check.provider.example")

	// The run that stored both has set the gauge by the time it is over.
	s.waitUntil(t, "caddy", 10*time.Second, func() error {
		if got := fmt.Sprint(counts(t, "caddy_mta_sts_readiness_domains")); got != "map[not_ready:2 ready:1]" {
			return errors.New(got)
		}
		return nil
	})
	s.ok(t, "caddy_mta_sts_readiness_domains: ready 1 (sub.example.test), not_ready 2 (example.test, signed.test)")
	probes := counts(t, "caddy_mta_sts_readiness_probes_total")
	s.expect(t, "caddy_mta_sts_readiness_probes_total has outcomes pass and expired", probes["pass"] != "" && probes["expired"] != "", true)
}

// caddyCheck runs caddy mta-sts check against our CoreDNS, with the MX
// CA's root as its CA file, and returns its output and exit code.
func (s *suite) caddyCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	args = append([]string{"mta-sts", "check", "--servers", dnsAddr, "--ca-file", s.path(mxCAFile), "--ehlo-name", checkEHLO}, args...)
	var stderr strings.Builder
	cmd := exec.Command(s.bin+"/caddy", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	s.appendLog(t, "caddy-check", fmt.Sprintf("caddy %s\n%s%s", strings.Join(args, " "), out, stderr.String()))
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("caddy %s: %v", strings.Join(args, " "), err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// waitForReadiness returns the report the mta_sts app stored for domain
// once it is of a check after since.
func (s *suite) waitForReadiness(t *testing.T, domain string, since time.Time) readinessReport {
	t.Helper()
	var r readinessReport
	s.waitUntil(t, "caddy", 20*time.Second, func() error {
		data, err := os.ReadFile(s.path("caddy-storage", "mta_sts", "readiness", "domains", domain+".json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return err
		}
		if r.CheckedAt.Before(since) {
			return fmt.Errorf("the stored report of %s is of %s, before %s", domain, r.CheckedAt, since)
		}
		return nil
	})
	return r
}
