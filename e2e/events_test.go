//go:build e2e

package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The provider's receiver of the mta_sts app's webhook: an HTTPS server in
// the suite's own process, inside the namespace, at the address
// provider.test gives hooksHost, with a certificate of the MX hosts' CA
// (the webhook's ca_file in the suite's Caddyfile).
const (
	hooksHost   = "hooks.provider.test"
	hooksAddr   = "127.0.0.70:10443" // a port no Caddy of the suite listens on
	hooksURL    = "https://" + hooksHost + ":10443/mta-sts"
	hooksSecret = "e2e-webhook-secret-3f1c9a"
)

// hookReceiver keeps what the webhook posted, each request checked as the
// README tells a receiver to.
type hookReceiver struct {
	*http.Server

	mu         sync.Mutex
	deliveries []hookDelivery
}

// hookDelivery is a request the receiver got: the headers, the body, the
// event in it, and what was wrong with it, if anything.
type hookDelivery struct {
	id, timestamp, signature string
	body                     []byte
	event                    hookEvent
	err                      error
}

// hookEvent is what the suite reads of an event.
type hookEvent struct {
	ID       string     `json:"id"`
	Type     string     `json:"type"`
	Domain   string     `json:"domain"`
	Host     string     `json:"host"`
	Severity string     `json:"severity"`
	Problem  string     `json:"problem"`
	Reason   string     `json:"reason"` // promoted, demoted
	Before   *hookState `json:"before"`
	After    *hookState `json:"after"`
	Added    []string   `json:"mx_added"`
	Removed  []string   `json:"mx_removed"`
}

// hookState is a policy (policy_changed), a host's state (mx_tls_*), or
// a mode and settings record (promoted, demoted).
type hookState struct {
	PolicyID string   `json:"policy_id"`
	MX       []string `json:"mx"`
	State    string   `json:"state"`
	Mode     string   `json:"mode"`
	Record   string   `json:"settings_record"`
}

func startHookReceiver(t *testing.T, s *suite) {
	now := time.Now()
	r := &hookReceiver{}
	r.Server = &http.Server{
		Handler:   http.HandlerFunc(r.serve),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.mxCA.issue(t, hooksHost, now.Add(-time.Hour), now.Add(23*time.Hour))}},
	}
	l, err := net.Listen("tcp", hooksAddr)
	if err != nil {
		t.Fatal(err)
	}
	go r.ServeTLS(l, "", "")
	s.hooks = r
	s.ok(t, "listening on %s with a certificate of the MX hosts' CA for %s", hooksAddr, hooksHost)
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	d := hookDelivery{
		id:        req.Header.Get("Webhook-Id"),
		timestamp: req.Header.Get("Webhook-Timestamp"),
		signature: req.Header.Get("Webhook-Signature"),
	}
	d.body, d.err = io.ReadAll(req.Body)
	if d.err == nil {
		d.err = d.verify(req)
	}
	r.mu.Lock()
	r.deliveries = append(r.deliveries, d)
	r.mu.Unlock()
	if d.err != nil {
		http.Error(w, d.err.Error(), http.StatusBadRequest)
	}
}

// verify checks the signature and the timestamp, and reads the event.
func (d *hookDelivery) verify(req *http.Request) error {
	mac := hmac.New(sha256.New, []byte(hooksSecret))
	mac.Write([]byte(d.id + "." + d.timestamp + "."))
	mac.Write(d.body)
	if !hmac.Equal([]byte(d.signature), []byte("v1="+hex.EncodeToString(mac.Sum(nil)))) {
		return fmt.Errorf("signature %q does not verify", d.signature)
	}
	sent, err := strconv.ParseInt(d.timestamp, 10, 64)
	if err != nil || time.Since(time.Unix(sent, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q", d.timestamp)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/mta-sts" || req.Header.Get("Content-Type") != "application/json" {
		return fmt.Errorf("%s %s, Content-Type %q", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
	}
	if err := json.Unmarshal(d.body, &d.event); err != nil || d.event.ID != d.id {
		return fmt.Errorf("event %s with Webhook-Id %s: %v", d.body, d.id, err)
	}
	return nil
}

// delivered returns the deliveries of events of type about domain.
func (r *hookReceiver) delivered(typ, domain string) []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []hookDelivery
	for _, d := range r.deliveries {
		if d.err == nil && d.event.Type == typ && d.event.Domain == domain {
			found = append(found, d)
		}
	}
	return found
}

// waitForDelivery returns the first delivery of an event of type about
// domain, waiting for it.
func (s *suite) waitForDelivery(t *testing.T, typ, domain string) hookDelivery {
	t.Helper()
	var found []hookDelivery
	s.waitUntil(t, "caddy", 20*time.Second, func() error {
		if found = s.hooks.delivered(typ, domain); len(found) == 0 {
			return fmt.Errorf("no %s of %s among %d deliveries", typ, domain, len(s.hooks.all()))
		}
		return nil
	})
	return found[0]
}

// all returns every delivery so far.
func (r *hookReceiver) all() []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookDelivery(nil), r.deliveries...)
}

// testEvents reads the events of example.test: the live MX change of the
// step before (mx2.example.test replaced by mx3.example.test) is one
// policy_changed event, posted to the provider's receiver with a signature
// that verifies, in Go and with the README's openssl recipe; the expired
// certificate of mx2.example.test in the readiness step was an
// mx_tls_problem of severity failure, and mx1.example.test's, which
// expires within a day, one of severity warning. signed.test's change of the step before is posted too.
// The admin endpoint and the dashboard's page of example.test list
// example.test's three events.
func testEvents(t *testing.T, s *suite) {
	changed := s.waitForDelivery(t, "policy_changed", "example.test")
	e := changed.event
	s.ok(t, "policy_changed of example.test posted to %s, id %s; the signature verifies", hooksURL, e.ID)
	s.expect(t, "the policy before", fmt.Sprint(e.Before.MX), "[mx1.example.test mx2.example.test]")
	s.expect(t, "the policy after", fmt.Sprint(e.After.MX), "[mx1.example.test mx3.example.test]")
	s.expect(t, "its id after: the id DNS publishes", e.After.PolicyID, stsID(t, "example.test"))
	s.expect(t, "MX hosts added and removed", fmt.Sprint(e.Added, e.Removed), "[mx3.example.test] [mx2.example.test]")
	s.expect(t, "the README's openssl recipe verifies the signature", s.opensslVerifies(t, changed), "verified")

	problems := map[string]hookEvent{}
	var lines []string
	for _, d := range s.hooks.delivered("mx_tls_problem", "example.test") {
		problems[d.event.Host] = d.event
		lines = append(lines, d.event.Host+" "+d.event.Severity)
	}
	slices.Sort(lines)
	s.expect(t, "mx_tls_problem events of example.test posted: hosts, severities", strings.Join(lines, ", "),
		"mx1.example.test warning, mx2.example.test failure")
	s.expect(t, "what a sender sees at mx1 (its certificate expires within warn_days)", strings.HasPrefix(problems["mx1.example.test"].Problem, "certificate expires within a day, at "), true)
	s.expect(t, "what a sender sees at mx2", strings.HasPrefix(problems["mx2.example.test"].Problem, "certificate expired at "), true)

	signed := s.waitForDelivery(t, "policy_changed", "signed.test")
	s.expect(t, "policy_changed of signed.test posted too: the mx after", fmt.Sprint(signed.event.After.MX), "[mx.signed.test mx2.signed.test]")

	ids := map[string]int{}
	for _, d := range s.hooks.all() {
		if d.err != nil {
			t.Fatalf("a delivery that does not verify: %v", d.err)
		}
		ids[d.id]++
	}
	s.expect(t, "each event posted once", fmt.Sprint(ids[e.ID], ids[problems["mx1.example.test"].ID], ids[problems["mx2.example.test"].ID]), "1 1 1")

	var answer struct {
		Domain string      `json:"domain"`
		Events []hookEvent `json:"events"`
	}
	getJSON(t, "http://"+adminAddr+"/mta-sts/events/example.test", &answer)
	var listed []string
	for _, ev := range answer.Events {
		listed = append(listed, ev.Type+" "+ev.ID)
	}
	s.expect(t, "the events of example.test on the admin endpoint, oldest first", strings.Join(listed[len(listed)-1:], ""), "policy_changed "+e.ID)
	slices.Sort(listed)
	s.expect(t, "all of them", strings.Join(listed, ", "), "mx_tls_problem "+min(problems["mx1.example.test"].ID, problems["mx2.example.test"].ID)+
		", mx_tls_problem "+max(problems["mx1.example.test"].ID, problems["mx2.example.test"].ID)+", policy_changed "+e.ID)
	var page struct {
		Events []hookEvent `json:"events"`
	}
	s.dashboardJSON(t, s.dashboardClient(t), fmt.Sprintf("https://%s:%d/domain/example.test?format=json", dashboardHost, dashboardPort), &page)
	var shown []string
	for _, ev := range page.Events {
		shown = append(shown, ev.Type+" "+ev.ID)
	}
	slices.Sort(shown)
	s.expect(t, "the events on the dashboard's page of example.test (its JSON)", strings.Join(shown, ", "), strings.Join(listed, ", "))
	types := counts(t, "caddy_mta_sts_events_total")
	s.expect(t, "caddy_mta_sts_events_total{type=policy_changed}: example.test, signed.test", types["policy_changed"], "2")
	s.expect(t, "caddy_mta_sts_webhook_deliveries_total has delivered ones", counts(t, "caddy_mta_sts_webhook_deliveries_total")["delivered"] != "", true)
}

// opensslVerifies runs the README's shell recipe on a delivery: openssl
// computes the HMAC of id.timestamp.body with the secret.
func (s *suite) opensslVerifies(t *testing.T, d hookDelivery) string {
	t.Helper()
	body := s.path("body.json")
	if err := os.WriteFile(body, d.body, 0o644); err != nil {
		t.Fatal(err)
	}
	const recipe = `expected="v1=$(printf '%s.%s.' "$WEBHOOK_ID" "$WEBHOOK_TIMESTAMP" | cat - body.json |
	openssl dgst -sha256 -hmac "$MTA_STS_WEBHOOK_SECRET" -r | cut -d' ' -f1)"
[ "$expected" = "$WEBHOOK_SIGNATURE" ] && echo verified`
	cmd := exec.Command("sh", "-c", recipe)
	cmd.Dir = s.work
	cmd.Env = append(os.Environ(), "WEBHOOK_ID="+d.id, "WEBHOOK_TIMESTAMP="+d.timestamp, "WEBHOOK_SIGNATURE="+d.signature,
		"MTA_STS_WEBHOOK_SECRET="+hooksSecret)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// getJSON GETs url and decodes its JSON answer into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
