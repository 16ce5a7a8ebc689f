package caddymtasts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/coredns-mtasts/mtasts/caddymtasts/autopilot"
	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

// Autopilot configures the autopilot of the mta_sts app. In each run of
// the readiness checks, right after each domain's check, the node that
// runs them decides (package autopilot) whether the domain moves to mode
// enforce or back to testing, and writes its settings record, "v=STSCFG1; mode=...;
// by=autopilot", into the provider's hidden primary with a DNS UPDATE
// signed with TSIG. It changes only domains without a settings record or
// with its own; a customer's or operator's record always wins.
type Autopilot struct {
	// The provider's primary DNS server for the customers' zones, "host"
	// or "host:port", which takes UPDATEs and tells the secondaries by
	// NOTIFY. The settings records are read there too: the plugin on the
	// secondaries answers _mta-sts.D itself.
	Primary string `json:"primary"`

	// The TSIG key (RFC 8945) the primary lets update TXT records in the
	// zones: its name, its algorithm (hmac-sha256, hmac-sha384 or
	// hmac-sha512; default hmac-sha256) and its secret in base64. Give the
	// secret as a placeholder, {env.NAME} or {file./path}, so that it is
	// read when the config loads and stays out of the config, which the
	// admin API shows.
	TSIGKeyName   string `json:"tsig_key_name"`
	TSIGAlgorithm string `json:"tsig_algorithm,omitempty"`
	TSIGSecret    string `json:"tsig_secret"`

	// A zone the primary serves, asked for its SOA with the key when the
	// config loads, so that a wrong key fails the load rather than the
	// first change. A primary that does not answer then is no error: the
	// runs try again.
	CheckZone string `json:"check_zone,omitempty"`

	// Decide, log and record every change, and make none: a run's audit
	// trail lists what the autopilot would do.
	DryRun bool `json:"dry_run,omitempty"`

	// The thresholds of package autopilot. Defaults: 7 checks, 14d, 14
	// days, 100 sessions (0 is allowed: probes alone), 24h.
	PromoteChecks  int            `json:"promote_checks,omitempty"`
	PromoteAfter   caddy.Duration `json:"promote_after,omitempty"`
	ReportDays     int            `json:"report_days,omitempty"`
	MinSessions    *int64         `json:"min_sessions,omitempty"`
	ChangeInterval caddy.Duration `json:"change_interval,omitempty"`
}

// The autopilot's keys in Caddy's storage, beside the readiness results:
//
//	mta_sts/autopilot/domains/DOMAIN.json   DOMAIN's autopilot.History: streak, last change, audit trail
const autopilotPrefix = "mta_sts/autopilot/domains"

func historyKey(domain string) string {
	return path.Join(autopilotPrefix, domain+".json")
}

// How a change is retried within a run when the primary does not answer:
// after 1s, 2s, 4s and 8s. Once a change has used them all, the primary
// is taken as down for the rest of the run: later changes get one try
// each, so that a down primary costs one domain's backoff, not each
// domain's. The next run tries them all again.
const (
	updateAttempts = 5
	updateBackoff  = time.Second
)

// pilot is the autopilot of one config of the app.
type pilot struct {
	rules   autopilot.Config
	primary *primary
	backoff time.Duration // before the second try of an update, doubling
	dryRun  bool
	reports *reportStore
	storage certmagic.Storage
	logger  *zap.Logger
	now     func() time.Time
	// Stores an event and queues its delivery: the app's emit.
	emit func(context.Context, event) error
}

// newPilot sets up the autopilot; interval is the app's.
func (o *Autopilot) newPilot(ctx caddy.Context, dnsTimeout, interval time.Duration) (*pilot, error) {
	rules := autopilot.DefaultConfig()
	rules.PromoteChecks = cmp.Or(o.PromoteChecks, rules.PromoteChecks)
	rules.PromoteAfter = cmp.Or(time.Duration(o.PromoteAfter), rules.PromoteAfter)
	rules.ReportDays = cmp.Or(o.ReportDays, rules.ReportDays)
	rules.ChangeInterval = cmp.Or(time.Duration(o.ChangeInterval), rules.ChangeInterval)
	if o.MinSessions != nil {
		rules.MinSessions = *o.MinSessions
	}
	// Three intervals without a check end a streak, and never less than
	// the default: checks every few seconds in a test must not shorten it.
	rules.MaxGap = max(rules.MaxGap, 3*interval)
	if err := rules.Validate(); err != nil {
		return nil, err
	}
	secret, err := caddy.NewReplacer().ReplaceOrErr(o.TSIGSecret, true, true)
	if err != nil {
		return nil, fmt.Errorf("autopilot: tsig_secret: %w", err)
	}
	p, err := newPrimary(o.Primary, dnsTimeout, o.TSIGKeyName, cmp.Or(o.TSIGAlgorithm, "hmac-sha256"), secret)
	if err != nil {
		return nil, fmt.Errorf("autopilot: %w", err)
	}
	pl := &pilot{rules: rules, primary: p, backoff: updateBackoff, dryRun: o.DryRun, reports: newReportStore(ctx.Storage()),
		storage: ctx.Storage(), logger: ctx.Logger().Named("autopilot"), now: time.Now}
	if o.CheckZone != "" {
		if err := p.checkKey(ctx, o.CheckZone); errors.Is(err, errPrimaryUnreachable) {
			pl.logger.Warn("the primary did not answer; the TSIG key is checked at the first change", zap.Error(err))
		} else if err != nil {
			p.close()
			return nil, fmt.Errorf("autopilot: %w", err)
		}
	}
	return pl, nil
}

// steering is the autopilot's part of one run of the checks.
type steering struct {
	*pilot
	claim       time.Time   // the run's start, as its claim in lastRunKey says
	primaryDown atomic.Bool // a change used every try: later ones get one
	claimLost   atomic.Bool // another node claimed a run: this one changes nothing more
}

func (p *pilot) startRun(claim time.Time) *steering {
	return &steering{pilot: p, claim: claim}
}

// steer decides about the domain of report, just checked and stored, makes
// the change, records the decision with its evidence in the domain's
// history, and a change written as an event for the customer. It returns
// an error only when the storage fails, which stops the run as a report
// it cannot store does.
func (s *steering) steer(ctx context.Context, report readiness.DomainReport) error {
	h, err := s.loadHistory(ctx, report.Domain)
	if err != nil {
		return err
	}
	now := s.now()
	check := autopilot.CheckOf(report)
	h.Observe(check, s.rules.MaxGap)
	in := autopilot.Input{Now: now, Check: check}
	if in.Reports, err = s.reports.Sessions(ctx, report.Domain, now.AddDate(0, 0, 1-s.rules.ReportDays), now); err != nil {
		return fmt.Errorf("the TLS reports of %s: %w", report.Domain, err)
	}
	in.Reports.Days = s.rules.ReportDays
	e := autopilot.Entry{At: now, Evidence: autopilot.Evidence{Check: check, Streak: h.Streak, Reports: in.Reports}}
	held, err := s.decide(ctx, report.Domain, h, in, &e)
	if e.Action == autopilot.Promote || e.Action == autopilot.Demote {
		e.Record = autopilot.RecordFor(e.Action)
		e.Outcome, err = s.change(ctx, report.Domain, held, e.Action)
		if err != nil {
			e.Error = err.Error()
		}
	}
	s.account(report.Domain, e, err)
	lastChange := h.LastChange
	h.Record(e)
	if err := storeJSON(ctx, s.storage, historyKey(report.Domain), h); err != nil || e.Outcome != autopilot.Written {
		return err
	}
	return s.emit(ctx, changeEvent(report.Domain, e, held, lastChange))
}

// decide sets e's decision. The evidence decides first; only when it
// calls for a change is the settings record read from the primary, and
// who wrote it decides whether the change may be made. A record that
// cannot be read fails the change (e's outcome, and the error).
func (s *steering) decide(ctx context.Context, domain string, h *autopilot.History, in autopilot.Input, e *autopilot.Entry) (heldSettings, error) {
	e.Decision = s.rules.Decide(h, in)
	if e.Action != autopilot.Blocked || in.Settings != autopilot.SettingsUnread {
		return heldSettings{}, nil
	}
	held, err := s.primary.read(ctx, domain)
	if err != nil {
		err = fmt.Errorf("%w: %w", errSettingsUnread, err)
		e.Outcome, e.Error = autopilot.Failed, err.Error()
		return held, err
	}
	in.Settings, in.RecordMode = held.who, held.mode
	e.Evidence.Settings = held.who
	e.Decision = s.rules.Decide(h, in)
	return held, nil
}

// modeState is the mode of a domain and the settings record that sets
// it, before and after the autopilot changed them: a promoted or demoted
// event's before and after.
type modeState struct {
	Mode   policy.Mode `json:"mode"`
	Record string      `json:"settings_record"` // the autopilot's, or "" for none
	// Before only: when the autopilot last changed the domain, if ever.
	Since time.Time `json:"since,omitzero"`
}

// changeEvent is the event of a change e the autopilot wrote over held,
// the domain's last change before it at lastChange. Its id is the same on
// every node that writes the same change, and differs from that of the
// same change made again later.
func changeEvent(domain string, e autopilot.Entry, held heldSettings, lastChange time.Time) event {
	before := modeState{Mode: e.Evidence.Check.Mode, Since: lastChange}
	if held.who == autopilot.SettingsAutopilot {
		before.Record = policy.Settings{Mode: held.mode, By: policy.ByAutopilot}.String()
	}
	ev := event{
		Type: eventPromoted, Domain: domain, Time: e.At, Mode: e.Action.Mode(), Reason: e.Reason,
		Before: before, After: modeState{Mode: e.Action.Mode(), Record: e.Record},
	}
	if e.Action == autopilot.Demote {
		ev.Type = eventDemoted
	}
	ev.ID = transitionID(ev)
	return ev
}

var (
	errSettingsUnread = errors.New("the settings record could not be read from the primary")
	errClaimLost      = errors.New("another node claimed a run of the checks since this one started; it acts instead")
)

// change writes the autopilot's record for action over what held found,
// unless in dry-run mode or after the run's claim passed to another node.
func (s *steering) change(ctx context.Context, domain string, held heldSettings, action autopilot.Action) (autopilot.Outcome, error) {
	if s.dryRun {
		return autopilot.DryRun, nil
	}
	if err := s.checkClaim(ctx); err != nil {
		return autopilot.Failed, err
	}
	if err := s.write(ctx, domain, held, action); err != nil {
		return autopilot.Failed, err
	}
	return autopilot.Written, nil
}

// checkClaim makes sure the run's claim is still this node's: a run that
// outlasts its interval may see another node claim the next, and then
// that node acts. Two nodes writing at once could not corrupt a record
// (each UPDATE has its prerequisite), but they would repeat work and
// audit trails.
func (s *steering) checkClaim(ctx context.Context) error {
	if s.claimLost.Load() {
		return errClaimLost
	}
	var current runRecord
	if _, err := loadJSON(ctx, s.storage, lastRunKey, &current); err != nil {
		return fmt.Errorf("reading the run's claim: %w", err)
	}
	if !current.Started.Equal(s.claim) {
		s.claimLost.Store(true)
		return errClaimLost
	}
	return nil
}

// write updates the primary, trying again with backoff while it does not
// answer. An update whose answer was lost may have been applied: its
// next try then fails on its prerequisite, and a read shows whether the
// record is the one meant.
func (s *steering) write(ctx context.Context, domain string, held heldSettings, action autopilot.Action) error {
	record := autopilot.RecordFor(action)
	tries := updateAttempts
	if s.primaryDown.Load() {
		tries = 1
	}
	var err error
	for try := range tries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(s.backoff << (try - 1)):
			}
		}
		if err = s.primary.update(ctx, held, record); !errors.Is(err, errPrimaryUnreachable) {
			break
		}
	}
	s.primaryDown.Store(errors.Is(err, errPrimaryUnreachable))
	if errors.Is(err, errChangedMeanwhile) {
		now, rerr := s.primary.read(ctx, domain)
		if rerr == nil && now.who == autopilot.SettingsAutopilot && now.mode == action.Mode() {
			return nil
		}
	}
	return err
}

// account counts e in the metrics and logs it: changes and failures at
// once, so that the first update the primary refuses says why; the
// others at debug level, since a domain kept or blocked is so every run.
func (s *steering) account(domain string, e autopilot.Entry, err error) {
	fields := []zap.Field{zap.String("domain", domain), zap.String("action", string(e.Action)), zap.String("reason", e.Reason)}
	switch e.Outcome {
	case autopilot.Written:
		autopilotChanges.WithLabelValues(string(e.Action)).Inc()
		s.logger.Info("settings record written", append(fields, zap.String("record", e.Record))...)
		return
	case autopilot.DryRun:
		autopilotChanges.WithLabelValues("would_" + string(e.Action)).Inc()
		s.logger.Info("dry run: settings record not written", append(fields, zap.String("record", e.Record))...)
		return
	case autopilot.Failed:
		autopilotFailures.WithLabelValues(failureReason(err)).Inc()
		s.logger.Error("settings record not written", append(fields, zap.Error(err))...)
		return
	}
	if e.Action == autopilot.Blocked {
		autopilotChanges.WithLabelValues(string(e.Action)).Inc()
	}
	if ce := s.logger.Check(zap.DebugLevel, "decision"); ce != nil {
		ce.Write(fields...)
	}
}

// failureReason names why a change failed, for the metric's label.
func failureReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{errKeyRefused, "tsig"},
		{errUpdateRefused, "refused"},
		{errChangedMeanwhile, "changed_meanwhile"},
		{errClaimLost, "claim_lost"},
		{errPrimaryUnreachable, "unreachable"},
		{errSettingsUnread, "read"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "other"
}

// loadHistory returns the domain's history from storage, or a new one.
func (s *steering) loadHistory(ctx context.Context, domain string) (*autopilot.History, error) {
	h := &autopilot.History{Domain: domain}
	_, err := loadJSON(ctx, s.storage, historyKey(domain), h)
	return h, err
}
