package caddymtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
)

func init() {
	caddy.RegisterModule(App{})
}

// The app's keys in Caddy's storage, beside the TLS reports'
// (mta_sts/tlsrpt/). Domains are lowercase A-labels.
//
//	mta_sts/readiness/fetched/DOMAIN        when a node last served DOMAIN's policy (RFC 3339)
//	mta_sts/readiness/domains/DOMAIN.json   DOMAIN's latest readiness.DomainReport
//	mta_sts/readiness/last_run.json         the last run of the checks (runRecord)
//	mta_sts/autopilot/domains/DOMAIN.json   DOMAIN's autopilot.History (autopilot.go)
//
// and the lock mta_sts/readiness/run, held while a node claims a run.
const (
	fetchedPrefix       = "mta_sts/readiness/fetched"
	domainReportsPrefix = "mta_sts/readiness/domains"
	lastRunKey          = "mta_sts/readiness/last_run.json"
	runLockName         = "mta_sts/readiness/run"
)

const (
	// A domain whose policy no node served for this long is no longer
	// checked, and its results are removed: senders that still hold its
	// policy do not fetch it, so nothing shows they use it.
	forgetFetchedAfter = 30 * 24 * time.Hour
	// How long after a failure to claim a run the node tries again.
	claimRetry = time.Minute
	// Domains checked at once, per probe slot: most of a domain's check
	// waits for DNS or for a probe another domain started.
	domainsPerProbeSlot = 4
)

// App is the mta_sts app. On every node it records the managed domains
// whose policy the handler served (what senders fetch before they apply a
// policy) in Caddy's storage. On the nodes that may connect out to port
// 25, it checks those domains once per interval for the whole cluster
// (whichever node claims the run), the way readiness.Checker does, and
// keeps each domain's result in the storage, where every node sees it.
type App struct {
	// Where the domains' policies and MX records, and the addresses of
	// MX hosts in the provider's zones, are read: the authoritative
	// servers the handler asks. MX hosts outside those zones are
	// resolved with the system's resolver.
	PolicyDNS

	// How the MX hosts are probed.
	ProbeOptions

	// How often the domains are checked; each MX host is probed at most
	// once per interval, whatever the number of domains using it.
	// Default: 24h.
	Interval caddy.Duration `json:"interval,omitempty"`

	// How many days of TLS reports (RFC 8460) the verdict takes in,
	// today's included: a domain is ready only if the reports that
	// http.handlers.tlsrpt received about it in those days, if any, count
	// no failed session. Default: 7.
	ReportDays int `json:"report_days,omitempty"`

	// Leave the checks to other nodes sharing the storage, and only
	// record the domains whose policy this node served. For nodes that
	// may not connect out to port 25, as in many clouds.
	DisableChecks bool `json:"disable_checks,omitempty"`

	// The events the checks and the certificates' failures make (a
	// policy change, an MX host's TLS problem and its end, a certificate
	// of mta-sts.D that failed), how long they are kept and the webhook
	// they are posted to.
	Events EventOptions `json:"events,omitzero"`

	// The autopilot: after each run of the checks, move each domain
	// checked to enforce when the evidence says it is safe, and back to
	// testing when it is not. Off when not set; needs the checks.
	Autopilot *Autopilot `json:"autopilot,omitempty"`

	fetched *fetchLog
	pilot   *pilot
	source  *policySource
	checks  readiness.Config // a new checker's for each run
	probes  *atomic.Int64    // MX hosts this app probed
	storage certmagic.Storage
	events  *eventStore
	webhook *webhookQueue // nil without a webhook
	// The failures of certificates, from Caddy's events app.
	certFailures *certificateFailures
	logger       *zap.Logger
	stop         context.CancelFunc
	running      *sync.WaitGroup // the background work Start started
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "mta_sts",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision applies the defaults and sets up the record of served domains
// and the checker.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.storage = ctx.Storage()
	setDefault(&a.Interval, readiness.DefaultInterval)
	fetched, err := newFetchLog(time.Duration(a.Interval))
	if err != nil {
		return err
	}
	a.fetched = fetched
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if err := a.provisionEvents(ctx); err != nil {
		return err
	}
	if a.DisableChecks {
		if a.Autopilot != nil {
			return errors.New("autopilot: it acts after the checks, which disable_checks leaves to another node; configure it there")
		}
		return nil
	}
	if a.source, err = a.PolicyDNS.source(); err != nil {
		return err
	}
	cfg, err := a.ProbeOptions.checkerConfig(a.source)
	if err != nil {
		return err
	}
	// Each run has a checker of its own, whose results last the run: the
	// next run, an interval later, probes every host again.
	cfg.Interval = time.Duration(a.Interval)
	cfg.Reports, cfg.ReportDays = newReportStore(a.storage), a.ReportDays
	a.probes = new(atomic.Int64)
	cfg.Probed = func(r readiness.HostResult) {
		a.probes.Add(1)
		readinessProbes.WithLabelValues(string(r.Outcome)).Inc()
	}
	a.checks = cfg
	if _, err = readiness.New(cfg); err != nil { // checks the options now rather than at the first run
		return err
	}
	if a.Autopilot == nil {
		return nil
	}
	if a.pilot, err = a.Autopilot.newPilot(ctx, a.source.timeout, time.Duration(a.Interval)); err != nil {
		return err
	}
	a.pilot.emit = a.emit
	return nil
}

// Validate checks the interval and the events' options; readiness.New
// and the webhook's queue checked the other options.
func (a *App) Validate() error {
	switch {
	case a.Interval < 0:
		return fmt.Errorf("interval %s is negative", time.Duration(a.Interval))
	case a.Events.Retention < 0:
		return fmt.Errorf("events retention %s is negative", time.Duration(a.Events.Retention))
	case a.Events.WarnDays < 0:
		return fmt.Errorf("events warn_days %d is negative", a.Events.WarnDays)
	}
	return nil
}

// Start runs the app's work in the background: writing the served
// domains to storage, storing the certificates' failures as events,
// delivering events to the webhook, and the checks unless they are
// disabled.
func (a *App) Start() error {
	ctx, stop := context.WithCancel(context.Background())
	a.stop, a.running = stop, new(sync.WaitGroup)
	a.running.Go(func() { a.flushEvery(ctx) })
	a.running.Go(func() { a.recordCertificateProblems(ctx) })
	if a.webhook != nil {
		a.running.Go(func() { a.webhook.run(ctx) })
	}
	if !a.DisableChecks {
		a.running.Go(func() { a.checkEvery(ctx) })
	}
	return nil
}

// Stop ends the background work and writes the served domains not yet
// written. A run of the checks that Stop ends gives its claim back, so
// that the next config's app, or another node, runs the checks again.
func (a *App) Stop() error {
	a.stop()
	a.running.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.fetched.flush(ctx, a.storage)
}

// Cleanup closes the DNS connections.
func (a *App) Cleanup() error {
	var primaryErr error
	if a.pilot != nil {
		primaryErr = a.pilot.primary.close()
	}
	return errors.Join(a.source.close(), primaryErr)
}

// flushEvery writes the served domains to storage every
// fetchFlushInterval, or every interval if that is shorter.
func (a *App) flushEvery(ctx context.Context) {
	ticker := time.NewTicker(min(fetchFlushInterval, time.Duration(a.Interval)))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			a.flushFetched(ctx)
		}
	}
}

func (a *App) flushFetched(ctx context.Context) {
	if err := a.fetched.flush(ctx, a.storage); err != nil && ctx.Err() == nil {
		a.logger.Error("recording the domains whose policy was served", zap.Error(err))
	}
}

// checkEvery runs the checks whenever the last run in the cluster is an
// interval old.
func (a *App) checkEvery(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			timer.Reset(time.Until(a.runIfDue(ctx)))
		}
	}
}

// runRecord is what the cluster knows about the last run of the checks.
type runRecord struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"` // zero while it runs
	Domains  int       `json:"domains"`
	Ready    int       `json:"ready"`
	NotReady int       `json:"not_ready"`
	Probes   int64     `json:"probes"` // MX hosts probed
}

// runIfDue runs the checks if this node claims the run, and returns when
// the next run is due.
func (a *App) runIfDue(ctx context.Context) time.Time {
	started := time.Now()
	last, claimed, err := a.claimRun(ctx, started)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			a.logger.Error("claiming the readiness checks", zap.Error(err))
		}
		return time.Now().Add(claimRetry)
	case !claimed:
		// Another node ran the checks, or runs them now.
		showRun(last)
		return last.Started.Add(time.Duration(a.Interval))
	}
	// This node's own served domains first, so the run sees them.
	a.flushFetched(ctx)
	record, err := a.run(ctx, started)
	if err != nil {
		if ctx.Err() == nil {
			a.logger.Error("readiness checks", zap.Error(err))
		}
		a.releaseRun(last)
		return time.Now().Add(claimRetry)
	}
	showRun(record)
	a.logger.Info("readiness checks done", zap.Int("domains", record.Domains), zap.Int("ready", record.Ready),
		zap.Int("not_ready", record.NotReady), zap.Int64("probes", record.Probes),
		zap.Duration("took", record.Finished.Sub(record.Started)))
	return started.Add(time.Duration(a.Interval))
}

// claimRun claims the run of the checks starting at started for this
// node, unless a run started within the interval. It returns the last run
// as the storage held it before the claim.
func (a *App) claimRun(ctx context.Context, started time.Time) (runRecord, bool, error) {
	if err := a.storage.Lock(ctx, runLockName); err != nil {
		return runRecord{}, false, err
	}
	defer a.storage.Unlock(context.Background(), runLockName)
	var last runRecord
	if _, err := loadJSON(ctx, a.storage, lastRunKey, &last); err != nil {
		return last, false, err
	}
	if since := started.Sub(last.Started); since >= 0 && since < time.Duration(a.Interval) {
		return last, false, nil
	}
	claim := last
	claim.Started, claim.Finished = started, time.Time{}
	return last, true, a.storeJSON(ctx, lastRunKey, claim)
}

// releaseRun gives back a claim whose run did not finish, by putting the
// record of the run before it back.
func (a *App) releaseRun(last runRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.storeJSON(ctx, lastRunKey, last); err != nil {
		a.logger.Error("giving back the claim of an unfinished run", zap.Error(err))
	}
}

// run checks every domain whose policy a node served within
// forgetFetchedAfter, stores the events each report shows and the report,
// stores the run's record and removes old events.
func (a *App) run(ctx context.Context, started time.Time) (runRecord, error) {
	domains, err := a.fetchedDomains(ctx, started)
	if err != nil {
		return runRecord{}, err
	}
	checker, err := readiness.New(a.checks)
	if err != nil {
		return runRecord{}, err
	}
	var steer *steering
	if a.pilot != nil {
		steer = a.pilot.startRun(started)
	}
	probesBefore := a.probes.Load()
	ready, err := a.checkAll(ctx, checker, domains, steer)
	if err != nil {
		return runRecord{}, err
	}
	record := runRecord{
		Started:  started,
		Finished: time.Now(),
		Domains:  len(domains),
		Ready:    ready,
		NotReady: len(domains) - ready,
		Probes:   a.probes.Load() - probesBefore,
	}
	if _, err := a.events.removeExpired(ctx, started, time.Duration(a.Events.Retention)); err != nil && ctx.Err() == nil {
		a.logger.Error("removing old events", zap.Error(err))
	}
	return record, a.storeJSON(ctx, lastRunKey, record)
}

// checkAll checks the domains, a few at a time, stores their events and
// reports, steers each one with the autopilot, when there is one, and
// returns how many are ready. Each domain's decision follows its own
// check, so that a failing domain in enforce is demoted at once, not at
// the end of a run over millions. It stops at the first event, report or
// history it cannot store.
func (a *App) checkAll(ctx context.Context, checker *readiness.Checker, domains []string, steer *steering) (int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan string)
	var ready atomic.Int64
	var workers sync.WaitGroup
	for range a.checks.Concurrency * domainsPerProbeSlot {
		workers.Go(func() {
			for domain := range work {
				report := checker.CheckDomain(ctx, domain)
				if ctx.Err() != nil {
					continue // a report of a canceled check says nothing
				}
				if report.Ready {
					ready.Add(1)
				}
				if err := a.recordEvents(ctx, report); err != nil {
					cancel(err)
					continue
				}
				if err := a.storeJSON(ctx, domainReportKey(domain), report); err != nil {
					cancel(fmt.Errorf("storing the report of %s: %w", domain, err))
					continue
				}
				if steer == nil {
					continue
				}
				if err := steer.steer(ctx, report); err != nil && ctx.Err() == nil {
					cancel(fmt.Errorf("the autopilot, for %s: %w", domain, err))
				}
			}
		})
	}
	for _, domain := range domains {
		if ctx.Err() != nil {
			break
		}
		work <- domain
	}
	close(work)
	workers.Wait()
	return int(ready.Load()), context.Cause(ctx)
}

// fetchedDomains returns the domains whose policy a node served within
// forgetFetchedAfter before now, and removes the others with their
// reports and baselines (their events age out with the retention).
func (a *App) fetchedDomains(ctx context.Context, now time.Time) ([]string, error) {
	keys, err := listKeys(ctx, a.storage, fetchedPrefix)
	if err != nil {
		return nil, err
	}
	var domains []string
	for _, key := range keys {
		domain := path.Base(key)
		data, err := a.storage.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		if served, err := time.Parse(time.RFC3339, string(data)); err == nil && now.Sub(served) < forgetFetchedAfter {
			domains = append(domains, domain)
			continue
		}
		for _, k := range []string{key, domainReportKey(domain), baselineKey(domain), historyKey(domain)} {
			if err := a.storage.Delete(ctx, k); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	return domains, nil
}

func domainReportKey(domain string) string {
	return path.Join(domainReportsPrefix, domain+".json")
}

func (a *App) storeJSON(ctx context.Context, key string, v any) error {
	return storeJSON(ctx, a.storage, key, v)
}

func storeJSON(ctx context.Context, storage certmagic.Storage, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return storage.Store(ctx, key, data)
}

// showRun sets the gauges of ready and not ready domains to what a run
// found: on every node, whichever ran it.
func showRun(r runRecord) {
	readinessDomains.WithLabelValues("ready").Set(float64(r.Ready))
	readinessDomains.WithLabelValues("not_ready").Set(float64(r.NotReady))
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
