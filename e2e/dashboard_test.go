//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The staff's dashboard site of Caddyfile.example, as the suite runs it:
// on webAddr, behind basic_auth with dashboardUser's password.
const (
	dashboardHost = "dashboard.provider.test"
	dashboardPort = 9443
	dashboardUser = "staff"
)

// makeDashboardPassword makes the password of the dashboard's user and
// its hash, with our caddy's hash-password, for the Caddyfile.
func (s *suite) makeDashboardPassword(t *testing.T) {
	t.Helper()
	password := make([]byte, 16)
	rand.Read(password)
	s.dashboardPassword = hex.EncodeToString(password)
	out, err := exec.Command(s.bin+"/caddy", "hash-password", "--plaintext", s.dashboardPassword).Output()
	if err != nil {
		t.Fatalf("caddy hash-password: %v", err)
	}
	s.dashboardHash = strings.TrimSpace(string(out))
}

// testDashboard opens the dashboard and the public page of example.test in
// headless Chromium, after the steps that stored a TLS report about
// example.test and readiness results of example.test and
// sub.example.test: a screenshot of each page in the work dir, and the
// visible text checked. Each page's requests, from Chromium's net log,
// went to Caddy only. The dashboard's JSON is checked with a client that
// trusts Caddy's internal CA only, and without the password it is 401.
func testDashboard(t *testing.T, s *suite) {
	base := fmt.Sprintf("https://%s:%d/", dashboardHost, dashboardPort)
	client := s.dashboardClient(t)
	resp, err := client.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.expect(t, "the dashboard without the password: status", resp.StatusCode, http.StatusUnauthorized)

	var table struct{ Domains []dashboardRow }
	s.dashboardJSON(t, client, base+"?format=json", &table)
	s.ok(t, "the dashboard's JSON with the password: %d domains", len(table.Domains))
	rows := map[string]dashboardRow{}
	for _, r := range table.Domains {
		rows[r.Domain] = r
	}
	ex := rows["example.test"]
	s.expect(t, "JSON: example.test's policy", fmt.Sprintf("%s %s %s", ex.Policy.State, ex.Policy.Mode, ex.Policy.ID),
		"managed testing "+stsID(t, "example.test"))
	s.expect(t, "JSON: example.test's TLS reports", fmt.Sprintf("%+v", ex.TLSReports), "{Reports:1 Successful:120 Failed:3}")
	s.expect(t, "JSON: example.test's certificate from Pebble", ex.Certificate != nil && ex.Certificate.NotAfter.After(time.Now()), true)
	// The app checks every 3 s, and the SMTP servers of the step before
	// are gone: only example.test's verdict stays the same.
	s.expect(t, "JSON: readiness of example.test; sub.example.test checked", fmt.Sprint(!ex.Readiness.Ready, rows["sub.example.test"].Readiness != nil), "true true")

	authBase := fmt.Sprintf("https://%s:%s@%s:%d/", dashboardUser, s.dashboardPassword, dashboardHost, dashboardPort)
	for _, page := range []struct {
		name, url, origin string
		want              []string
	}{
		{"dashboard", authBase, strings.TrimSuffix(base, "/"), []string{
			"MTA-STS domains", "example.test testing " + stsID(t, "example.test") + " mx1.example.test mx2.example.test",
			"120 3 not ready: mx", "sub.example.test testing " + stsID(t, "sub.example.test"), "signed.test enforce",
		}},
		{"dashboard-example.test", authBase + "domain/example.test", strings.TrimSuffix(base, "/"), []string{
			"version: STSv1 mode: testing mx: mx1.example.test mx: mx2.example.test max_age: 86400",
			"1 120 3 certificate-expired 2 starttls-not-supported 1", "Not ready.", "TLS reports of the last 7 days: 3 of 123 sessions failed",
		}},
		{"public-example.test", "https://mta-sts.example.test/", "https://mta-sts.example.test", []string{
			"MTA-STS for example.test", "mode testing", "version: STSv1 mode: testing mx: mx1.example.test mx: mx2.example.test max_age: 86400",
			"manages this policy",
		}},
	} {
		text := s.chromiumText(t, page.name, page.url, page.origin)
		for _, w := range page.want {
			if !strings.Contains(text, w) {
				t.Fatalf("%s: no %q in the visible text:\n%s", page.name, w, text)
			}
		}
		s.ok(t, "%s: the visible text has %q", page.name, page.want)
	}
}

// dashboardRow is what the suite reads of a row of the dashboard's JSON.
type dashboardRow struct {
	Domain string `json:"domain"`
	Policy struct {
		State, Mode, ID string
	} `json:"policy"`
	Certificate *struct {
		NotAfter time.Time `json:"not_after"`
	} `json:"certificate"`
	TLSReports struct {
		Reports    int   `json:"reports"`
		Successful int64 `json:"successful_sessions"`
		Failed     int64 `json:"failed_sessions"`
	} `json:"tls_reports"`
	Readiness *struct {
		Ready bool `json:"ready"`
	} `json:"readiness"`
}

// dashboardClient is an HTTPS client that trusts only the root of Caddy's
// internal CA, which signs the dashboard's certificate.
func (s *suite) dashboardClient(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.path("caddy-storage", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no root certificate of Caddy's internal CA")
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true},
	}
}

// dashboardJSON fetches a page of the dashboard as JSON with the password,
// into v.
func (s *suite) dashboardJSON(t *testing.T, client *http.Client, at string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(dashboardUser, s.dashboardPassword)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", at, resp.Status, err)
	}
}

// chromiumFlags run Chromium headless as root in the namespace, with a
// profile in the work dir and as little of its own traffic as it allows.
// It does not trust Pebble's root or Caddy's internal CA; the suite's own
// clients check the certificates.
func (s *suite) chromiumFlags(name string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
		"--user-data-dir=" + s.path("chromium", "profile-"+name),
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-domain-reliability", "--no-pings",
		"--window-size=1280,900",
	}
}

// chromiumText opens target in headless Chromium twice: once for a
// screenshot, work/chromium/NAME.png, and once for the DOM, whose visible
// text it returns. Both times it checks in the net log that every
// request of the page went to origin, Caddy.
func (s *suite) chromiumText(t *testing.T, name, target, origin string) string {
	t.Helper()
	if err := os.MkdirAll(s.path("chromium"), 0o755); err != nil {
		t.Fatal(err)
	}
	shot := s.path("chromium", name+".png")
	s.runChromium(t, name+"-screenshot", origin, "--screenshot="+shot, target)
	if info, err := os.Stat(shot); err != nil || info.Size() == 0 {
		t.Fatalf("%s: no screenshot: %v", name, err)
	}
	dom := s.runChromium(t, name+"-dom", origin, "--dump-dom", target)
	s.ok(t, "%s: screenshot %s", name, shot)
	body := regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(dom, "")
	body = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(body)), " ")
}

// runChromium runs Chromium with args and the net log on, returns what it
// printed, and checks the page's requests in the net log.
func (s *suite) runChromium(t *testing.T, run, origin string, args ...string) string {
	t.Helper()
	netLog := s.path("chromium", run+".netlog.json")
	args = append(append(s.chromiumFlags(run), "--log-net-log="+netLog), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chromium", args...)
	cmd.Env = append(os.Environ(), "HOME="+s.path("chromium"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	s.appendLog(t, "chromium", fmt.Sprintf("chromium %s\n%s\n", strings.Join(args, " "), stderr.String()))
	if err != nil {
		t.Fatalf("chromium %s: %v; see %s", run, err, s.path("chromium.log"))
	}
	page, browser := pageRequests(t, netLog, origin)
	for _, u := range page {
		if !strings.HasPrefix(u, origin+"/") {
			t.Fatalf("%s: the page requested %s, which is not Caddy's %s", run, u, origin)
		}
	}
	s.ok(t, "%s: the page's requests, all to Caddy: %s; Chromium's own (not the page's, no route out of the namespace): %d",
		run, strings.Join(page, " "), len(browser))
	return string(out)
}

// pageRequests reads a Chromium net log and returns the URLs of the
// requests the page made (the main frame and whatever origin initiated)
// and of those Chromium made on its own behalf (update checks, sign-in),
// which have no initiator.
func pageRequests(t *testing.T, netLog, origin string) (page, browser []string) {
	t.Helper()
	data, err := os.ReadFile(netLog)
	if err != nil {
		t.Fatal(err)
	}
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL         string `json:"url"`
				Initiator   string `json:"initiator"`
				RequestType string `json:"request_type"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatalf("%s: %v", netLog, err)
	}
	start := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	for _, e := range log.Events {
		if e.Type != start || e.Params.URL == "" {
			continue
		}
		u := strings.TrimSuffix(e.Params.URL, " (credentials redacted)")
		if parsed, err := url.Parse(u); err == nil {
			parsed.User = nil
			u = parsed.String()
		}
		switch {
		case e.Params.RequestType == "main frame" || e.Params.Initiator == origin:
			if !slices.Contains(page, u) {
				page = append(page, u)
			}
		case e.Params.Initiator == "not an origin":
			browser = append(browser, u)
		default:
			t.Fatalf("%s: a request by %s: %s", netLog, e.Params.Initiator, u)
		}
	}
	if len(page) == 0 {
		t.Fatalf("%s: no request of the page", netLog)
	}
	return page, browser
}
