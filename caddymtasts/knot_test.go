package caddymtasts

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"
)

// knotConfig is Knot DNS as the provider's hidden primary, on a loopback
// port: a TSIG key that may update TXT records (and nothing else) in the
// zones, transfers to the secondaries on loopback, and NOTIFY to the one
// named. Changes made with knotc (testKnot.set) stand for an operator's.
var knotConfig = template.Must(template.New("knot.conf").Parse(`server:
    listen: {{.Addr}}
    rundir: "{{.Dir}}"
log:
  - target: stdout
    any: info
database:
    storage: "{{.Dir}}/db"
control:
    listen: "{{.Dir}}/knot.sock"
key:
  - id: {{.Key}}
    algorithm: hmac-sha256
    secret: {{.Secret}}
{{- if .Secondary}}
remote:
  - id: secondary
    address: {{.Secondary}}
{{- end}}
acl:
  - id: autopilot
    key: {{.Key}}
    action: update
    update-type: TXT
  - id: secondaries
    address: 127.0.0.0/8
    action: transfer
template:
  - id: default
    storage: "{{.Dir}}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
    acl: [autopilot, secondaries]
{{- if .Secondary}}
    notify: secondary
{{- end}}
zone:
{{- range .Zones}}
  - domain: {{.}}
{{- end}}
`))

// testKnot is a running knotd.
type testKnot struct {
	addr   string // host:port
	key    string // the TSIG key's name
	secret string // its secret, base64
	dir    string
}

// knotProgram returns the path of a program of Debian's package knot
// (knotd, knotc), or skips the test: tests do not install packages, and
// .ci/run installs knot before the Go tests.
func knotProgram(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skipf("%s not found (Debian's package knot): the tests against a real primary are skipped; .ci/run installs it", name)
	return ""
}

// startKnot runs knotd on addr ("host:port"; "" for a free loopback
// port) with zones (name: zone file text), telling the secondary at
// secondary ("host:port", or "" for none) of every change, until the test
// ends.
func startKnot(t *testing.T, addr string, zones map[string]string, secondary string) *testKnot {
	t.Helper()
	bin := knotProgram(t, "knotd")
	if addr == "" {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	k := &testKnot{
		addr:   addr,
		key:    "autopilot.provider.test.",
		secret: base64.StdEncoding.EncodeToString(raw),
		dir:    t.TempDir(),
	}
	var names []string
	for _, sub := range []string{"db", "zones"} {
		if err := os.Mkdir(filepath.Join(k.dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range zones {
		names = append(names, name)
		if err := os.WriteFile(filepath.Join(k.dir, "zones", name+".zone"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var conf bytes.Buffer
	host, port, _ := net.SplitHostPort(k.addr)
	secondaryAt := strings.Replace(secondary, ":", "@", 1)
	err := knotConfig.Execute(&conf, map[string]any{
		"Addr": host + "@" + port, "Dir": k.dir, "Key": k.key, "Secret": k.secret, "Secondary": secondaryAt, "Zones": names,
	})
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(k.dir, "knot.conf")
	if err := os.WriteFile(confFile, conf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", confFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := sync.OnceFunc(func() { cmd.Process.Kill(); <-exited })
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("knotd's output:\n%s", out.String())
		}
	})
	for _, name := range names {
		if err := k.waitForZone(name, exited); err != nil {
			stop()
			t.Fatalf("knotd on %s: %v\n%s", k.addr, err, out.String())
		}
	}
	return k
}

// waitForZone asks knotd for the SOA of zone until it answers with it,
// for 10 seconds at most, or until knotd exited.
func (k *testKnot) waitForZone(zone string, exited <-chan struct{}) error {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	c := &dns.Client{Net: "tcp", Timeout: 200 * time.Millisecond}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, _, err := c.Exchange(q, k.addr)
		if err == nil && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0 {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it served %s", zone)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SOA of %s: %v %v", zone, resp, err)
		}
	}
}

// knotc runs knotc against k's control socket: how an operator changes a
// zone on the primary.
func (k *testKnot) knotc(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(knotProgram(t, "knotc"), append([]string{"-s", filepath.Join(k.dir, "knot.sock")}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("knotc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// set replaces the TXT records at name in zone with txt, as an operator
// would, in one transaction: Knot raises the serial and notifies.
func (k *testKnot) set(t *testing.T, zone, name, txt string) {
	t.Helper()
	k.knotc(t, "zone-begin", zone)
	if len(k.txts(t, name)) > 0 {
		k.knotc(t, "zone-unset", zone, name, "TXT")
	}
	k.knotc(t, "zone-set", zone, name, "3600", "TXT", strconv.Quote(txt))
	k.knotc(t, "zone-commit", zone)
}

// txts returns the TXT records at name on the primary, each one's strings
// joined.
func (k *testKnot) txts(t *testing.T, name string) []string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	resp, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, k.addr)
	if err != nil {
		t.Fatalf("%s TXT at the primary: %v", name, err)
	}
	var found []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			found = append(found, strings.Join(txt.Txt, ""))
		}
	}
	return found
}
