//go:build e2e

package e2e

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// roots is a pool holding only Pebble's root: the one trust anchor of our
// clients.
func (s *suite) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(s.pebbleCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", s.pebbleCA)
	}
	return pool
}

// fetch GETs the policy of host at port through our Caddy, on a connection
// of its own. With an empty at, host is resolved through our CoreDNS (the
// namespace's resolv.conf), as a sender would; otherwise it is dialed at
// that address. Long timeout: the first handshake for a name waits for
// the whole ACME order.
func (s *suite) fetch(t *testing.T, host string, port int, at string) (*http.Response, string, error) {
	t.Helper()
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: s.roots(t)},
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if at != "" {
				_, p, _ := net.SplitHostPort(addr)
				addr = net.JoinHostPort(at, p)
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	client := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	resp, err := client.Get(fmt.Sprintf("https://%s:%d/.well-known/mta-sts.txt", host, port))
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// mustFetch is fetch in a check: no HTTP answer fails it.
func (s *suite) mustFetch(t *testing.T, host string, port int, at string) (*http.Response, string) {
	t.Helper()
	resp, body, err := s.fetch(t, host, port, at)
	if err != nil {
		t.Fatalf("https://%s:%d: %v", host, port, err)
	}
	return resp, body
}

// handshake does a TLS handshake with SNI host at our Caddy on port 443,
// without DNS, and returns the server's certificate.
func (s *suite) handshake(t *testing.T, host string) (*x509.Certificate, error) {
	t.Helper()
	return s.handshakeAt(t, webAddr, host)
}

// handshakeAt does a TLS handshake with SNI host at addr, port 443.
func (s *suite) handshakeAt(t *testing.T, addr, host string) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", net.JoinHostPort(addr, "443"),
		&tls.Config{ServerName: host, RootCAs: s.roots(t)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// refused reports whether err is the server ending a TLS handshake with an
// alert: what Caddy does when it has no certificate it may use.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// expectRefused checks that Caddy refuses the handshake for host.
func (s *suite) expectRefused(t *testing.T, what, host string) {
	t.Helper()
	s.expectRefusedAt(t, what, webAddr, host)
}

// expectRefusedAt checks that the Caddy at addr refuses the handshake for
// host.
func (s *suite) expectRefusedAt(t *testing.T, what, addr, host string) {
	t.Helper()
	_, err := s.handshakeAt(t, addr, host)
	if !refused(err) {
		t.Fatalf("%s: want the handshake refused with an alert, got %v", what, err)
	}
	s.ok(t, "%s: refused (%v)", what, err)
}

// expectCertificate checks that Caddy completes the handshake for host with
// a certificate for it.
func (s *suite) expectCertificate(t *testing.T, what, host string) *x509.Certificate {
	t.Helper()
	return s.expectCertificateAt(t, what, webAddr, host)
}

// expectCertificateAt checks that the Caddy at addr completes the handshake
// for host with a certificate for it.
func (s *suite) expectCertificateAt(t *testing.T, what, addr, host string) *x509.Certificate {
	t.Helper()
	cert, err := s.handshakeAt(t, addr, host)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := cert.VerifyHostname(host); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	s.ok(t, "%s: certificate for %s", what, strings.Join(cert.DNSNames, ","))
	return cert
}

// pebbleOrders counts the new-order requests Pebble has received.
func (s *suite) pebbleOrders(t *testing.T) int {
	t.Helper()
	log, err := os.ReadFile(s.path("pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(log), "POST /order-plz")
}

// counts are the series of the counter name in Caddy's metrics, by the
// value of their one label.
func counts(t *testing.T, name string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	series := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{[a-z]+="([a-z_]+)"\} ([0-9]+)$`)
	found := map[string]string{}
	for _, m := range series.FindAllStringSubmatch(string(body), -1) {
		found[m[1]] = m[2]
	}
	return found
}

// permissionDecisions are the permission module's decision counts from
// Caddy's metrics, by outcome.
func permissionDecisions(t *testing.T) map[string]string {
	t.Helper()
	return counts(t, "caddy_mta_sts_permission_decisions_total")
}

// storedCerts are the names with a certificate from Pebble in Caddy's
// storage, sorted.
func (s *suite) storedCerts(t *testing.T) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(s.path("caddy-storage", "certificates"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return fs.SkipAll
		}
		// Caddy's internal CA signs the dashboard's certificate only.
		if err == nil && d.IsDir() && d.Name() == "local" {
			return fs.SkipDir
		}
		if err == nil && strings.HasSuffix(path, ".crt") {
			names = append(names, strings.TrimSuffix(d.Name(), ".crt"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

var stsQueryResult = regexp.MustCompile(`^\(<STSFetchResult\.(\w+): \d+>, (.*)\)$`)

// stsResult is what mta-sts-query found: Status VALID with the policy's
// id, mode, mx and max_age, or NONE, NOT_CHANGED, FETCH_ERROR alone.
type stsResult struct {
	Status, ID, Mode string
	MX               []string
	MaxAge           int
}

// String is the result on one line, the form the checks compare:
//
//	VALID id=ID mode=MODE mx=MX,MX max_age=N   or   NONE, NOT_CHANGED, FETCH_ERROR
func (r stsResult) String() string {
	if r.Status != "VALID" {
		return r.Status
	}
	return fmt.Sprintf("VALID id=%s mode=%s mx=%s max_age=%d", r.ID, r.Mode, strings.Join(r.MX, ","), r.MaxAge)
}

// stsValid is the line of a valid policy with the Corefile's max_age.
func stsValid(id, mode string, mx ...string) string {
	return stsResult{Status: "VALID", ID: id, Mode: mode, MX: mx, MaxAge: maxAge}.String()
}

// stsQuery runs Debian's postfix-mta-sts-resolver, the MTA-STS client a
// Postfix sender uses: mta-sts-query DOMAIN [KNOWN_ID], and returns its
// result on one line.
func (s *suite) stsQuery(t *testing.T, args ...string) string {
	t.Helper()
	return s.stsQueryVia(t, "", args...).String()
}

// stsQueryVia runs mta-sts-query with resolver as its resolver, or with
// the namespace's resolv.conf (our CoreDNS) if resolver is "". It resolves
// with c-ares, which reads /etc/resolv.conf only, so for another resolver it
// runs in a mount namespace of its own with another file mounted there. It
// fetches with aiohttp, whose default SSL context loads OpenSSL's default
// paths, so SSL_CERT_FILE makes Pebble's root its only trust anchor. It
// prints a Python tuple and exits 0 whatever happened.
func (s *suite) stsQueryVia(t *testing.T, resolver string, args ...string) stsResult {
	t.Helper()
	cmd := exec.Command("mta-sts-query", args...)
	if resolver != "" {
		conf := s.path("resolv.conf." + resolver)
		if err := os.WriteFile(conf, []byte("nameserver "+resolver+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command("sh", append([]string{"-c", `mount --bind "$0" /etc/resolv.conf && exec mta-sts-query "$@"`, conf}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	}
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+s.pebbleCA)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	line := strings.TrimSpace(string(out))
	s.appendLog(t, "mta-sts-query", fmt.Sprintf("mta-sts-query %s (resolver %s): %s\n%s",
		strings.Join(args, " "), cmp.Or(resolver, dnsAddr), line, stderr.String()))
	if err != nil {
		t.Fatalf("mta-sts-query %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	m := stsQueryResult.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected output of mta-sts-query: %s", line)
	}
	r := stsResult{Status: m[1]}
	if m[2] == "None" {
		return r
	}
	// ('ID', {'mx': [...], 'mode': ..., 'max_age': N, ...}): ids, modes and
	// host names hold no quotes or parentheses, so this is JSON then.
	var value [2]json.RawMessage
	var pol struct {
		Mode   string   `json:"mode"`
		MX     []string `json:"mx"`
		MaxAge int      `json:"max_age"`
	}
	jsonText := strings.NewReplacer("'", `"`, "(", "[", ")", "]").Replace(m[2])
	err = json.Unmarshal([]byte(jsonText), &value)
	if err == nil {
		err = errors.Join(json.Unmarshal(value[0], &r.ID), json.Unmarshal(value[1], &pol))
	}
	if err != nil {
		t.Fatalf("mta-sts-query's result %s: %v", m[2], err)
	}
	r.Mode, r.MX, r.MaxAge = pol.Mode, pol.MX, pol.MaxAge
	return r
}

// appendLog adds text to work/NAME.log.
func (s *suite) appendLog(t *testing.T, name, text string) {
	t.Helper()
	f, err := os.OpenFile(s.path(name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, text); err != nil {
		t.Fatal(err)
	}
}
