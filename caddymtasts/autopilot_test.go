package caddymtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/coredns-mtasts/mtasts/caddymtasts/autopilot"
	"github.com/coredns-mtasts/mtasts/policy"
)

// secondaryCorefile is our CoreDNS as the provider's secondaries run it:
// mtasts above secondary, which transfers readiness.test from the primary.
const secondaryCorefile = `readiness.test:{port} {
	bind 127.0.0.1
	mtasts {
		policy_server 127.0.0.1
	}
	secondary {
		transfer from {primary}
	}
}`

// The domains of the autopilot's tests, below readiness.test, and what
// _mta-sts holds for each on the primary at the start.
var autopilotDomains = []struct {
	name, settings string
	valid          bool // the MX host's certificate
}{
	{"good", "", true},
	{"bad", "v=STSCFG1; mode=enforce; by=autopilot", false},
	{"explicit", "v=STSCFG1; mode=testing", true},
	{"pinned", "v=STSCFG1; mode=enforce", false},
}

// autopilotFixture is the provider of the autopilot's tests: Knot as the
// hidden primary of readiness.test, our CoreDNS as its secondary (told by
// NOTIFY), the MX hosts of autopilotDomains.
type autopilotFixture struct {
	*mxFixture
	knot *testKnot
}

func startAutopilotFixture(t *testing.T) *autopilotFixture {
	t.Helper()
	knotProgram(t, "knotd") // skips before anything starts
	ca := newTestCA(t)
	var hosts []mxHost
	domains := map[string][]string{}
	settings := ""
	for _, d := range autopilotDomains {
		tls := ca.validTLS(t, "mx."+d.name+".readiness.test")
		if !d.valid {
			tls = ca.serverTLS(t, []string{"mx." + d.name + ".readiness.test"}, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
		}
		hosts = append(hosts, mxHost{"mx." + d.name, &smtpServer{tls: tls}})
		domains[d.name] = []string{"mx." + d.name}
		if d.settings != "" {
			settings += "_mta-sts." + d.name + " IN TXT " + strconv.Quote(d.settings) + "\n"
		}
	}
	f, records := startMXHosts(t, ca, hosts, domains)
	// The secondary first, so that the primary can name it for NOTIFY; it
	// retries its first transfer until the primary answers. Refresh and
	// retry of a second are the fallback.
	primary := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	var stop func()
	f.dns, stop = startCoreDNS(t, strings.ReplaceAll(secondaryCorefile, "{primary}", primary))
	zone := "$TTL 60\n@ IN SOA ns1 hostmaster 1 1 1 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n" + records + settings
	k := startKnot(t, primary, map[string]string{"readiness.test": zone}, f.dns)
	t.Cleanup(stop)
	a := &autopilotFixture{mxFixture: f, knot: k}
	a.waitForMode(t, "good.readiness.test", policy.ModeTesting)
	return a
}

// autopilotConfig is the app's autopilot block for f's primary, with
// periods short enough for a test: two consecutive passing checks a
// millisecond apart promote, no TLS reports needed, no wait between
// changes.
func (f *autopilotFixture) autopilotConfig() map[string]any {
	return map[string]any{
		"primary":         f.knot.addr,
		"tsig_key_name":   f.knot.key,
		"tsig_secret":     "{env.MTA_STS_TEST_TSIG_SECRET}",
		"check_zone":      "readiness.test",
		"promote_checks":  2,
		"promote_after":   "1ms",
		"min_sessions":    0,
		"change_interval": "1ms",
	}
}

// waitForMode waits until the secondary publishes domain's policy in mode.
func (f *autopilotFixture) waitForMode(t *testing.T, domain string, mode policy.Mode) {
	t.Helper()
	source := newSource(t, time.Second, f.dns)
	defer source.close()
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p, err := source.Policy(context.Background(), domain)
		if err == nil && p.Mode == mode {
			return
		}
		last = errors.Join(err, errors.New("mode "+string(p.Mode)))
	}
	t.Fatalf("the secondary does not publish %s in mode %s: %v", domain, mode, last)
}

// waitForRecord waits until the primary holds want at _mta-sts.DOMAIN.
func (f *autopilotFixture) waitForRecord(t *testing.T, domain string, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = f.knot.txts(t, "_mta-sts."+domain); slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("_mta-sts.%s on the primary: %q, want %q", domain, got, want)
}

// storedHistory reads the autopilot's history of domain from storage.
func storedHistory(t *testing.T, storage, domain string) autopilot.History {
	t.Helper()
	var h autopilot.History
	data, err := os.ReadFile(filepath.Join(storage, historyKey(domain)))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// lastEntry returns the latest entry of domain's history with action.
func lastEntry(t *testing.T, storage, domain string, action autopilot.Action) autopilot.Entry {
	t.Helper()
	h := storedHistory(t, storage, domain)
	for _, e := range slices.Backward(h.Entries) {
		if e.Action == action {
			return e
		}
	}
	t.Fatalf("no %s in the history of %s: %+v", action, domain, h.Entries)
	return autopilot.Entry{}
}

// The app's autopilot, first in dry-run mode, then for real, against Knot
// as the primary and our CoreDNS as its secondary: it promotes the domain
// whose host passes, demotes its own enforce of a domain whose host fails,
// and leaves the explicit settings of the two others as they are, each
// decision in the domain's history with its evidence.
func TestAutopilotPromotesAndDemotesThroughThePrimary(t *testing.T) {
	f := startAutopilotFixture(t)
	t.Setenv("MTA_STS_TEST_TSIG_SECRET", f.knot.secret)
	config, addr, storage := readinessCaddyConfig(t, f.mxFixture, "1s")
	app := config["apps"].(map[string]any)["mta_sts"].(map[string]any)
	pilot := f.autopilotConfig()
	pilot["dry_run"] = true
	app["autopilot"] = pilot
	wouldPromote := total(t, autopilotChanges.WithLabelValues("would_promote"))
	loadCaddy(t, config)
	t.Cleanup(func() { caddy.Stop() })
	for _, d := range autopilotDomains {
		fetchPolicy(t, addr, d.name+".readiness.test")
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if h, err := os.ReadFile(filepath.Join(storage, historyKey("good.readiness.test"))); err == nil && strings.Contains(string(h), `"outcome":"dry_run"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dry run: no would-be promotion of good.readiness.test in its history")
		}
	}
	if e := lastEntry(t, storage, "good.readiness.test", autopilot.Promote); e.Record != "v=STSCFG1; mode=enforce; by=autopilot" ||
		e.Evidence.Settings != autopilot.SettingsNone || e.Evidence.Streak.Passes < 2 {
		t.Errorf("dry run: the would-be promotion: %+v", e)
	}
	if e := lastEntry(t, storage, "bad.readiness.test", autopilot.Demote); e.Outcome != autopilot.DryRun ||
		!strings.Contains(e.Reason, "mx.bad.readiness.test: certificate expired at ") {
		t.Errorf("dry run: the would-be demotion: %+v", e)
	}
	for _, d := range autopilotDomains {
		var want []string
		if d.settings != "" {
			want = []string{d.settings}
		}
		if got := f.knot.txts(t, "_mta-sts."+d.name+".readiness.test"); !slices.Equal(got, want) {
			t.Errorf("dry run: _mta-sts.%s on the primary changed to %q", d.name, got)
		}
	}
	if total(t, autopilotChanges.WithLabelValues("would_promote")) <= wouldPromote {
		t.Error("dry run: no would_promote counted")
	}
	if e := changeEvents(t, storage, "good.readiness.test"); len(e) != 0 {
		t.Errorf("dry run: events %+v", e)
	}

	// For real: the same config without dry_run.
	promotions, demotions := total(t, autopilotChanges.WithLabelValues("promote")), total(t, autopilotChanges.WithLabelValues("demote"))
	delete(pilot, "dry_run")
	loadCaddy(t, config)
	f.waitForRecord(t, "good.readiness.test", "v=STSCFG1; mode=enforce; by=autopilot")
	f.waitForRecord(t, "bad.readiness.test", "v=STSCFG1; mode=testing; by=autopilot")
	f.waitForMode(t, "good.readiness.test", policy.ModeEnforce)
	f.waitForMode(t, "bad.readiness.test", policy.ModeTesting)
	if e := lastEntry(t, storage, "good.readiness.test", autopilot.Promote); e.Outcome != autopilot.Written {
		t.Errorf("the promotion: %+v", e)
	}
	if got := total(t, autopilotChanges.WithLabelValues("promote")); got != promotions+1 {
		t.Errorf("autopilot_changes_total{action=promote} rose by %v, want 1", got-promotions)
	}
	if got := total(t, autopilotChanges.WithLabelValues("demote")); got != demotions+1 {
		t.Errorf("autopilot_changes_total{action=demote} rose by %v, want 1", got-demotions)
	}

	// Each change written is an event for the customer, with its reason
	// and the mode and settings record before and after.
	for domain, want := range map[string]string{
		"good.readiness.test": `promoted: {"mode":"testing","settings_record":""} -> {"mode":"enforce","settings_record":"v=STSCFG1; mode=enforce; by=autopilot"}`,
		"bad.readiness.test":  `demoted: {"mode":"enforce","settings_record":"v=STSCFG1; mode=enforce; by=autopilot"} -> {"mode":"testing","settings_record":"v=STSCFG1; mode=testing; by=autopilot"}`,
	} {
		if events := changeEvents(t, storage, domain); len(events) != 1 || events[0] != want {
			t.Errorf("%s: events %q, want %q", domain, events, want)
		}
	}

	// Explicit settings win: blocked, every run, and never written.
	for _, d := range []string{"explicit", "pinned"} {
		domain := d + ".readiness.test"
		e := lastEntry(t, storage, domain, autopilot.Blocked)
		if e.Evidence.Settings != autopilot.SettingsExplicit || !strings.Contains(e.Reason, "a customer's or operator's settings win") {
			t.Errorf("%s: %+v", domain, e)
		}
	}
	time.Sleep(2 * time.Second) // two more runs
	f.waitForRecord(t, "explicit.readiness.test", "v=STSCFG1; mode=testing")
	f.waitForRecord(t, "pinned.readiness.test", "v=STSCFG1; mode=enforce")
	f.waitForMode(t, "pinned.readiness.test", policy.ModeEnforce)
}

// A wrong TSIG secret fails the config load when check_zone is set; a
// secret left out of the environment fails it in any case.
func TestAutopilotKeyCheckedAtLoad(t *testing.T) {
	f := startAutopilotFixture(t)
	config, _, _ := readinessCaddyConfig(t, f.mxFixture, "1h")
	app := config["apps"].(map[string]any)["mta_sts"].(map[string]any)
	app["autopilot"] = f.autopilotConfig()
	for secret, want := range map[string]string{
		"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=": "the primary refused the TSIG key autopilot.provider.test. (" + f.knot.addr + "): BADSIG",
		"": "tsig_secret: ",
	} {
		t.Setenv("MTA_STS_TEST_TSIG_SECRET", secret)
		data, err := json.Marshal(config)
		if err != nil {
			t.Fatal(err)
		}
		if err := caddy.Load(data, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("secret %q: %v, want an error containing %q", secret, err, want)
			caddy.Stop()
		}
	}
}

// A run whose claim passed to another node writes nothing more.
func TestAutopilotStopsWhenTheClaimIsLost(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	ctx := context.Background()
	claim := time.Now()
	other := runRecord{Started: claim.Add(time.Hour)}
	data, err := json.Marshal(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.Store(ctx, lastRunKey, data); err != nil {
		t.Fatal(err)
	}
	p := &pilot{storage: storage, logger: zap.NewNop(), now: time.Now}
	s := p.startRun(claim)
	for range 2 {
		if outcome, err := s.change(ctx, "example.com", heldSettings{}, autopilot.Demote); outcome != autopilot.Failed || !errors.Is(err, errClaimLost) {
			t.Errorf("a change after the claim was lost: %s, %v", outcome, err)
		}
	}
	if failureReason(errClaimLost) != "claim_lost" {
		t.Error("errClaimLost is not counted as claim_lost")
	}
}

// An update the primary does not answer is tried updateAttempts times,
// with backoff; after that, the run's later updates get one try each.
func TestAutopilotRetriesAnUnreachablePrimary(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	p := &pilot{primary: newTestPrimary(t, l.Addr().String(), "k.", "c2VjcmV0"), backoff: time.Millisecond, now: time.Now}
	s := p.startRun(time.Now())
	held := heldSettings{name: "_mta-sts.example.test.", zone: "example.test."}
	for _, want := range []int64{updateAttempts, updateAttempts + 1} {
		err := s.write(context.Background(), "example.test", held, autopilot.Demote)
		if !errors.Is(err, errPrimaryUnreachable) || failureReason(err) != "unreachable" || accepted.Load() != want {
			t.Errorf("%v after %d connections, want errPrimaryUnreachable after %d", err, accepted.Load(), want)
		}
	}
}

// An update applied by the primary whose answer was lost fails on its
// prerequisite when tried again; the record then is the one meant, and
// the change counts as written. A record another writer made is no such
// success.
func TestAutopilotWriteWhoseAnswerWasLost(t *testing.T) {
	k := startKnot(t, "", map[string]string{"primary.test": primaryZone}, "")
	p := &pilot{primary: newTestPrimary(t, k.addr, k.key, k.secret), backoff: time.Millisecond, now: time.Now}
	s := p.startRun(time.Now())
	ctx := context.Background()
	for domain, action := range map[string]autopilot.Action{"none.primary.test": autopilot.Promote, "raced.primary.test": autopilot.Demote} {
		held, err := p.primary.read(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		// The first try, applied; its answer never came.
		if err := p.primary.update(ctx, held, autopilot.RecordFor(autopilot.Promote)); err != nil {
			t.Fatal(err)
		}
		err = s.write(ctx, domain, held, action)
		if written := action == autopilot.Promote; (err == nil) != written || !written && !errors.Is(err, errChangedMeanwhile) {
			t.Errorf("%s %s again: %v", action, domain, err)
		}
	}
}

// changeEvents are the promoted and demoted events stored for domain,
// each as "TYPE: BEFORE -> AFTER" in JSON, with a reason.
func changeEvents(t *testing.T, storage, domain string) []string {
	t.Helper()
	events, err := (&eventStore{storage: &certmagic.FileStorage{Path: storage}}).events(context.Background(), domain, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range events {
		if e.Type != eventPromoted && e.Type != eventDemoted {
			continue
		}
		before, _ := json.Marshal(e.Before)
		after, _ := json.Marshal(e.After)
		if e.Reason == "" || e.Mode != policy.Mode(strings.Split(string(after), `"`)[3]) {
			t.Errorf("%s: event %+v: no reason, or a mode not the one written", domain, e)
		}
		found = append(found, fmt.Sprintf("%s: %s -> %s", e.Type, before, after))
	}
	return found
}

// The event of a change has the same id wherever it is written, and
// another when the same change is made again after another.
func TestChangeEventIDs(t *testing.T) {
	at := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	entry := func(at time.Time) autopilot.Entry {
		e := autopilot.Entry{At: at, Decision: autopilot.Decision{Action: autopilot.Demote, Reason: "mx: expired"},
			Record: autopilot.RecordFor(autopilot.Demote), Outcome: autopilot.Written}
		e.Evidence.Check.Mode = policy.ModeEnforce
		return e
	}
	held := heldSettings{who: autopilot.SettingsAutopilot, mode: policy.ModeEnforce}
	first := changeEvent("example.com", entry(at), held, at.AddDate(0, 0, -20))
	sameOnAnotherNode := changeEvent("example.com", entry(at.Add(time.Second)), held, at.AddDate(0, 0, -20))
	again := changeEvent("example.com", entry(at.AddDate(0, 0, 30)), held, at.AddDate(0, 0, 15))
	if first.ID != sameOnAnotherNode.ID || first.ID == again.ID || first.Type != eventDemoted || first.Mode != policy.ModeTesting {
		t.Errorf("events %+v, %+v, %+v", first, sameOnAnotherNode, again)
	}
}
