package caddymtasts

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"

	"github.com/coredns-mtasts/mtasts/caddymtasts/autopilot"
)

func init() {
	caddy.RegisterModule(Dashboard{})
}

// domainRoute is the path prefix of a domain's page: /domain/DOMAIN.
const domainRoute = "/domain/"

// The acknowledgements protected_by takes: how the operator keeps the
// dashboard from everyone but the provider's staff.
const (
	protectedByBasicAuth   = "basic_auth"          // Caddy's basic_auth (or forward_auth) ahead of the dashboard in its route
	protectedByClientCerts = "client_certificates" // the server requires and verifies client certificates
	protectedByNetwork     = "network"             // only staff can reach the listener: a VPN, a firewall
)

// Dashboard is the provider staff's view of every managed domain: a
// table of the domains Caddy's storage knows (a certificate for
// mta-sts.D, TLS reports, a readiness result), each with its policy as
// DNS publishes it now, its certificate's expiry, the sessions the TLS
// reports of the last 30 days count, and its readiness for enforce; and a
// page per domain with the policy, a chart of the reports per day and the
// readiness of each MX host. Everything as JSON too, for scripts.
//
//	GET /                 the table; ?q= searches, ?after= and ?before= page
//	GET /domain/DOMAIN    a domain's page
//	                      either with ?format=json, or Accept: application/json
//
// It keeps nothing of its own: every request reads DNS and the storage, so
// every node of a cluster shows the same. The pages load nothing from
// anywhere else, not even from the dashboard: no script, no image, the
// style sheet inline.
//
// The dashboard shows every customer's domains, so it refuses to start on
// a server that listens on anything but loopback, unless protected_by says
// how it is protected. Caddy cannot tell, from inside a handler, whether
// basic_auth precedes it in every route that reaches it: that needs the
// operator's word. The server's client certificate policy it can see, and
// checks.
type Dashboard struct {
	// Where the policies are read, as the mta_sts handler reads them: the
	// authoritative servers running the CoreDNS plugin mtasts.
	PolicyDNS

	// How the dashboard is kept from anyone but the provider's staff, when
	// its server listens on more than loopback: "basic_auth" (basic_auth
	// or forward_auth before it in the route), "client_certificates" (the
	// server's TLS connection policies require and verify client
	// certificates; checked) or "network" (the listener is on a network
	// only staff reach). Default: none, and then every listen address of
	// the server must be a loopback address or a Unix socket.
	ProtectedBy string `json:"protected_by,omitempty"`

	storage certmagic.Storage
	status  *statusReader
}

// CaddyModule returns the Caddy module information.
func (Dashboard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mta_sts_dashboard",
		New: func() caddy.Module { return new(Dashboard) },
	}
}

// Provision checks that the dashboard's server is loopback only or
// protected, and sets up the DNS client and the storage.
func (d *Dashboard) Provision(ctx caddy.Context) error {
	server, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if err := d.checkAccess(server); err != nil {
		return err
	}
	source, err := d.PolicyDNS.source()
	if err != nil {
		return err
	}
	d.storage = ctx.Storage()
	d.status = &statusReader{source: source, storage: d.storage, reports: newReportStore(d.storage)}
	return registerMetrics(ctx.GetMetricsRegistry())
}

// Validate checks protected_by.
func (d *Dashboard) Validate() error {
	switch d.ProtectedBy {
	case "", protectedByBasicAuth, protectedByClientCerts, protectedByNetwork:
		return nil
	}
	return fmt.Errorf("protected_by %q: want %s, %s or %s", d.ProtectedBy, protectedByBasicAuth, protectedByClientCerts, protectedByNetwork)
}

// Cleanup closes the DNS connections.
func (d *Dashboard) Cleanup() error {
	if d.status == nil {
		return nil
	}
	return d.status.source.close()
}

// checkAccess returns an error that says why, unless only the provider's
// staff can reach server: it listens on loopback only, or the operator
// says how it is protected (and for client certificates, it requires
// them).
func (d *Dashboard) checkAccess(server *caddyhttp.Server) error {
	if server == nil {
		return errors.New("the dashboard must be a handler of an HTTP server")
	}
	switch d.ProtectedBy {
	case "":
		if open := nonLoopback(server.Listen); len(open) > 0 {
			return fmt.Errorf("the dashboard shows every customer's domains and is for the provider's staff, but its server "+
				"listens on %s, not loopback only; bind the site to loopback (bind 127.0.0.1 ::1), or protect it "+
				"(basic_auth, client certificates, a network only staff reach) and say so with protected_by",
				strings.Join(open, ", "))
		}
	case protectedByClientCerts:
		if !requiresClientCertificates(server.TLSConnPolicies) {
			return errors.New("protected_by client_certificates, but not every TLS connection policy of the server " +
				"requires and verifies client certificates (client_auth with a trust pool, mode require_and_verify)")
		}
	}
	return nil
}

// nonLoopback returns the listen addresses that reach beyond this
// machine: any but loopback IP addresses, localhost and Unix sockets. An
// address without a host listens on every interface.
func nonLoopback(listen []string) []string {
	var open []string
	for _, l := range listen {
		addr, err := caddy.ParseNetworkAddress(l)
		if err != nil {
			open = append(open, l)
			continue
		}
		if addr.IsUnixNetwork() || addr.Host == "localhost" {
			continue
		}
		if ip, err := netip.ParseAddr(addr.Host); err != nil || !ip.IsLoopback() {
			open = append(open, describeListen(l, addr))
		}
	}
	return open
}

// describeListen returns the listen address l, and what it means when
// that is not plain.
func describeListen(l string, addr caddy.NetworkAddress) string {
	if addr.Host == "" {
		return l + " (every interface)"
	}
	return l
}

// requiresClientCertificates reports whether every connection policy
// requires a client certificate and verifies it against a trust pool.
func requiresClientCertificates(policies caddytls.ConnectionPolicies) bool {
	return len(policies) > 0 && !slices.ContainsFunc(policies, func(p *caddytls.ConnectionPolicy) bool {
		ca := p.ClientAuthentication
		if ca == nil {
			return true
		}
		trusted := ca.CARaw != nil || len(ca.TrustedCACerts) > 0 || len(ca.TrustedCACertPEMFiles) > 0
		return !trusted || ca.Mode != "" && ca.Mode != "require_and_verify"
	})
}

func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, nil)
	}
	switch {
	case r.URL.Path == "/":
		return d.serveTable(w, r)
	case strings.HasPrefix(r.URL.Path, domainRoute):
		return d.serveDomain(w, r, strings.TrimPrefix(r.URL.Path, domainRoute))
	}
	return caddyhttp.Error(http.StatusNotFound, nil)
}

// tablePage is the table's page, and its JSON.
type tablePage struct {
	Search      string         `json:"search"`
	Domains     []domainStatus `json:"domains"`
	AfterLast   string         `json:"next_after,omitempty"`      // ?after= of the next page; none without one
	BeforeFirst string         `json:"previous_before,omitempty"` // ?before= of the previous page
	PageSize    int            `json:"page_size"`
	ReportDays  int            `json:"report_days"`
	Now         time.Time      `json:"now"`
}

func (d *Dashboard) serveTable(w http.ResponseWriter, r *http.Request) error {
	query := r.URL.Query()
	q := domainQuery{search: strings.ToLower(strings.TrimSpace(query.Get("q"))), after: query.Get("after"), before: query.Get("before")}
	page, err := listDomains(r.Context(), d.storage, q, dashboardPageSize)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("listing the domains in storage: %w", err))
	}
	p := tablePage{
		Search:     q.search,
		Domains:    d.status.readRows(r.Context(), page),
		PageSize:   dashboardPageSize,
		ReportDays: reportWindowDays,
		Now:        time.Now(),
	}
	if n := len(page.domains); n > 0 {
		if page.later {
			p.AfterLast = page.domains[n-1]
		}
		if page.earlier {
			p.BeforeFirst = page.domains[0]
		}
	}
	return writePage(w, r, tableTemplate, p, wantsJSON(r))
}

// Earlier and Later report whether there are pages before and after.
func (p tablePage) Earlier() bool { return p.BeforeFirst != "" }
func (p tablePage) Later() bool   { return p.AfterLast != "" }

// EarlierQuery, LaterQuery and JSONQuery are the query strings of the
// links to the pages before and after, and of this one as JSON.
func (p tablePage) EarlierQuery() string { return p.query("before", p.BeforeFirst) }
func (p tablePage) LaterQuery() string   { return p.query("after", p.AfterLast) }
func (p tablePage) JSONQuery() string    { return p.query("format", "json") }

func (p tablePage) query(key, value string) string {
	v := url.Values{key: {value}}
	if p.Search != "" {
		v.Set("q", p.Search)
	}
	return v.Encode()
}

// domainDetail is a domain's page, and its JSON.
type domainDetail struct {
	domainStatus
	PolicyText string       `json:"policy_text,omitempty"`
	Days       []dayReport  `json:"tls_report_days"`
	Events     []event      `json:"events"` // the mta_sts app's events kept, oldest first
	Chart      sessionChart `json:"-"`
	// What the mta_sts app's autopilot decided about the domain, with the
	// evidence: its history in the storage, if it has one.
	Autopilot *autopilot.History `json:"autopilot,omitempty"`
	Now       time.Time          `json:"now"`
}

// AutopilotEntries are the autopilot's decisions, newest first.
func (d domainDetail) AutopilotEntries() []autopilot.Entry {
	if d.Autopilot == nil {
		return nil
	}
	entries := slices.Clone(d.Autopilot.Entries)
	slices.Reverse(entries)
	return entries
}

// dayReport is what a day's TLS reports said about a domain.
type dayReport struct {
	Day                  string           `json:"day"`
	Reports              int              `json:"reports"`
	Successful           int64            `json:"successful_sessions"`
	Failed               int64            `json:"failed_sessions"`
	FailuresByResultType map[string]int64 `json:"failures_by_result_type"`
}

func (d *Dashboard) serveDomain(w http.ResponseWriter, r *http.Request, name string) error {
	domain, err := domainFromPath(name)
	if err != nil {
		return caddyhttp.Error(http.StatusNotFound, err)
	}
	ctx := r.Context()
	var issuers []string
	err = eachName(ctx, d.storage, certsPrefix, func(issuer string) { issuers = append(issuers, issuer) })
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	days, err := storedDays(ctx, d.storage, summariesPrefix)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	days = d.status.windowDays(days)
	row := d.status.read(ctx, domain, issuers, days)
	summaries, err := d.status.reports.summariesOf(ctx, domain, days)
	if err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	events, err := (&eventStore{storage: d.storage}).events(ctx, domain, "", "")
	if err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	if row.Policy.State == policyNotManaged && row.Certificate == nil && len(summaries) == 0 && row.Readiness == nil && len(events) == 0 {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("%s: not managed, and nothing in storage", domain))
	}
	now := time.Now()
	detail := domainDetail{domainStatus: row, PolicyText: row.Policy.text, Days: []dayReport{}, Events: events,
		Chart: newSessionChart(summaries, now), Now: now}
	var history autopilot.History
	if found, err := loadJSON(ctx, d.storage, historyKey(domain), &history); err != nil {
		detail.Errors = append(detail.Errors, err.Error())
	} else if found {
		detail.Autopilot = &history
	}
	for _, s := range summaries {
		detail.Days = append(detail.Days, dayReport{
			Day: s.Day, Reports: s.Reports, Successful: s.SuccessfulSessions, Failed: s.FailedSessions,
			FailuresByResultType: s.FailuresByResultType,
		})
	}
	return writePage(w, r, domainTemplate, detail, wantsJSON(r))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Dashboard)(nil)
	_ caddy.Validator             = (*Dashboard)(nil)
	_ caddy.CleanerUpper          = (*Dashboard)(nil)
	_ caddyhttp.MiddlewareHandler = (*Dashboard)(nil)
)
