package caddymtasts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/coredns-mtasts/mtasts/caddymtasts/autopilot"
	"github.com/coredns-mtasts/mtasts/caddymtasts/internal/reporttest"
	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
)

// dashboardFixture is a Caddy in process, in front of our CoreDNS, with
// the policy site of startCaddy and the staff's site on loopback: the
// dashboard, and the TLS report receiver at /v1/tlsrpt. Its storage holds
// certificates for three policy hosts, TLS reports about two domains and
// readiness results of three, one of which DNS no longer manages.
type dashboardFixture struct {
	dns     *testDNS
	caddy   *testCaddy
	staff   string // the staff site's address, plain HTTP
	certs   map[string]time.Time
	reports map[string][][]byte // the reports posted, by domain
	days    []string            // the days of the reports, newest first
	events  []eventType         // the events stored about example.com
}

func startDashboard(t *testing.T) *dashboardFixture {
	t.Helper()
	d := startDNS(t)
	c := &testCaddy{addr: freeAddr(t), storage: t.TempDir()}
	servers, tlsApp := c.policySite(d.addr, nil)
	f := &dashboardFixture{dns: d, caddy: c, staff: freeAddr(t), certs: map[string]time.Time{}, reports: map[string][][]byte{}}
	servers["staff"] = map[string]any{
		"listen": []string{f.staff},
		"routes": []any{
			map[string]any{
				"match":  []any{map[string]any{"path": []string{reportPath}}},
				"handle": []any{map[string]any{"handler": "tlsrpt", "servers": []string{d.addr}, "timeout": "1s"}},
			},
			map[string]any{"handle": []any{map[string]any{"handler": "mta_sts_dashboard", "servers": []string{d.addr}, "timeout": "1s"}}},
		},
		"automatic_https": map[string]any{"disable": true},
	}
	c.run(t, c.config(t, map[string]any{"disabled": true}, servers, tlsApp))

	for _, domain := range []string{"example.com", "enforced.example.com", "example.net"} {
		cert, err := c.handshake("mta-sts." + domain)
		if err != nil {
			t.Fatal(err)
		}
		f.certs[domain] = cert.NotAfter
	}
	today := time.Now().UTC()
	for i := range 3 {
		f.days = append(f.days, today.AddDate(0, 0, -1-2*i).Format(time.DateOnly))
	}
	f.postReport(t, reporttest.Report("Google Inc.", "g1", "example.com", f.days[0], 3))
	f.postReport(t, reporttest.Report("Microsoft Corporation", "m1", "example.com", f.days[0], 1))
	f.postReport(t, reporttest.Report("Google Inc.", "g2", "example.com", f.days[2], 2))
	f.postReport(t, reporttest.Report("Google Inc.", "g3", "enforced.example.com", f.days[1], 1))

	storage := &certmagic.FileStorage{Path: c.storage}
	checked := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	results := []readiness.DomainReport{
		{Domain: "example.com", CheckedAt: checked, Mode: "testing",
			PolicyID: expectedPolicy(t, "mx1.example.com").ID(), PolicyMX: []string{"mx1.example.com"},
			Reasons: []string{"mx1.example.com: no STARTTLS offered", "TLS reports of the last 7 days: 600 of 300600 sessions failed"},
			MXHosts: []readiness.HostResult{{Host: "mx1.example.com", CheckedAt: checked, Reachable: true,
				Outcome: readiness.OutcomeNoSTARTTLS, Failure: "STARTTLS not offered"}}},
		{Domain: "enforced.example.com", CheckedAt: checked, Ready: true, Mode: "enforce",
			MXHosts: []readiness.HostResult{{Host: "mx1.example.com", CheckedAt: checked, Reachable: true, STARTTLS: true,
				TLSVersion: "TLS 1.3", NotAfter: checked.AddDate(0, 2, 0), ChainVerified: true, NameMatches: true, Outcome: readiness.OutcomePass}}},
		{Domain: "gone.example.com", CheckedAt: checked, Reasons: []string{"no policy to enforce: not managed"}, MXHosts: []readiness.HostResult{}},
	}
	for _, result := range results {
		data, err := json.Marshal(result)
		if err != nil {
			t.Fatal(err)
		}
		if err := storage.Store(context.Background(), domainReportKey(result.Domain), data); err != nil {
			t.Fatal(err)
		}
	}
	// The events of example.com's last check, against a baseline of the
	// day before: its MX moved from mx0, and the new host offers no
	// STARTTLS.
	b := new(baseline)
	detectEvents(b, readiness.DomainReport{Domain: "example.com", CheckedAt: checked.AddDate(0, 0, -1), PolicyID: "0123456789abcdef0123456789abcdef",
		PolicyMX: []string{"mx0.example.com"}}, 0)
	events, _ := detectEvents(b, results[0], defaultWarnDays*24*time.Hour)
	for _, e := range events {
		if _, _, err := (&eventStore{storage: storage}).add(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		f.events = append(f.events, e.Type)
	}
	return f
}

// postReport posts a report to the receiver, which must take it.
func (f *dashboardFixture) postReport(t *testing.T, report []byte) {
	t.Helper()
	resp, err := http.Post("http://"+f.staff+reportPath, "application/tlsrpt+json", bytes.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("posting a report: %s", resp.Status)
	}
	domain := parseReport(t, report).Domains()[0]
	f.reports[domain] = append(f.reports[domain], report)
}

// get fetches path from the dashboard with the Accept header accept.
func (f *dashboardFixture) get(t *testing.T, path, accept string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+f.staff+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// tableRows returns the text of each row of the dashboard's table, by
// domain, and the domains in their order.
func tableRows(t *testing.T, page []byte) (map[string]string, []string) {
	t.Helper()
	rows := map[string]string{}
	var order []string
	for _, m := range regexp.MustCompile(`(?s)<tr data-domain="([^"]+)">(.*?)</tr>`).FindAllSubmatch(page, -1) {
		domain := string(m[1])
		rows[domain] = visibleText(m[2])
		order = append(order, domain)
	}
	return rows, order
}

func TestDashboardTable(t *testing.T) {
	f := startDashboard(t)
	r := f.get(t, "/", "")
	expectPage(t, "table", r, "text/html; charset=utf-8")
	rows, order := tableRows(t, r.body)
	if want := []string{"enforced.example.com", "example.com", "example.net", "gone.example.com"}; !slices.Equal(order, want) {
		t.Fatalf("rows %v, want %v", order, want)
	}
	for domain, want := range map[string][]string{
		"example.com": {"testing", f.dns.stsID(t, "example.com"), "mx1.example.com", f.certs["example.com"].UTC().Format(time.DateOnly),
			"300,000 600", "not ready: mx1.example.com: no STARTTLS offered (+1 more)"},
		"enforced.example.com": {"enforce", f.dns.stsID(t, "enforced.example.com"), "*.mail.example.net mx1.example.com",
			"100,000 100", "ready (2030-01-02)"},
		"example.net":      {"testing", "mx1.example.net", "0 0 not checked"},
		"gone.example.com": {"not managed", "none stored", "0 0 not ready: no policy to enforce"},
	} {
		for _, w := range want {
			if !strings.Contains(rows[domain], w) {
				t.Errorf("row of %s: no %q in %q", domain, w, rows[domain])
			}
		}
	}

	search := f.get(t, "/?q=Example.N", "")
	if _, order := tableRows(t, search.body); !slices.Equal(order, []string{"example.net"}) {
		t.Errorf("searching example.n: rows %v", order)
	}
}

func TestDashboardTableJSON(t *testing.T) {
	f := startDashboard(t)
	for _, r := range []response{f.get(t, "/?format=json", ""), f.get(t, "/", "application/json, text/html;q=0.5")} {
		expectPage(t, "table as JSON", r, "application/json")
		var page tablePage
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Domains) != 4 || page.AfterLast != "" || page.BeforeFirst != "" || page.PageSize != dashboardPageSize {
			t.Fatalf("got %+v", page)
		}
		row := page.Domains[1]
		want := publishedPolicy{State: policyManaged, Mode: "testing", ID: f.dns.stsID(t, "example.com"), MX: []string{"mx1.example.com"}, MaxAge: 604800}
		if row.Domain != "example.com" || !equalJSON(t, row.Policy, want) {
			t.Errorf("policy of %s: %+v, want %+v", row.Domain, row.Policy, want)
		}
		if row.Certificate == nil || !row.Certificate.NotAfter.Equal(f.certs["example.com"]) || row.Certificate.Issuer != "local" {
			t.Errorf("certificate: %+v, want one until %s from local", row.Certificate, f.certs["example.com"])
		}
		if got := row.TLSReports; got != (readiness.Sessions{Days: 30, Reports: 3, Successful: 300000, Failed: 600}) {
			t.Errorf("TLS reports: %+v", got)
		}
		if row.Readiness == nil || row.Readiness.Ready || len(row.Readiness.Reasons) != 2 {
			t.Errorf("readiness: %+v", row.Readiness)
		}
		if gone := page.Domains[3]; gone.Policy.State != policyNotManaged || gone.Certificate != nil {
			t.Errorf("gone.example.com: %+v", gone)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestDashboardDomainPage checks a domain's page: the policy text, and
// every data point of the chart against the summaries of the reports
// posted.
func TestDashboardDomainPage(t *testing.T) {
	f := startDashboard(t)
	r := f.get(t, "/domain/example.com", "")
	expectPage(t, "domain page", r, "text/html; charset=utf-8")
	if want := expectedPolicy(t, "mx1.example.com").Encode(); !bytes.Contains(r.body, want) {
		t.Errorf("no policy text %q", want)
	}
	groups := regexp.MustCompile(`(?s)<g data-day="([^"]+)">(.*?)</g>`).FindAllSubmatch(r.body, -1)
	if len(groups) != reportWindowDays {
		t.Fatalf("%d days in the chart, want %d", len(groups), reportWindowDays)
	}
	points := regexp.MustCompile(`data-series="([^"]+)" data-sessions="(\d+)"`)
	var withData []string
	for _, g := range groups {
		day := string(g[1])
		got := map[string]string{}
		for _, p := range points.FindAllSubmatch(g[2], -1) {
			got[string(p[1])] = string(p[2])
		}
		want := map[string]string{}
		if s := expectedSummary(t, "example.com", day, f.reports["example.com"]...); s.Reports > 0 {
			withData = append(withData, day)
			want["successful"] = fmt.Sprint(s.SuccessfulSessions)
			for typ, n := range s.FailuresByResultType {
				want[typ] = fmt.Sprint(n)
			}
		}
		if !equalJSON(t, got, want) {
			t.Errorf("chart, %s: %v, want %v", day, got, want)
		}
	}
	if want := []string{f.days[2], f.days[0]}; !slices.Equal(withData, want) {
		t.Errorf("days with reports %v, want %v", withData, want)
	}
	for _, w := range []string{"Not ready.", "mx1.example.com no_starttls", "STARTTLS not offered",
		"mx_tls_problem (failure) mx1.example.com STARTTLS not offered", "policy_changed + mx1.example.com − mx0.example.com"} {
		if !strings.Contains(visibleText(r.body), w) {
			t.Errorf("no %q on the page", w)
		}
	}

	var detail domainDetail
	if err := json.Unmarshal(f.get(t, "/domain/EXAMPLE.COM?format=json", "").body, &detail); err != nil {
		t.Fatal(err)
	}
	if len(detail.Days) != 2 || detail.Days[1].Day != f.days[0] || detail.Days[1].Reports != 2 || detail.Days[1].Successful != 200000 ||
		detail.PolicyText != string(expectedPolicy(t, "mx1.example.com").Encode()) {
		t.Errorf("domain page as JSON: %+v", detail)
	}
	// Seen at once, so by type.
	if want := []eventType{eventMXTLSProblem, eventPolicyChanged}; len(detail.Events) != 2 || detail.Events[0].Type != want[0] ||
		detail.Events[1].Type != want[1] || fmt.Sprint(detail.Events[1].MXAdded, detail.Events[1].MXRemoved) != "[mx1.example.com] [mx0.example.com]" ||
		!slices.Contains(f.events, want[0]) || !slices.Contains(f.events, want[1]) {
		t.Errorf("events in the JSON: %+v, want %v", detail.Events, f.events)
	}

	for _, path := range []string{"/domain/not-hosted.example", "/domain/a/b", "/domain/", "/nothing"} {
		if r := f.get(t, path, ""); r.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
}

// TestDashboardRefusesUnprotected loads configs with the dashboard on a
// server that listens beyond loopback: Caddy must refuse them unless
// protected_by says how the dashboard is protected.
func TestDashboardRefusesUnprotected(t *testing.T) {
	c := &testCaddy{addr: freeAddr(t), storage: t.TempDir()}
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	_, port, _ := net.SplitHostPort(freeAddr(t))
	for _, tc := range []struct {
		listen    string
		dashboard map[string]any
		want      string // in the error; "" for none
	}{
		{":" + port, nil, "listens on :" + port + " (every interface), not loopback only"},
		{"0.0.0.0:" + port, nil, "not loopback only"},
		{":" + port, map[string]any{"protected_by": "client_certificates"}, "requires and verifies client certificates"},
		{"127.0.0.1:" + port, nil, ""},
		{":" + port, map[string]any{"protected_by": "basic_auth"}, ""},
		{":" + port, map[string]any{"protected_by": "network"}, ""},
	} {
		handler := map[string]any{"handler": "mta_sts_dashboard"}
		for k, v := range tc.dashboard {
			handler[k] = v
		}
		servers := map[string]any{"staff": map[string]any{
			"listen":          []string{tc.listen},
			"routes":          []any{map[string]any{"handle": []any{handler}}},
			"automatic_https": map[string]any{"disable": true},
		}}
		err := caddy.Load(c.config(t, map[string]any{"disabled": true}, servers, map[string]any{}), true)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %v: %v", tc.listen, tc.dashboard, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %v: got %v, want an error with %q", tc.listen, tc.dashboard, err, tc.want)
		}
		if err == nil {
			caddy.Stop()
		}
	}
}

func TestNonLoopback(t *testing.T) {
	var open []string
	for _, addr := range []string{
		"127.0.0.1:2020", "tcp/127.0.0.2:2020", "[::1]:2020", "localhost:2020", "unix//run/caddy/dashboard.sock",
		":2020", "0.0.0.0:2020", "192.0.2.10:443", "[::]:443", "udp/:443",
	} {
		open = append(open, nonLoopback([]string{addr})...)
	}
	want := []string{":2020 (every interface)", "0.0.0.0:2020", "192.0.2.10:443", "[::]:443", "udp/:443 (every interface)"}
	if !slices.Equal(open, want) {
		t.Errorf("got %q, want %q", open, want)
	}
}

func TestDashboardValidate(t *testing.T) {
	for _, p := range []string{"", "basic_auth", "client_certificates", "network"} {
		if err := (&Dashboard{ProtectedBy: p}).Validate(); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	if err := (&Dashboard{ProtectedBy: "password"}).Validate(); err == nil {
		t.Error(`"password": valid`)
	}
}

// Mistakes in the dashboard's options fail caddy adapt, naming the line.
func TestAdaptRejectsDashboardOptions(t *testing.T) {
	for option, want := range map[string]string{
		"protected_by":                    "wrong argument count",
		"protected_by password":           `protected_by "password": want basic_auth, client_certificates or network`,
		"protected_by basic_auth network": "wrong argument count",
		"page_size 10":                    `unrecognized subdirective "page_size"`,
	} {
		_, _, err := adapt(t, "http://127.0.0.1:2020 {\n\tmta_sts_dashboard {\n\t\t"+option+"\n\t}\n}\n")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%s: got error %v, want one containing %q and Caddyfile:3", option, err, want)
		}
	}
}

// The domain page shows the autopilot's history, newest decision first,
// and its JSON has it whole; a domain without one says so.
func TestDashboardAutopilotTrail(t *testing.T) {
	f := startDashboard(t)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	h := autopilot.History{Domain: "example.com", Streak: autopilot.Streak{Passes: 3, Since: at, Last: at.AddDate(0, 0, 2)}}
	h.Record(autopilot.Entry{At: at, Decision: autopilot.Decision{Action: autopilot.Keep, Reason: "1 of 7 consecutive passing checks"}})
	h.Record(autopilot.Entry{At: at.AddDate(0, 0, 1), Decision: autopilot.Decision{Action: autopilot.Keep, Reason: "2 of 7 consecutive passing checks"}})
	h.Record(autopilot.Entry{At: at.AddDate(0, 0, 2), Decision: autopilot.Decision{Action: autopilot.Promote, Reason: "evidence"},
		Record: autopilot.RecordFor(autopilot.Promote), Outcome: autopilot.Written})
	h.Record(autopilot.Entry{At: at.AddDate(0, 0, 3), Decision: autopilot.Decision{Action: autopilot.Demote, Reason: "mx1.example.com: expired"},
		Record: autopilot.RecordFor(autopilot.Demote), Outcome: autopilot.Failed, Error: "primary unreachable"})
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&certmagic.FileStorage{Path: f.caddy.storage}).Store(context.Background(), historyKey("example.com"), data); err != nil {
		t.Fatal(err)
	}
	text := visibleText(f.get(t, "/domain/example.com", "").body)
	want := []string{
		"3 consecutive passing checks since 2030-01-02 03:04 UTC. Last change: 2030-01-04 03:04 UTC.",
		"demote: failed v=STSCFG1; mode=testing; by=autopilot mx1.example.com: expired primary unreachable",
		"promote: written v=STSCFG1; mode=enforce; by=autopilot evidence",
		"2030-01-02 03:04 UTC and 1 more, to 2030-01-03 03:04 UTC keep 2 of 7 consecutive passing checks",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(text, w)
		if i <= last {
			t.Errorf("%q not on the page after what comes before it:\n%s", w, text)
		}
		last = i
	}
	var detail domainDetail
	if err := json.Unmarshal(f.get(t, "/domain/example.com?format=json", "").body, &detail); err != nil {
		t.Fatal(err)
	}
	if detail.Autopilot == nil || len(detail.Autopilot.Entries) != 3 || detail.Autopilot.Entries[2].Error != "primary unreachable" {
		t.Errorf("the JSON's autopilot: %+v", detail.Autopilot)
	}
	if text := visibleText(f.get(t, "/domain/enforced.example.com", "").body); !strings.Contains(text, "No decision: the mta_sts app's autopilot is off") {
		t.Errorf("a domain without a history:\n%s", text)
	}
}
