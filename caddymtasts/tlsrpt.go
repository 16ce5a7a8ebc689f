package caddymtasts

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

func init() {
	caddy.RegisterModule(TLSRPTReceiver{})
}

// Defaults of TLSRPTReceiver.
const (
	defaultRetention       = 90 * 24 * time.Hour
	minRetention           = 2 * 24 * time.Hour
	defaultMaxUnattributed = 1000
)

// maxClockSkew is how far in the future a report may start: reports cover
// a day that has passed, so anything later is a sender's clock gone wrong,
// or a report made to stay in storage forever.
const maxClockSkew = 24 * time.Hour

// reportMediaTypes are the media types the receiver takes: RFC 8460 §5.4's
// two, and what senders send in practice. Whether the body is gzip is told
// by its first bytes, not by these.
var reportMediaTypes = []string{
	"application/tlsrpt+gzip", "application/tlsrpt+json",
	"application/tlsrpt", "application/gzip", "application/x-gzip",
	"application/json", "application/octet-stream",
}

// TLSRPTReceiver receives SMTP TLS reports (RFC 8460): the daily reports
// senders POST to the https rua of _smtp._tls.D, which the CoreDNS plugin
// mtasts publishes with its tlsrpt option. It keeps each report, and for
// each managed domain and day a summary, in Caddy's storage, which the
// nodes of a cluster share; the admin API module admin.api.tlsrpt serves
// the summaries.
//
// Only reports about managed domains are taken: at least one policy domain
// of the report must be managed, which the receiver asks the authoritative
// DNS, as the policy handler does. A report that names no policy domain is
// kept apart as unattributed, up to max_unattributed_per_day a day.
//
// Answers: 201 for a new report, 200 for one taken before (senders retry,
// and report ids are unique per sender only: a report is known by its
// organization-name and report-id), 405 for another method than POST, 415
// for another media type, 413 over a size limit, 400 for a body that is
// no report, 403 for a report about domains that are not managed, 429 when
// the day has as many unattributed reports as kept, and 503 or 500, with
// Retry-After, when DNS or the storage fails. The receiver answers every
// request it gets; give it a path matcher.
type TLSRPTReceiver struct {
	PolicyDNS

	// The largest request body taken, in bytes, gzip or not; a larger one
	// is refused with 413, before it is read when its Content-Length says
	// so. Default: 1048576 (1 MiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// The largest report taken, in bytes of JSON after gunzip; a gzip body
	// is read no further, so a gzip bomb costs this much at most. Default:
	// 16777216 (16 MiB).
	MaxReportSize int64 `json:"max_report_size,omitempty"`

	// How long reports and summaries are kept after the end of the day
	// they cover; older ones are removed once an hour, by one node of the
	// cluster at a time. At least 48h: a day's reports come the next day,
	// and senders retry for a day. Default: 90 days.
	Retention caddy.Duration `json:"retention,omitempty"`

	// How many reports that name no policy domain are kept per day; more
	// are refused with 429. No DNS lookup tells whether they are about a
	// managed domain, so this bounds the storage anyone can fill with
	// them. Default: 1000.
	MaxUnattributedPerDay int `json:"max_unattributed_per_day,omitempty"`

	now      func() time.Time // time.Now but in tests
	source   *policySource
	store    *reportStore
	logger   *zap.Logger
	failures *rateLog
}

// CaddyModule returns the Caddy module information.
func (TLSRPTReceiver) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tlsrpt",
		New: func() caddy.Module { return new(TLSRPTReceiver) },
	}
}

// Provision applies the defaults, sets up the DNS client and the storage,
// and starts removing old reports.
func (h *TLSRPTReceiver) Provision(ctx caddy.Context) error {
	if h.now == nil {
		h.now = time.Now
	}
	if h.MaxBodySize == 0 {
		h.MaxBodySize = tlsrpt.DefaultMaxBodySize
	}
	if h.MaxReportSize == 0 {
		h.MaxReportSize = tlsrpt.DefaultMaxReportSize
	}
	setDefault(&h.Retention, defaultRetention)
	if h.MaxUnattributedPerDay == 0 {
		h.MaxUnattributedPerDay = defaultMaxUnattributed
	}
	source, err := h.PolicyDNS.source()
	if err != nil {
		return err
	}
	h.source = source
	h.store = newReportStore(ctx.Storage())
	h.logger = ctx.Logger()
	h.failures = newRateLog(h.logger, failureLogInterval)
	go h.removeExpiredEvery(ctx, cleanupInterval)
	return registerMetrics(ctx.GetMetricsRegistry())
}

// Validate checks the limits and the retention.
func (h *TLSRPTReceiver) Validate() error {
	switch {
	case h.MaxBodySize < 0:
		return fmt.Errorf("max_body_size %d is negative", h.MaxBodySize)
	case h.MaxReportSize < 0:
		return fmt.Errorf("max_report_size %d is negative", h.MaxReportSize)
	case time.Duration(h.Retention) < minRetention:
		return fmt.Errorf("retention %s is shorter than %s: a day's reports come the next day, and senders retry for a day",
			time.Duration(h.Retention), minRetention)
	case h.MaxUnattributedPerDay < 0:
		return fmt.Errorf("max_unattributed_per_day %d is negative", h.MaxUnattributedPerDay)
	}
	return nil
}

// Cleanup closes the DNS connections. The removal of old reports stops
// with the config's context.
func (h *TLSRPTReceiver) Cleanup() error {
	return h.source.close()
}

func (h *TLSRPTReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	report, data, err := h.readReport(w, r)
	if err != nil {
		return err
	}
	outcome, status, err := h.receive(r.Context(), report, data)
	reportsReceived.WithLabelValues(outcome).Inc()
	if c := h.logger.Check(zapcore.DebugLevel, "TLS report"); c != nil {
		c.Write(zap.String("organization", report.Organization), zap.String("report_id", report.ID),
			zap.Strings("domains", report.Domains()), zap.String("outcome", outcome), zap.Error(err))
	}
	switch {
	case status >= http.StatusInternalServerError:
		h.unavailable(w, status, outcome, report, err)
		return nil
	case err != nil:
		return caddyhttp.Error(status, err)
	}
	w.WriteHeader(status)
	return nil
}

// readReport reads and parses the report a request posts; an error is the
// handler error to answer with, counted in the metrics.
func (h *TLSRPTReceiver) readReport(w http.ResponseWriter, r *http.Request) (*tlsrpt.Report, []byte, error) {
	refuse := func(outcome string, status int, err error) (*tlsrpt.Report, []byte, error) {
		reportsReceived.WithLabelValues(outcome).Inc()
		return nil, nil, caddyhttp.Error(status, err)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return refuse("bad_method", http.StatusMethodNotAllowed, fmt.Errorf("method %s, not POST", r.Method))
	}
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); !slices.Contains(reportMediaTypes, mediaType) {
		return refuse("bad_media_type", http.StatusUnsupportedMediaType, fmt.Errorf("media type %q is no TLS report's", mediaType))
	}
	limits := tlsrpt.Limits{MaxBodySize: h.MaxBodySize, MaxReportSize: h.MaxReportSize}
	data, err := tlsrpt.ReadBody(r.Body, r.ContentLength, limits)
	var report *tlsrpt.Report
	if err == nil {
		report, err = tlsrpt.Parse(data)
	}
	switch {
	case errors.Is(err, tlsrpt.ErrTooLarge):
		return refuse("too_large", http.StatusRequestEntityTooLarge, err)
	case err != nil:
		return refuse("malformed", http.StatusBadRequest, err)
	case report.Start.After(h.now().Add(maxClockSkew)):
		return refuse("malformed", http.StatusBadRequest, fmt.Errorf("report starts %s, in the future", report.Start))
	}
	return report, data, nil
}

// receive keeps a report and counts it in the summaries of its managed
// domains. It returns the outcome to count, the status to answer and why,
// for any status but 200 and 201.
func (h *TLSRPTReceiver) receive(ctx context.Context, report *tlsrpt.Report, data []byte) (string, int, error) {
	domains := report.Domains()
	if len(domains) == 0 {
		return h.receiveUnattributed(ctx, report, data)
	}
	managed, err := h.managedDomains(ctx, domains)
	if err != nil {
		return "dns_failed", http.StatusServiceUnavailable, err
	}
	if len(managed) == 0 {
		return "not_managed", http.StatusForbidden, fmt.Errorf("no policy domain of the report is managed: %v", domains)
	}
	if err := h.store.storeReport(ctx, report, data); err != nil {
		return "storage_failed", http.StatusInternalServerError, err
	}
	added, err := h.summarise(ctx, report, managed)
	switch {
	case errors.Is(err, tlsrpt.ErrSummaryFull):
		return "summary_full", http.StatusTooManyRequests, err
	case err != nil:
		return "storage_failed", http.StatusInternalServerError, err
	case !added:
		return "duplicate", http.StatusOK, nil
	}
	return "accepted", http.StatusCreated, nil
}

// receiveUnattributed keeps a report that names no policy domain.
func (h *TLSRPTReceiver) receiveUnattributed(ctx context.Context, report *tlsrpt.Report, data []byte) (string, int, error) {
	stored, err := h.store.storeUnattributed(ctx, report, data, h.MaxUnattributedPerDay)
	switch {
	case errors.Is(err, errUnattributedFull):
		return "unattributed_full", http.StatusTooManyRequests, err
	case err != nil:
		return "storage_failed", http.StatusInternalServerError, err
	case !stored:
		return "duplicate", http.StatusOK, nil
	}
	return "unattributed", http.StatusCreated, nil
}

// managedDomains asks the authoritative DNS which of domains are managed,
// with the policy lookup of the other modules. A lookup that fails (rather
// than say the domain is not managed) fails them all: the sender retries.
func (h *TLSRPTReceiver) managedDomains(ctx context.Context, domains []string) ([]string, error) {
	var managed []string
	for _, domain := range domains {
		_, err := h.source.lookup(ctx, domain)
		switch {
		case err == nil:
			managed = append(managed, domain)
		case !errors.Is(err, errNotManaged):
			return nil, fmt.Errorf("cannot tell whether %s is managed: %w", domain, err)
		}
	}
	return managed, nil
}

// summarise counts the report in the summary of each managed domain it
// names, and its sessions in the metrics wherever it was new. It reports
// whether the report was new to any summary.
func (h *TLSRPTReceiver) summarise(ctx context.Context, report *tlsrpt.Report, managed []string) (bool, error) {
	var anyAdded bool
	var errs []error
	for _, sessions := range report.Sessions() {
		if !slices.Contains(managed, sessions.Domain) {
			continue
		}
		added, err := h.store.addToSummary(ctx, report, sessions)
		if err != nil {
			errs = append(errs, fmt.Errorf("summary of %s: %w", sessions.Domain, err))
			continue
		}
		if added {
			anyAdded = true
			countSessions(sessions)
		}
	}
	return anyAdded, errors.Join(errs...)
}

// unavailable answers status, a failure of DNS or of the storage, with
// Retry-After, and logs it at a bounded rate. Like the policy handler, it
// writes the response itself so that Caddy does not log each one with the
// whole request at ERROR level.
func (h *TLSRPTReceiver) unavailable(w http.ResponseWriter, status int, outcome string, report *tlsrpt.Report, err error) {
	w.Header().Set("Retry-After", retryAfter)
	w.WriteHeader(status)
	h.failures.log(zapcore.ErrorLevel, outcome, "cannot take a TLS report now; the sender will retry",
		zap.String("organization", report.Organization), zap.String("report_id", report.ID), zap.Error(err))
}

// removeExpiredEvery removes old reports and summaries every interval
// until ctx ends, with the config. The first run waits an interval too:
// the lock and the time of the last run in storage make one node of the
// cluster do it at a time anyway, and a config reload restarts the wait.
func (h *TLSRPTReceiver) removeExpiredEvery(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if _, err := h.store.removeExpired(ctx, h.now(), time.Duration(h.Retention)); err != nil && ctx.Err() == nil {
			h.logger.Error("removing old TLS reports", zap.Error(err))
		}
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TLSRPTReceiver)(nil)
	_ caddy.Validator             = (*TLSRPTReceiver)(nil)
	_ caddy.CleanerUpper          = (*TLSRPTReceiver)(nil)
	_ caddyhttp.MiddlewareHandler = (*TLSRPTReceiver)(nil)
)
