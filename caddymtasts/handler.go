package caddymtasts

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// policyPath is where senders fetch a policy (RFC 8461 §3.3).
const policyPath = "/.well-known/mta-sts.txt"

// retryAfter is sent with 503: RFC 8461 §3.3 asks senders to wait at least
// five minutes before fetching again after a failure.
const retryAfter = "300"

// Handler serves MTA-STS policies. For GET or HEAD of
// /.well-known/mta-sts.txt on host mta-sts.D it reads the policy of D from
// the authoritative DNS, after the request arrived and without any cache,
// and serves it with status 200. It answers 404 when D is not managed or
// the host is no Policy Host, 405 for other methods, and 503 when DNS fails
// or publishes an invalid policy; it never redirects. GET / on mta-sts.D
// answers a short HTML page about D's policy, by the same rules
// (servePublicPage). Requests for other paths go to the next handler.
//
// Responses carry "Cache-Control: no-store". Senders must not use HTTP
// caching anyway (RFC 8461 §3.3); the header is for intermediaries such as
// a CDN or a customer's reverse proxy, which could otherwise serve an old
// body after the id at _mta-sts.D changed.
type Handler struct {
	PolicyDNS

	source   *policySource
	failures *rateLog
	fetched  *fetchLog // the mta_sts app's record of served domains; nil without the app
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mta_sts",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the DNS client and the log of failed lookups, and
// joins the mta_sts app's record of served domains if the config has the
// app.
func (h *Handler) Provision(ctx caddy.Context) error {
	source, err := h.PolicyDNS.source()
	if err != nil {
		return err
	}
	h.source = source
	h.failures = newRateLog(ctx.Logger(), failureLogInterval)
	switch app, err := ctx.AppIfConfigured("mta_sts"); {
	case err == nil:
		h.fetched = app.(*App).fetched
	case !errors.Is(err, caddy.ErrNotConfigured):
		return err
	}
	return registerMetrics(ctx.GetMetricsRegistry())
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.URL.Path == "/" {
		return h.servePublicPage(w, r, next)
	}
	if r.URL.Path != policyPath {
		return next.ServeHTTP(w, r)
	}
	domain, err := policyDomain(r.Host)
	if err != nil {
		policyRequests.WithLabelValues("bad_host").Inc()
		return caddyhttp.Error(http.StatusNotFound, err)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		policyRequests.WithLabelValues("bad_method").Inc()
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, nil)
	}
	body, err := h.source.lookup(r.Context(), domain)
	if err != nil {
		outcome := lookupResult(err)
		policyRequests.WithLabelValues(outcome).Inc()
		if errors.Is(err, errNotManaged) {
			return caddyhttp.Error(http.StatusNotFound, err)
		}
		h.unavailable(w, outcome, domain, err)
		return nil
	}
	policyRequests.WithLabelValues("served").Inc()
	if h.fetched != nil {
		h.fetched.record(domain, time.Now())
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// The status is out, so a failed write (the client left) has no one
	// left to be reported to.
	_, _ = w.Write(body)
	return nil
}

// unavailable answers 503 to a request whose policy could not be read, and
// logs the failure at a bounded rate. Failing closed: senders keep their
// cached policy, or deliver as if there were none (RFC 8461 §3.3); a body
// we cannot vouch for would be worse than either.
//
// The handler writes this response itself rather than return the error:
// Caddy logs every handler error with a status of 500 or more at ERROR
// level with the whole request, about 650 bytes, so a DNS outage under load
// wrote megabytes a second, one line per request. In exchange handle_errors
// does not see these 503s. A 404 still goes to Caddy, which logs it at
// DEBUG level only.
func (h *Handler) unavailable(w http.ResponseWriter, outcome, domain string, err error) {
	hdr := w.Header()
	hdr.Set("Retry-After", retryAfter)
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	h.failures.log(zapcore.ErrorLevel, outcome, "cannot read the MTA-STS policy from DNS; answering 503",
		zap.String("domain", domain), zap.Error(err))
}

// Cleanup closes the DNS connections.
func (h *Handler) Cleanup() error {
	return h.source.close()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
