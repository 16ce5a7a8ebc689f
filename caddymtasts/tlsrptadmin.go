package caddymtasts

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
	"github.com/coredns-mtasts/mtasts/policy"
)

func init() {
	caddy.RegisterModule(TLSRPTAdmin{})
}

// summaryRoute is the admin API path of a domain's summaries:
// /tlsrpt/summary/DOMAIN.
const summaryRoute = "/tlsrpt/summary/"

// TLSRPTAdmin serves the summaries of the TLS reports that http.handlers.tlsrpt
// keeps, on Caddy's admin endpoint, which the operator already protects:
//
//	GET /tlsrpt/summary/DOMAIN[?from=YYYY-MM-DD][&to=YYYY-MM-DD]
//
// answers {"domain": DOMAIN, "days": [SUMMARY...]}: the stored summaries of
// DOMAIN (in any letter case, U-labels too) from the day from to the day
// to, both included and both optional, oldest first; a day without reports
// has none. A summary is the JSON of tlsrpt.Summary. The summaries are read
// from the storage, so any node of a cluster answers for all of them.
//
// Like every admin.api module, it has no configuration: Caddy loads it
// whenever the admin endpoint is on.
type TLSRPTAdmin struct {
	store *reportStore
}

// CaddyModule returns the Caddy module information.
func (TLSRPTAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tlsrpt",
		New: func() caddy.Module { return new(TLSRPTAdmin) },
	}
}

// Provision takes the config's storage.
func (a *TLSRPTAdmin) Provision(ctx caddy.Context) error {
	a.store = newReportStore(ctx.Storage())
	return nil
}

// Routes returns the route of the summaries.
func (a *TLSRPTAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: summaryRoute, Handler: caddy.AdminHandlerFunc(a.serveSummaries)}}
}

// summariesAnswer is the body of an answer of serveSummaries.
type summariesAnswer struct {
	Domain string            `json:"domain"`
	Days   []*tlsrpt.Summary `json:"days"`
}

func (a *TLSRPTAdmin) serveSummaries(w http.ResponseWriter, r *http.Request) error {
	domain, from, to, err := domainDays(r, summaryRoute)
	if err != nil {
		return err
	}
	days, err := a.store.summaries(r.Context(), domain, from, to)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(summariesAnswer{Domain: domain, Days: days})
}

// domainDays reads a GET of route+DOMAIN[?from=YYYY-MM-DD][&to=YYYY-MM-DD]
// on the admin API: the domain, in lowercase A-labels, and the days, ""
// when not given.
func domainDays(r *http.Request, route string) (domain, from, to string, err error) {
	if r.Method != http.MethodGet {
		return "", "", "", caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s, not GET", r.Method)}
	}
	domain, err = policy.NormalizeHost(strings.TrimPrefix(r.URL.Path, route))
	if err != nil {
		return "", "", "", caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("domain: %w", err)}
	}
	query := r.URL.Query()
	from, to = query.Get("from"), query.Get("to")
	for name, day := range map[string]string{"from": from, "to": to} {
		if day != "" && !isDay(day) {
			return "", "", "", caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("%s=%q is no date YYYY-MM-DD", name, day)}
		}
	}
	return domain, from, to, nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*TLSRPTAdmin)(nil)
	_ caddy.AdminRouter = (*TLSRPTAdmin)(nil)
)
