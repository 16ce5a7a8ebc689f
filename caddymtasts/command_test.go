package caddymtasts

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
)

// checkCommandOf is caddy mta-sts check with the flags that point it at
// f's CoreDNS, port and CA.
func checkCommandOf(f *mxFixture, asJSON bool) checkCommand {
	return checkCommand{
		dns: PolicyDNS{Servers: []string{f.dns}},
		probes: ProbeOptions{
			EHLOName:     "readiness-test.provider.test",
			Port:         f.port,
			CAFile:       f.ca.file,
			ProbeTimeout: caddy.Duration(time.Second),
		},
		json: asJSON,
	}
}

func TestCheckCommand(t *testing.T) {
	ca := newTestCA(t)
	f := startReadinessCases(t, ca, readinessCases(t, ca))
	ctx := context.Background()

	var out strings.Builder
	code, err := checkCommandOf(f, false).run(ctx, &out, []string{"Valid.Readiness.Test.", "expired.readiness.test", "nomx.readiness.test"})
	if code != exitNotReady || err == nil || err.Error() != "not ready for enforce: expired.readiness.test, nomx.readiness.test" {
		t.Errorf("exit code %d, error %v", code, err)
	}
	until := time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.DateOnly)
	expiredAt := timeAfter(out.String(), "certificate expired at ")
	want := fmt.Sprintf(`valid.readiness.test: ready for enforce (policy mode now: testing)
  mx.valid.readiness.test  127.0.0.60:%[1]d  pass  TLS 1.3, certificate for mx.valid.readiness.test until %[2]s
expired.readiness.test: NOT ready for enforce (policy mode now: testing)
  mx.expired.readiness.test  127.0.0.61:%[1]d  expired  TLS 1.3, certificate for mx.expired.readiness.test until %[3]s
  - mx.expired.readiness.test: certificate expired at %[4]s
nomx.readiness.test: NOT ready for enforce
  - no policy to enforce: no MTA-STS policy published: no such name: mta-sts.nomx.readiness.test.
`, f.port, until, expiredAt[:10], expiredAt)
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	code, err = checkCommandOf(f, true).run(ctx, &out, []string{"valid.readiness.test", "wildcard.readiness.test"})
	var reports []readiness.DomainReport
	if jsonErr := json.Unmarshal([]byte(out.String()), &reports); code != 0 || err != nil || jsonErr != nil {
		t.Fatalf("exit code %d, error %v; JSON %v:\n%s", code, err, jsonErr, out.String())
	}
	if len(reports) != 2 || !reports[0].Ready || !reports[1].Ready || reports[1].MXHosts[0].CertificateNames[0] != "*.wildcard.readiness.test" {
		t.Errorf("reports %+v", reports)
	}

	if code, err := checkCommandOf(f, false).run(ctx, &out, []string{"not a domain"}); code != exitCheckFailed || err == nil {
		t.Errorf("a bad domain name: exit code %d, error %v", code, err)
	}
	bad := checkCommandOf(f, false)
	bad.probes.CAFile = ca.file + ".missing"
	if code, err := bad.run(ctx, &out, []string{"valid.readiness.test"}); code != exitCheckFailed || err == nil {
		t.Errorf("a missing CA file: exit code %d, error %v", code, err)
	}
}

// timeAfter returns the time in UTC, RFC 3339, that follows prefix in s.
func timeAfter(s, prefix string) string {
	_, after, _ := strings.Cut(s, prefix)
	return after[:len("2006-01-02T15:04:05Z")]
}
