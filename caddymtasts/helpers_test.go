package caddymtasts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// runningHandler returns the policy handler of the Caddy startCaddy started.
func runningHandler(t *testing.T) *Handler {
	t.Helper()
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range app.(*caddyhttp.App).Servers["mta_sts"].Routes {
		for _, handler := range route.Handlers {
			if h, ok := handler.(*Handler); ok {
				return h
			}
		}
	}
	t.Fatal("no mta_sts handler in Caddy's config")
	return nil
}

// stopClock makes l's clock stand at at. It takes the lock l reads its
// clock under, so that requests served meanwhile see one clock or the other.
func stopClock(l *rateLog, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = func() time.Time { return at }
}

// The report receiver's fixtures: a Caddy with http.handlers.tlsrpt at
// https://reportHost/reportPath, run in this process or as a second one.
const (
	reportHost = "reports.provider.test"
	reportPath = "/v1/tlsrpt"
	// caddyProcessEnv names a Caddy config, a JSON file: set, the test
	// binary runs that Caddy instead of the tests (runCaddyProcess), a
	// second instance beside the one in the test's own process.
	caddyProcessEnv = "CADDYMTASTS_TEST_CADDY_CONFIG"
)

// reportCaddy is a Caddy with the report receiver, Caddy's internal CA and
// its admin endpoint on admin.
type reportCaddy struct {
	testCaddy
	admin string
}

// reportConfig is the config of a report Caddy asking dnsAddr, with the
// receiver's options receiver.
func (c *reportCaddy) reportConfig(t *testing.T, dnsAddr string, receiver map[string]any) []byte {
	t.Helper()
	handler := map[string]any{"handler": "tlsrpt", "servers": []string{dnsAddr}, "timeout": "1s"}
	maps.Copy(handler, receiver)
	servers := map[string]any{"reports": map[string]any{
		"listen": []string{c.addr},
		"routes": []any{
			map[string]any{
				"match":  []any{map[string]any{"host": []string{reportHost}, "path": []string{reportPath}}},
				"handle": []any{handler},
			},
			map[string]any{"handle": []any{map[string]any{"handler": "static_response", "status_code": http.StatusNotFound}}},
		},
		"automatic_https": map[string]any{"disable_redirects": true},
	}}
	tlsApp := map[string]any{"automation": map[string]any{"policies": []any{map[string]any{
		"subjects": []string{reportHost},
		"issuers":  []any{map[string]any{"module": "internal"}},
	}}}}
	return c.config(t, map[string]any{"listen": c.admin}, servers, tlsApp)
}

// newReportCaddy picks the addresses of a report Caddy with its storage
// at storage.
func newReportCaddy(t *testing.T, storage string) *reportCaddy {
	return &reportCaddy{testCaddy: testCaddy{addr: freeAddr(t), storage: storage}, admin: freeAddr(t)}
}

// startReportCaddy runs a report Caddy in this process.
func startReportCaddy(t *testing.T, dnsAddr, storage string, receiver map[string]any) *reportCaddy {
	t.Helper()
	c := newReportCaddy(t, storage)
	c.run(t, c.reportConfig(t, dnsAddr, receiver))
	c.waitForCertificate(t)
	return c
}

// startReportCaddyProcess runs a report Caddy as a process of its own: this
// test binary, which TestMain turns into Caddy (caddyProcessEnv).
func startReportCaddyProcess(t *testing.T, dnsAddr, storage string) *reportCaddy {
	t.Helper()
	c := newReportCaddy(t, storage)
	startCaddyProcess(t, c.reportConfig(t, dnsAddr, nil))
	c.loadRoots(t)
	c.waitForCertificate(t)
	return c
}

// startCaddyProcess runs Caddy with config as a process of its own, this
// test binary (caddyProcessEnv), until the test ends; a failed test logs
// its output.
func startCaddyProcess(t *testing.T, config []byte) {
	t.Helper()
	configFile := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(configFile, config, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), caddyProcessEnv+"="+configFile,
		"XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("the second Caddy's output:\n%s", out.String())
		}
	})
}

// runCaddyProcess runs the Caddy config in configFile until SIGINT or
// SIGTERM, then exits.
func runCaddyProcess(configFile string) {
	config, err := os.ReadFile(configFile)
	if err == nil {
		err = caddy.Load(config, true)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	caddy.Stop()
	os.Exit(0)
}

// waitForCertificate waits until Caddy serves the report host's
// certificate, which it obtains in the background when it starts.
func (c *reportCaddy) waitForCertificate(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := c.handshake(reportHost)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate for %s: %v", reportHost, err)
		}
	}
}

// reportRequest is a request posting body as contentType to the receiver.
func reportRequest(t *testing.T, method, contentType string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+reportHost+reportPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// post posts body as contentType to the receiver.
func (c *reportCaddy) post(t *testing.T, contentType string, body []byte) response {
	t.Helper()
	return c.do(t, reportHost, reportRequest(t, http.MethodPost, contentType, body))
}

// summaries reads the summaries of domain from the admin endpoint, query
// added to the URL.
func (c *reportCaddy) summaries(t *testing.T, domain, query string) summariesAnswer {
	t.Helper()
	resp, err := http.Get("http://" + c.admin + summaryRoute + domain + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer summariesAnswer
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s%s: %s %s", summaryRoute, domain, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	return answer
}

// testReport returns the report caddymtasts/tlsrpt/testdata/NAME.
func testReport(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("tlsrpt", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// webhookSecret is the secret of the test webhooks.
const webhookSecret = "test-secret-0123456789abcdef"

// webhookReceiver is an HTTPS receiver of the webhook, httptest's, whose
// certificate is in caFile. It checks each request as the README tells a
// receiver to, and answers with the statuses set in turn, then 200; while
// hang is open, it holds each request until the client gives up.
type webhookReceiver struct {
	*httptest.Server
	caFile string

	mu       sync.Mutex
	statuses []int
	hang     chan struct{}
	received []webhookRequest
}

// webhookRequest is a request the receiver got.
type webhookRequest struct {
	id   string
	body []byte
	err  error // what is wrong with it: no signature that verifies, ...
}

func startWebhookReceiver(t *testing.T, statuses ...int) *webhookReceiver {
	t.Helper()
	w := &webhookReceiver{statuses: statuses}
	w.Server = httptest.NewTLSServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.Close)
	w.caFile = filepath.Join(t.TempDir(), "webhook-ca.pem")
	if err := os.WriteFile(w.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *webhookReceiver) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = verifyWebhook(webhookSecret, r, body)
	}
	w.mu.Lock()
	w.received = append(w.received, webhookRequest{id: r.Header.Get("Webhook-Id"), body: body, err: err})
	status, hang := http.StatusOK, w.hang
	if len(w.statuses) > 0 {
		status, w.statuses = w.statuses[0], w.statuses[1:]
	}
	w.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}
	rw.WriteHeader(status)
}

// verifyWebhook checks a delivery as the README tells a receiver to: the
// signature over id.timestamp.body with the secret, and a timestamp within
// five minutes of now.
func verifyWebhook(secret string, r *http.Request, body []byte) error {
	id, timestamp := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Timestamp")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(r.Header.Get("Webhook-Signature")), []byte(want)) {
		return fmt.Errorf("signature %q, want %q", r.Header.Get("Webhook-Signature"), want)
	}
	sent, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || time.Since(time.Unix(sent, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q", timestamp)
	}
	var e struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.ID != id || r.Header.Get("Content-Type") != "application/json" {
		return fmt.Errorf("body %s with Webhook-Id %s, Content-Type %q", body, id, r.Header.Get("Content-Type"))
	}
	return nil
}

// requests returns the requests received so far.
func (w *webhookReceiver) requests() []webhookRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.received)
}

// webhookConfig is the JSON of a webhook posting to w.
func (w *webhookReceiver) webhookConfig(retryFor string) map[string]any {
	return map[string]any{"url": w.URL + "/hook", "secret": webhookSecret, "timeout": "2s", "retry_for": retryFor, "ca_file": w.caFile}
}

// expectPage checks that r is a page of the dashboard or the public page:
// 200, of contentType, not to be stored, allowed nothing but its inline
// style sheet.
func expectPage(t *testing.T, what string, r response, contentType string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", what, r.status, r.body)
	}
	for name, want := range map[string]string{
		"Content-Type":            contentType,
		"Cache-Control":           "no-store",
		"Content-Security-Policy": pageCSP,
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s: %s %q, want %q", what, name, got, want)
		}
	}
}

// visibleText is HTML without its style sheet and tags, and with runs of
// space as one.
func visibleText(html []byte) string {
	text := regexp.MustCompile(`(?s)<style>.*</style>`).ReplaceAll(html, nil)
	text = regexp.MustCompile(`<[^>]*>`).ReplaceAll(text, []byte(" "))
	return strings.Join(strings.Fields(string(text)), " ")
}
