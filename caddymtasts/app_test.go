package caddymtasts

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// startReadinessCaddy runs Caddy in process with the policy handler on
// plain HTTP (the app needs no TLS to see what the handler served) and
// the mta_sts app checking every interval, both asking f's CoreDNS. It
// returns the HTTP address and the storage directory.
func startReadinessCaddy(t *testing.T, f *mxFixture, interval string) (string, string) {
	t.Helper()
	config, addr, storage := readinessCaddyConfig(t, f, interval)
	loadCaddy(t, config)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Error(err)
		}
	})
	return addr, storage
}

// readinessCaddyConfig returns the config startReadinessCaddy loads, the
// HTTP address and the storage directory.
func readinessCaddyConfig(t *testing.T, f *mxFixture, interval string) (map[string]any, string, string) {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	addr, storage := freeAddr(t), t.TempDir()
	config := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": storage},
		"apps": map[string]any{
			"http": map[string]any{"servers": map[string]any{"policies": map[string]any{
				"listen":          []string{addr},
				"routes":          []any{map[string]any{"handle": []any{map[string]any{"handler": "mta_sts", "servers": []string{f.dns}}}}},
				"automatic_https": map[string]any{"disable": true},
			}}},
			"mta_sts": map[string]any{
				"servers":       []string{f.dns},
				"interval":      interval,
				"ehlo_name":     "readiness-test.provider.test",
				"port":          f.port,
				"ca_file":       f.ca.file,
				"probe_timeout": "1s",
			},
		},
	}
	return config, addr, storage
}

// loadCaddy loads config into the Caddy of this process.
func loadCaddy(t *testing.T, config map[string]any) {
	t.Helper()
	cfgJSON, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		t.Fatalf("loading Caddy: %v", err)
	}
}

// fetchPolicy fetches the policy of domain from the handler at addr.
func fetchPolicy(t *testing.T, addr, domain string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+policyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "mta-sts." + domain
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("policy of %s: %s", domain, resp.Status)
	}
}

// waitForReport returns the report the app stored for domain, waiting for
// it up to limit.
func waitForReport(t *testing.T, storage, domain string, limit time.Duration) readiness.DomainReport {
	t.Helper()
	file := filepath.Join(storage, domainReportKey(domain))
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		data, err := os.ReadFile(file)
		if err == nil {
			var r readiness.DomainReport
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report for %s in storage after %s: %v", domain, limit, err)
		}
	}
}

func TestAppChecksTheDomainsWhosePolicyWasServed(t *testing.T) {
	ca := newTestCA(t)
	cases := readinessCases(t, ca)
	f := startReadinessCases(t, ca, cases)
	addr, storage := startReadinessCaddy(t, f, "2s")
	// Senders reported failed sessions for wildcard.readiness.test today.
	today := time.Now().UTC().Format(time.DateOnly)
	summary := tlsrpt.NewSummary("wildcard.readiness.test", today)
	summary.Reports, summary.SuccessfulSessions, summary.FailedSessions = 2, 117, 3
	data, err := json.Marshal(summary)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&certmagic.FileStorage{Path: storage}).Store(context.Background(), summaryKey(today, "wildcard.readiness.test"), data); err != nil {
		t.Fatal(err)
	}
	for _, domain := range []string{"valid.readiness.test", "expired.readiness.test", "wildcard.readiness.test"} {
		fetchPolicy(t, addr, domain)
	}

	valid := waitForReport(t, storage, "valid.readiness.test", 15*time.Second)
	if !valid.Ready || len(valid.MXHosts) != 1 || valid.MXHosts[0].Outcome != readiness.OutcomePass {
		t.Errorf("valid.readiness.test: %+v", valid)
	}
	expired := waitForReport(t, storage, "expired.readiness.test", 5*time.Second)
	if expired.Ready || len(expired.Reasons) != 1 || len(expired.MXHosts) != 1 || expired.MXHosts[0].Outcome != readiness.OutcomeExpired {
		t.Errorf("expired.readiness.test: %+v", expired)
	}
	reported := waitForReport(t, storage, "wildcard.readiness.test", 5*time.Second)
	if want := []string{"TLS reports of the last 7 days: 3 of 120 sessions failed"}; reported.Ready || !slices.Equal(reported.Reasons, want) ||
		reported.MXHosts[0].Outcome != readiness.OutcomePass || *reported.TLSReports != (readiness.Sessions{Days: 7, Reports: 2, Successful: 117, Failed: 3}) {
		t.Errorf("wildcard.readiness.test, whose MX host passes, with failures reported: %+v, want reasons %q", reported, want)
	}
	// No sender fetched its policy: not checked.
	if _, err := os.Stat(filepath.Join(storage, domainReportKey("othername.readiness.test"))); !os.IsNotExist(err) {
		t.Errorf("a report for a domain whose policy nobody fetched: %v", err)
	}
	for _, key := range []string{fetchedKey("valid.readiness.test"), lastRunKey} {
		if _, err := os.Stat(filepath.Join(storage, key)); err != nil {
			t.Errorf("storage: %v", err)
		}
	}
	// The run that stored both set the gauges; wait for its record.
	ready, notReady := readinessDomains.WithLabelValues("ready"), readinessDomains.WithLabelValues("not_ready")
	for deadline := time.Now().Add(5 * time.Second); total(t, notReady) != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("readiness_domains: ready %v, not_ready %v; want 1, 2", total(t, ready), total(t, notReady))
		}
	}
	if total(t, ready) != 1 {
		t.Errorf("readiness_domains{state=ready} %v, want 1", total(t, ready))
	}
	if probes := total(t, readinessProbes.WithLabelValues("expired")); probes < 1 {
		t.Errorf("readiness_probes_total{outcome=expired} %v", probes)
	}
}

// TestOneRunPerIntervalInACluster claims runs for two nodes sharing
// storage: one of them runs the checks per interval, and a run that did
// not finish gives its claim back.
func TestOneRunPerIntervalInACluster(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	node := func() *App {
		return &App{Interval: caddy.Duration(time.Hour), storage: storage, logger: zap.NewNop()}
	}
	first, second := node(), node()
	ctx := context.Background()
	before, claimed, err := first.claimRun(ctx, time.Now())
	if !claimed || err != nil {
		t.Fatalf("the first node did not claim the first run: %v", err)
	}
	last, claimed, err := second.claimRun(ctx, time.Now())
	if claimed || err != nil || time.Since(last.Started) > time.Minute {
		t.Fatalf("the second node: claimed %v, %v; the last run started %s", claimed, err, last.Started)
	}
	// The first node's run ends unfinished, as at a config reload.
	first.releaseRun(before)
	if _, claimed, err := second.claimRun(ctx, time.Now()); !claimed || err != nil {
		t.Errorf("after the first node gave its claim back, the second did not claim: %v", err)
	}
}
