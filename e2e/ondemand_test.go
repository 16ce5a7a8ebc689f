//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func startPebble(t *testing.T, s *suite) {
	// No random validation sleeps, no rejected nonces: fast and deterministic.
	s.startPebbleWith(t, pebbleConfig{ACME: pebbleACME, Admin: pebbleAdmin, OrderRetryAfter: 1},
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, dnsAddr)
}

// pebbleConfig is what pebble.json.tmpl refers to.
type pebbleConfig struct {
	ACME, Admin string // listen addresses: the ACME directory, the management port
	PebbleDir   string
	// Seconds a client is told to wait after it finalizes an order before
	// it asks for the certificate (Retry-After): Pebble's one fixed delay.
	OrderRetryAfter int
}

// startPebbleWith starts Pebble, which resolves the names it validates at
// dnsServer, and makes the root of what it issues the clients' only trust
// anchor.
func (s *suite) startPebbleWith(t *testing.T, cfg pebbleConfig, env []string, dnsServer string) {
	t.Helper()
	cfg.PebbleDir = s.pebbleDir
	render(t, templates, "pebble.json.tmpl", cfg, s.path("pebble.json"))
	s.start(t, "pebble", env, s.bin+"/pebble", "-config", s.path("pebble.json"), "-dnsserver", dnsServer+":53")
	minica, err := os.ReadFile(s.pebbleDir + "/test/certs/pebble.minica.pem")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	api := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	get := func(url string) ([]byte, error) {
		resp, err := api.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", url, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	s.waitUntil(t, "pebble", 20*time.Second, func() error {
		_, err := get("https://" + cfg.ACME + "/dir")
		return err
	})
	// The root of the certificates Pebble issues is new on every start; it
	// is the only trust anchor of our clients.
	root, err := get("https://" + cfg.Admin + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	s.pebbleCA = s.path("pebble-root.pem")
	if err := os.WriteFile(s.pebbleCA, root, 0o644); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(root)
	if block == nil {
		t.Fatalf("no PEM from Pebble's /roots/0: %q", root)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s.ok(t, "root: %s", cert.Subject.CommonName)
}

// startCaddy starts a Caddy with the given Caddyfile and waits for its HTTPS
// port.
func (s *suite) startCaddy(t *testing.T, name, caddyfile string, httpsPort int) {
	t.Helper()
	s.startCaddyAt(t, name, caddyfile, webAddr, httpsPort)
}

// startCaddyAt starts a Caddy with the given Caddyfile and waits for its
// HTTPS port at addr.
func (s *suite) startCaddyAt(t *testing.T, name, caddyfile, addr string, httpsPort int) {
	t.Helper()
	home := s.path(name + "-home")
	s.start(t, name, []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home,
		"MTA_STS_WEBHOOK_SECRET=" + hooksSecret, "MTA_STS_TSIG_SECRET=" + s.tsigSecret},
		s.bin+"/caddy", "run", "--config", s.path(caddyfile), "--adapter", "caddyfile")
	s.waitUntil(t, name, 20*time.Second, func() error {
		c, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(httpsPort)))
		if err == nil {
			c.Close()
		}
		return err
	})
	s.ok(t, "%s listening on %s:%d", name, addr, httpsPort)
}

func startCaddy(t *testing.T, s *suite) {
	s.startCaddy(t, "caddy", "Caddyfile", 443)
	// The report site is a normal one: Caddy orders its certificate when
	// it starts, in the background. Waiting for it keeps the orders the
	// next steps count their own.
	var cert *x509.Certificate
	s.waitUntil(t, "caddy", 30*time.Second, func() (err error) {
		cert, err = s.handshake(t, reportHost)
		return err
	})
	s.ok(t, "the report site's certificate, for %s", strings.Join(cert.DNSNames, ","))
}

// hostedCerts are the certificates Caddy's storage holds once the suite
// has fetched every policy it serves, sorted.
const hostedCerts = "mta-sts.example.test mta-sts.signed.test mta-sts.sub.example.test " + reportHost

var challengeType = regexp.MustCompile(`"challenge_type":"([a-z0-9-]+)"`)

func testFirstRequest(t *testing.T, s *suite) {
	before := s.pebbleOrders(t)
	s.expect(t, "certificates in caddy storage before", s.storedCerts(t), reportHost)
	resp, body := s.mustFetch(t, "mta-sts.example.test", 443, "")
	s.expect(t, "status", resp.StatusCode, http.StatusOK)
	s.expect(t, "Content-Type", resp.Header.Get("Content-Type"), "text/plain; charset=utf-8")
	s.expect(t, "Cache-Control", resp.Header.Get("Cache-Control"), "no-store")
	s.expect(t, "body is the policy, byte for byte (CRLF)", body, policyBody("testing", "mx1.example.test", "mx2.example.test"))
	s.expect(t, "id of the body = _mta-sts id", idOf(body), stsID(t, "example.test"))
	s.expect(t, "ACME orders for it", s.pebbleOrders(t)-before, 1)
	s.expect(t, "certificates in caddy storage", s.storedCerts(t), "mta-sts.example.test "+reportHost)
	cert := s.expectCertificate(t, "served certificate", "mta-sts.example.test")
	if !strings.HasPrefix(cert.Issuer.CommonName, "Pebble Intermediate") {
		t.Fatalf("served certificate issued by %s", cert.Issuer)
	}
	s.ok(t, "issued by %s", cert.Issuer.CommonName)
	// CertMagic picks HTTP-01 (port 80) or TLS-ALPN-01 (port 443); both work.
	log, err := os.ReadFile(s.path("caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for _, m := range challengeType.FindAllStringSubmatch(string(log), -1) {
		used = append(used, m[1])
	}
	if len(used) == 0 {
		t.Fatal("caddy.log names no ACME challenge")
	}
	slices.Sort(used)
	s.ok(t, "ACME challenge used: %s", strings.Join(slices.Compact(used), " "))
}

func testSTSQuery(t *testing.T, s *suite) {
	s.expect(t, "mta-sts-query example.test", s.stsQuery(t, "example.test"),
		stsValid(stsID(t, "example.test"), "testing", "mx1.example.test", "mx2.example.test"))
	s.expect(t, "mta-sts-query sub.example.test", s.stsQuery(t, "sub.example.test"),
		stsValid(stsID(t, "sub.example.test"), "testing", "mail.sub.example.test"))
	s.expect(t, "mta-sts-query signed.test", s.stsQuery(t, "signed.test"),
		stsValid(stsID(t, "signed.test"), "enforce", "mx.signed.test"))
	s.expect(t, "mta-sts-query example.test with the current id", s.stsQuery(t, "example.test", stsID(t, "example.test")), "NOT_CHANGED")
	s.expect(t, "mta-sts-query nomail.test", s.stsQuery(t, "nomail.test"), "NONE")
	// The owner's record is found, but its policy is not ours to serve.
	s.expect(t, "mta-sts-query owner.test", s.stsQuery(t, "owner.test"), "FETCH_ERROR")
	s.expect(t, "ACME orders so far (the report site, example.test, sub.example.test, signed.test)", s.pebbleOrders(t), 4)
	s.expect(t, "certificates in caddy storage", s.storedCerts(t), hostedCerts)
}
