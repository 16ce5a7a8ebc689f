package caddymtasts

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/coredns-mtasts/mtasts/policy"
)

// testCaddy is Caddy running in process, the way Caddyfile.example sets it
// up but with Caddy's internal CA: one catch-all HTTPS site with on-demand
// TLS, the permission module, and the handler followed by a handler that
// answers 418 so that passing requests on shows; /metrics has Caddy's
// metrics.
type testCaddy struct {
	addr    string // the HTTPS listener
	storage string // certificate storage
	roots   *x509.CertPool
}

// startCaddy starts Caddy with the handler and the permission module asking
// dnsAddr. permission holds extra options of the permission module. The
// certificate cache holds one certificate, so that a handshake for one name
// pushes the other out and the next handshake for it has to ask permission
// to load it from storage, as happens at scale with Caddy's default
// capacity of 10,000.
func startCaddy(t *testing.T, dnsAddr string, permission map[string]any) *testCaddy {
	t.Helper()
	c := &testCaddy{addr: freeAddr(t), storage: t.TempDir()}
	servers, tlsApp := c.policySite(dnsAddr, permission)
	c.run(t, c.config(t, map[string]any{"disabled": true}, servers, tlsApp))
	return c
}

// policySite returns the HTTP app's servers and the TLS app of the policy
// site that startCaddy runs.
func (c *testCaddy) policySite(dnsAddr string, permission map[string]any) (servers, tlsApp map[string]any) {
	perm := map[string]any{"module": "mta_sts", "servers": []string{dnsAddr}, "timeout": "1s"}
	for k, v := range permission {
		perm[k] = v
	}
	servers = map[string]any{"mta_sts": map[string]any{
		"listen": []string{c.addr},
		"routes": []any{
			map[string]any{
				"match":  []any{map[string]any{"path": []string{"/metrics"}}},
				"handle": []any{map[string]any{"handler": "metrics"}},
			},
			map[string]any{"handle": []any{
				map[string]any{"handler": "mta_sts", "servers": []string{dnsAddr}, "timeout": "1s"},
				map[string]any{"handler": "static_response", "status_code": http.StatusTeapot},
			}},
		},
		"tls_connection_policies": []any{map[string]any{}},
		"automatic_https":         map[string]any{"disable_redirects": true},
	}}
	tlsApp = map[string]any{
		"cache": map[string]any{"capacity": 1},
		"automation": map[string]any{
			"policies": []any{map[string]any{
				"issuers":   []any{map[string]any{"module": "internal"}},
				"on_demand": true,
			}},
			"on_demand": map[string]any{"permission": perm},
		},
	}
	return servers, tlsApp
}

// config is the JSON config of a test Caddy: the HTTP app's servers, with
// its HTTPS port that of c.addr, the TLS app tlsApp, the admin endpoint
// admin, the storage in c.storage, logs at ERROR and Caddy's internal CA,
// not installed into the system's trust store.
func (c *testCaddy) config(t *testing.T, admin, servers, tlsApp map[string]any) []byte {
	t.Helper()
	_, httpsPort, _ := net.SplitHostPort(c.addr)
	_, httpPort, _ := net.SplitHostPort(freeAddr(t))
	admin["config"] = map[string]any{"persist": false}
	config, err := json.Marshal(map[string]any{
		"admin":   admin,
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": c.storage},
		"apps": map[string]any{
			"http": map[string]any{"http_port": atoi(t, httpPort), "https_port": atoi(t, httpsPort), "servers": servers},
			"tls":  tlsApp,
			"pki": map[string]any{"certificate_authorities": map[string]any{
				"local": map[string]any{"install_trust": false},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// run runs config in this process's Caddy, until cleanup, and trusts the
// root of Caddy's internal CA.
func (c *testCaddy) run(t *testing.T, config []byte) {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if err := caddy.Load(config, true); err != nil {
		t.Fatalf("loading Caddy: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Error(err)
		}
	})
	c.loadRoots(t)
}

// loadRoots trusts the root of Caddy's internal CA, from the storage.
func (c *testCaddy) loadRoots(t *testing.T) {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(c.storage, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	c.roots = x509.NewCertPool()
	if !c.roots.AppendCertsFromPEM(root) {
		t.Fatal("no root certificate in Caddy's storage")
	}
}

// freeAddr returns a loopback address that nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// handshake completes a TLS handshake for serverName, verifying the
// certificate against Caddy's internal root, and returns the certificate.
func (c *testCaddy) handshake(serverName string) (*x509.Certificate, error) {
	dialer := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config:    &tls.Config{ServerName: serverName, RootCAs: c.roots},
	}
	conn, err := dialer.DialContext(context.Background(), "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// request sends one request for path on a fresh connection, with TLS
// server name serverName and the URL's host (and so the Host header) host.
func (c *testCaddy) request(t *testing.T, method, serverName, host, path string) response {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.do(t, serverName, req)
}

// do sends req on a fresh connection to Caddy, with TLS server name
// serverName, and reads the whole response.
func (c *testCaddy) do(t *testing.T, serverName string, req *http.Request) response {
	t.Helper()
	r, err := c.send(serverName, req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send is do for any goroutine: it returns the error.
func (c *testCaddy) send(serverName string, req *http.Request) (response, error) {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, c.addr)
		},
		TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: c.roots},
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport:     transport,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: body}, err
}

// get fetches the policy of the Policy Host host the way a sender does.
func (c *testCaddy) get(t *testing.T, host string) response {
	t.Helper()
	return c.request(t, http.MethodGet, host, host, policyPath)
}

// expectPolicy checks that r serves exactly body, as RFC 8461 §3.3 wants.
func expectPolicy(t *testing.T, r response, body []byte) {
	t.Helper()
	if r.status != http.StatusOK || !bytes.Equal(r.body, body) {
		t.Fatalf("got %d %q, want 200 %q", r.status, r.body, body)
	}
	for name, want := range map[string]string{
		"Content-Type":   "text/plain; charset=utf-8",
		"Content-Length": strconv.Itoa(len(body)),
		"Cache-Control":  "no-store",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// storedNames returns the names under which certificates are stored.
func (c *testCaddy) storedNames(t *testing.T) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(c.storage, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".crt") && strings.Contains(path, "certificates") {
			names = append(names, strings.TrimSuffix(d.Name(), ".crt"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// storageMentions reports whether any file or directory in the storage is
// named after name.
func (c *testCaddy) storageMentions(t *testing.T, name string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(c.storage, func(path string, d fs.DirEntry, err error) error {
		found = found || strings.Contains(strings.ToLower(d.Name()), name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestServePolicyMatchingID(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	for domain, mx := range map[string]string{
		"example.com":           "mx1.example.com",
		"example.net":           "mx1.example.net",
		"xn--bcher-kva.example": "mx1.xn--bcher-kva.example",
	} {
		r := c.get(t, "mta-sts."+domain)
		expectPolicy(t, r, expectedPolicy(t, mx).Encode())
		if got, want := policy.IDOf(r.body), d.stsID(t, domain); got != want {
			t.Errorf("%s: the body hashes to %s, DNS publishes id %s", domain, got, want)
		}
	}
}

func TestMetricsExposed(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	c.get(t, "mta-sts.example.com")
	metrics := c.request(t, http.MethodGet, "mta-sts.example.com", "mta-sts.example.com", "/metrics")
	for _, want := range []string{
		`caddy_mta_sts_policy_requests_total{outcome="served"}`,
		`caddy_mta_sts_permission_decisions_total{outcome="allowed"}`,
		`caddy_mta_sts_dns_lookup_duration_seconds_count{result="managed"}`,
	} {
		if !bytes.Contains(metrics.body, []byte(want)) {
			t.Errorf("no %s in /metrics", want)
		}
	}
}

func TestPolicyFollowsZoneChange(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	expectPolicy(t, c.get(t, "mta-sts.example.com"), expectedPolicy(t, "mx1.example.com").Encode())

	for serial, mx := range []string{"mx2", "mx3", "mx1"} {
		d.setMX(t, serial+2, mx)
		id := d.stsID(t, "example.com")
		r := c.get(t, "mta-sts.example.com")
		expectPolicy(t, r, expectedPolicy(t, mx+".example.com").Encode())
		if got := policy.IDOf(r.body); got != id {
			t.Errorf("after the change to %s the body hashes to %s, DNS publishes id %s", mx, got, id)
		}
	}
}

func TestHTTPSemantics(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	const sni = "mta-sts.example.com"
	body := expectedPolicy(t, "mx1.example.com").Encode()
	_, port, _ := net.SplitHostPort(c.addr)

	for _, host := range []string{
		"MTA-STS.EXAMPLE.COM",
		"mta-sts.example.com.",
		"mta-sts.example.com:" + port,
		"Mta-Sts.Example.Com.:" + port,
	} {
		expectPolicy(t, c.request(t, http.MethodGet, sni, host, policyPath), body)
	}
	// Go's client sends the IDN host as A-labels, like any client must.
	expectPolicy(t, c.request(t, http.MethodGet, "mta-sts.xn--bcher-kva.example", "mta-sts.bücher.example", policyPath),
		expectedPolicy(t, "mx1.xn--bcher-kva.example").Encode())

	head := c.request(t, http.MethodHead, sni, sni, policyPath)
	if head.status != http.StatusOK || len(head.body) != 0 ||
		head.header.Get("Content-Length") != strconv.Itoa(len(body)) ||
		head.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("HEAD: got %d %v %q", head.status, head.header, head.body)
	}

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		r := c.request(t, method, sni, sni, policyPath)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: got %d, Allow %q", method, r.status, r.header.Get("Allow"))
		}
	}

	// With the TLS server name of a managed domain, the Host header names
	// a host that is no policy host, or a domain that is not managed.
	for _, host := range []string{
		"www.example.com",
		"example.com",
		"127.0.0.1:" + port,
		"mta-sts.www.example.com",
		"mta-sts.child.example.com",
		"mta-sts.not-hosted.example",
	} {
		if r := c.request(t, http.MethodGet, sni, host, policyPath); r.status != http.StatusNotFound || len(r.body) != 0 {
			t.Errorf("host %s: got %d %q, want 404", host, r.status, r.body)
		}
	}
	if r := c.request(t, http.MethodGet, sni, "mta-sts.broken.example.com", policyPath); r.status != http.StatusServiceUnavailable ||
		r.header.Get("Retry-After") == "" || len(r.body) != 0 {
		t.Errorf("failing MX backend: got %d %v %q, want 503 with Retry-After", r.status, r.header, r.body)
	}

	// The site root is the public page (TestPublicPage).
	for _, path := range []string{"/index.html", "/.well-known/mta-sts.txt/", "/.well-known/MTA-STS.txt", "/mta-sts.txt"} {
		if r := c.request(t, http.MethodGet, sni, sni, path); r.status != http.StatusTeapot {
			t.Errorf("%s: got %d, want the next handler's 418", path, r.status)
		}
	}
}

func TestCertificatesOnlyForManagedDomains(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	for _, name := range []string{
		"mta-sts.not-hosted.example",
		"mta-sts.www.example.com",
		"www.example.com",
		"example.com",
		"mta-sts.broken.example.com",
	} {
		if _, err := c.handshake(name); err == nil {
			t.Errorf("%s: handshake succeeded", name)
		}
		if c.storageMentions(t, name) {
			t.Errorf("%s: written to certificate storage", name)
		}
	}
	if names := c.storedNames(t); len(names) != 0 {
		t.Fatalf("certificates stored before any allowed handshake: %v", names)
	}

	cert, err := c.handshake("mta-sts.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("mta-sts.example.com"); err != nil {
		t.Error(err)
	}
	if names := c.storedNames(t); len(names) != 1 || names[0] != "mta-sts.example.com" {
		t.Errorf("stored certificates %v, want the one for mta-sts.example.com", names)
	}
}

func TestDNSOutage(t *testing.T) {
	d := startDNS(t)
	// Asking DNS on every handshake that misses the certificate cache makes
	// the outage, not a remembered answer, decide.
	c := startCaddy(t, d.addr, map[string]any{"allow_ttl": 1, "deny_ttl": 1})
	first, err := c.handshake("mta-sts.example.com")
	if err != nil {
		t.Fatal(err)
	}
	// Pushes mta-sts.example.com's certificate out of the one-entry cache.
	if _, err := c.handshake("mta-sts.example.net"); err != nil {
		t.Fatal(err)
	}
	d.stop()

	staleBefore := total(t, permissionDecisions.WithLabelValues("allowed_stale"))
	again, err := c.handshake("mta-sts.example.com")
	if err != nil {
		t.Fatalf("a recently allowed name lost its certificate during the outage: %v", err)
	}
	if !again.Equal(first) {
		t.Errorf("got a new certificate, not the stored one")
	}
	if n := total(t, permissionDecisions.WithLabelValues("allowed_stale")) - staleBefore; n != 1 {
		t.Errorf("the permission module allowed %v names on stale knowledge, want 1", n)
	}
	r := c.request(t, http.MethodGet, "mta-sts.example.com", "mta-sts.example.com", policyPath)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != retryAfter || len(r.body) != 0 {
		t.Errorf("policy during the outage: got %d %v %q, want 503 with Retry-After", r.status, r.header, r.body)
	}

	// A managed domain never seen before gets nothing while DNS is down.
	if _, err := c.handshake("mta-sts.xn--bcher-kva.example"); err == nil {
		t.Error("a domain never allowed got a certificate during the outage")
	}
	if c.storageMentions(t, "xn--bcher-kva") {
		t.Error("a domain never allowed was written to storage during the outage")
	}
}
