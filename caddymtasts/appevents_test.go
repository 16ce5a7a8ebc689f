package caddymtasts

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// newTestApp is the mta_sts app as Provision sets it up, without Caddy: it
// checks the domains of f with the clock now, warn_days 14, and keeps what
// it finds in storage, where domain is recorded as served.
func newTestApp(t *testing.T, f *mxFixture, storage certmagic.Storage, now func() time.Time, domain string) *App {
	t.Helper()
	cfg := f.checkerConfig(t)
	cfg.Now = now
	a := &App{
		Interval: caddy.Duration(time.Hour),
		Events:   EventOptions{WarnDays: defaultWarnDays, Retention: caddy.Duration(defaultEventsRetention)},
		checks:   cfg,
		probes:   new(atomic.Int64),
		storage:  storage,
		events:   &eventStore{storage: storage},
		logger:   zap.NewNop(),
	}
	if err := storage.Store(context.Background(), fetchedKey(domain), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		t.Fatal(err)
	}
	return a
}

// swappableCertificate is an MX host whose certificate the test replaces.
type swappableCertificate struct {
	current atomic.Pointer[tls.Certificate]
}

func (s *swappableCertificate) set(c tls.Certificate) { s.current.Store(&c) }

func (s *swappableCertificate) server() *smtpServer {
	return &smtpServer{tls: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return s.current.Load(), nil
	}}}
}

// eventSummary is an event on one line, with the state before and after.
func eventSummary(e event) string {
	state := func(v any) string {
		m, _ := v.(map[string]any)
		return fmt.Sprint(m["state"])
	}
	return fmt.Sprintf("%s %s %s: %s -> %s", e.Type, e.Host, e.Severity, state(e.Before), state(e.After))
}

// TestMXCertificateExpiringExpiredReplaced follows an MX host whose
// certificate expires in 10 days, through the runs of the app on the days
// after, with the checker's clock moved: a warning, a failure once it
// expired, and the recovery once it was replaced; nothing on the days
// between.
func TestMXCertificateExpiringExpiredReplaced(t *testing.T) {
	ca := newTestCA(t)
	start := time.Now()
	var mx swappableCertificate
	mx.set(newLeaf(t, []string{"mx.cert.readiness.test"}, start.Add(-time.Hour), start.Add(10*24*time.Hour), ca.cert, ca.key))
	f := startMXFixture(t, ca, []mxHost{{"mx.cert", mx.server()}}, map[string][]string{"cert": {"mx.cert"}})
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	var clock atomic.Int64
	const domain = "cert.readiness.test"
	app := newTestApp(t, f, storage, func() time.Time { return time.Unix(0, clock.Load()) }, domain)
	stored := total(t, eventsStored.WithLabelValues(string(eventMXTLSProblem)))
	runOnDay := func(day int) {
		t.Helper()
		at := start.AddDate(0, 0, day)
		clock.Store(at.UnixNano())
		if _, err := app.run(context.Background(), at); err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
	}
	runOnDay(0)
	runOnDay(5)
	runOnDay(11)
	runOnDay(11)
	mx.set(newLeaf(t, []string{"mx.cert.readiness.test"}, start, start.Add(100*24*time.Hour), ca.cert, ca.key))
	runOnDay(12)
	runOnDay(13)

	events, err := app.events.events(context.Background(), domain, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, eventSummary(e))
	}
	want := []string{
		"mx_tls_problem mx.cert.readiness.test warning: <nil> -> warning",
		"mx_tls_problem mx.cert.readiness.test failure: warning -> failure",
		"mx_tls_recovered mx.cert.readiness.test : failure -> pass",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n%q\nwant\n%q", got, want)
	}
	if p := events[0].Problem; p != "certificate expires in 10 days, at "+start.Add(10*24*time.Hour).UTC().Format(time.RFC3339)+
		"; from then on senders that enforce MTA-STS refuse this host" && p != "certificate expires in 9 days, at "+
		start.Add(10*24*time.Hour).UTC().Format(time.RFC3339)+"; from then on senders that enforce MTA-STS refuse this host" {
		t.Errorf("the warning's problem: %q", p)
	}
	if p := events[1].Problem; p != "certificate expired at "+start.Add(10*24*time.Hour).UTC().Format(time.RFC3339) {
		t.Errorf("the failure's problem: %q", p)
	}
	if n := total(t, eventsStored.WithLabelValues(string(eventMXTLSProblem))) - stored; n != 2 {
		t.Errorf("events_total{type=mx_tls_problem} grew by %v, want 2", n)
	}
}

// TestHangingWebhookDoesNotDelayTheChecks runs the checks while the
// webhook's receiver holds the delivery of the event before: the run takes
// no longer, and its event is stored and queued.
func TestHangingWebhookDoesNotDelayTheChecks(t *testing.T) {
	ca := newTestCA(t)
	start := time.Now()
	var mx swappableCertificate
	mx.set(newLeaf(t, []string{"mx.cert.readiness.test"}, start.Add(-time.Hour), start.Add(10*24*time.Hour), ca.cert, ca.key))
	f := startMXFixture(t, ca, []mxHost{{"mx.cert", mx.server()}}, map[string][]string{"cert": {"mx.cert"}})
	w := startWebhookReceiver(t)
	w.hang = make(chan struct{})
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	var clock atomic.Int64
	const domain = "cert.readiness.test"
	app := newTestApp(t, f, storage, func() time.Time { return time.Unix(0, clock.Load()) }, domain)
	app.webhook = newTestQueue(t, w, storage, time.Hour)
	app.webhook.timeout, app.webhook.client.Timeout = time.Minute, time.Minute
	runQueue(t, app.webhook)

	runOnDay := func(day int) time.Duration {
		t.Helper()
		at := start.AddDate(0, 0, day)
		clock.Store(at.UnixNano())
		began := time.Now()
		if _, err := app.run(context.Background(), at); err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
		return time.Since(began)
	}
	runOnDay(0) // the warning: its delivery hangs
	waitForRequests(t, w, 1, 5*time.Second)
	if took := runOnDay(11); took > 3*time.Second {
		t.Errorf("a run took %s while the receiver hung", took)
	}
	if keys := queued(t, storage); len(keys) != 2 {
		t.Errorf("queued %v, want the warning (in flight) and the failure", keys)
	}
	if n := len(w.requests()); n != 1 {
		t.Errorf("%d requests while the first hangs, want 1 (the others wait their turn or their retry)", n)
	}
}

// eventsCaddyConfig is a Caddy with the policy handler on plain HTTP at
// listen and the mta_sts app checking every second, asking dnsAddr, with
// its events posted to the webhook.
func eventsCaddyConfig(t *testing.T, dnsAddr, storage, listen string, webhook map[string]any) []byte {
	t.Helper()
	config, err := json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": storage},
		"apps": map[string]any{
			"http": map[string]any{"servers": map[string]any{"policies": map[string]any{
				"listen":          []string{listen},
				"routes":          []any{map[string]any{"handle": []any{map[string]any{"handler": "mta_sts", "servers": []string{dnsAddr}}}}},
				"automatic_https": map[string]any{"disable": true},
			}}},
			"mta_sts": map[string]any{
				"servers":       []string{dnsAddr},
				"interval":      "1s",
				"ehlo_name":     "events-test.provider.test",
				"probe_timeout": "1s",
				"events":        map[string]any{"webhook": webhook},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// TestPolicyChangeMakesOneEventOnTwoNodes runs two Caddy nodes, two
// processes with one storage, both running the checks every second and
// both posting to the webhook. An MX change of example.com makes exactly
// one policy_changed event, with the policies before and after, posted
// once and signed.
func TestPolicyChangeMakesOneEventOnTwoNodes(t *testing.T) {
	d := startDNS(t)
	w := startWebhookReceiver(t)
	storage := t.TempDir()
	hook := w.webhookConfig("1m")
	other := freeAddr(t)
	startCaddyProcess(t, eventsCaddyConfig(t, d.addr, storage, other, hook))
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	addr := freeAddr(t)
	if err := caddy.Load(eventsCaddyConfig(t, d.addr, storage, addr, hook), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	fetchPolicy(t, addr, "example.com")
	// The other node is up once it serves.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + other + policyPath); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second Caddy does not answer")
		}
	}
	waitForFile(t, filepath.Join(storage, baselineKey("example.com")), 10*time.Second)

	d.setMX(t, 2, "mx2")
	store := &eventStore{storage: &certmagic.FileStorage{Path: storage}}
	var events []event
	for deadline := time.Now().Add(10 * time.Second); len(events) == 0; time.Sleep(50 * time.Millisecond) {
		var err error
		if events, err = store.events(context.Background(), "example.com", "", ""); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no event after the MX change")
		}
	}
	waitForRequests(t, w, 1, 10*time.Second)
	time.Sleep(3 * time.Second) // three more runs, on either node
	if events, _ = store.events(context.Background(), "example.com", "", ""); len(events) != 1 {
		t.Fatalf("events %+v, want one", events)
	}
	e := events[0]
	before, after := e.Before.(map[string]any), e.After.(map[string]any)
	if got := fmt.Sprint(e.Type, " ", before["policy_id"], " ", before["mx"], " -> ", after["policy_id"], " ", after["mx"], " +", e.MXAdded, " -", e.MXRemoved); got !=
		fmt.Sprint("policy_changed ", expectedPolicy(t, "mx1.example.com").ID(), " [mx1.example.com] -> ", expectedPolicy(t, "mx2.example.com").ID(),
			" [mx2.example.com] +[mx2.example.com] -[mx1.example.com]") {
		t.Errorf("event: %s", got)
	}
	requests := w.requests()
	if len(requests) != 1 || requests[0].id != e.ID || requests[0].err != nil {
		t.Errorf("webhook requests %+v, want one of %s, signed", requests, e.ID)
	}
}

// waitForFile waits until file exists.
func waitForFile(t *testing.T, file string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		_, err := os.Stat(file)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", file, err)
		}
	}
}

// TestCertificateFailuresBecomeEvents emits CertMagic's cert_failed
// through Caddy's events app, as the TLS app does: one for a policy
// host's certificate becomes a certificate_problem, once a day; one for
// another name is no event.
func TestCertificateFailuresBecomeEvents(t *testing.T) {
	d := startDNS(t)
	storage := t.TempDir()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	config := eventsCaddyConfig(t, d.addr, storage, freeAddr(t), nil)
	if err := caddy.Load(config, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	app, err := caddy.ActiveContext().App("events")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"reports.provider.test", "mta-sts.example.com", "mta-sts.example.com"} {
		app.(*caddyevents.App).Emit(caddy.ActiveContext(), "cert_failed", map[string]any{
			"renewal": false, "identifier": name, "error": errors.New("no such authorization"),
		})
	}
	store := &eventStore{storage: &certmagic.FileStorage{Path: storage}}
	var events []event
	for deadline := time.Now().Add(5 * time.Second); len(events) == 0; time.Sleep(20 * time.Millisecond) {
		if events, err = store.events(context.Background(), "example.com", "", ""); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no event")
		}
	}
	time.Sleep(200 * time.Millisecond)
	events, _ = store.events(context.Background(), "example.com", "", "")
	if len(events) != 1 || eventLine(events[0]) != "certificate_problem mta-sts.example.com failure no certificate could be obtained "+
		"for mta-sts.example.com, so senders cannot fetch the policy: no such authorization" {
		t.Errorf("events %+v", events)
	}
	if days, _ := storedDays(context.Background(), store.storage, eventDaysPrefix); len(days) != 1 {
		t.Errorf("days %v", days)
	}
}

// TestAnEventIsStoredOnce adds the same event from many goroutines at
// once, as nodes that saw the same change would: one stores it.
func TestAnEventIsStoredOnce(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	e := event{ID: eventID("a change"), Type: eventPolicyChanged, Domain: "example.com", Time: time.Now()}
	var added atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			_, ok, err := (&eventStore{storage: storage}).add(context.Background(), e)
			if err != nil {
				t.Error(err)
			}
			if ok {
				added.Add(1)
			}
		})
	}
	wg.Wait()
	// The same change seen again the next day, by a run that ran again.
	e.Time = e.Time.Add(24 * time.Hour)
	if _, ok, err := (&eventStore{storage: storage}).add(context.Background(), e); ok || err != nil {
		t.Errorf("added again the next day: %v", err)
	}
	if added.Load() != 1 {
		t.Errorf("stored by %d, want 1", added.Load())
	}
}
