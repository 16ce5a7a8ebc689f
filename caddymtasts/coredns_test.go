package caddymtasts

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// zoneTemplate is served, relative to each origin, for example.com,
// example.net, the IDN bücher.example and company-y.example (the domain of
// RFC 8460's example report). Its first verb is the SOA serial,
// the second the apex's MX host. Below w, without MX, and at self, which
// runs MTA-STS itself, the zone holds TXT records imitating a policy. The
// settings records of off, enforced and retiring make the first unmanaged,
// the second's policy enforce, with an extra mx pattern, and the third's
// policy mode none.
const zoneTemplate = `$TTL 3600
@        IN SOA ns1 hostmaster %d 7200 3600 1209600 300
@        IN NS  ns1
ns1      IN A   127.0.0.1
@        IN MX  10 %s
www      IN A   127.0.0.1
child    IN NS  ns.child
ns.child IN A   192.0.2.54
*.w           IN TXT "version: STSv1" "mode: enforce" "mx: evil.example" "max_age: 86400"
nomx          IN A   127.0.0.1
mta-sts.nomx  IN TXT "version: STSv1" "mode: enforce" "mx: evil.example" "max_age: 86400"
self          IN MX  10 mx1
_mta-sts.self IN TXT "v=STSv1; id=selfhosted1"
mta-sts.self  IN TXT "version: STSv1" "mode: enforce" "mx: evil.example" "max_age: 86400"
off               IN MX  10 mx1
_mta-sts.off      IN TXT "v=STSCFG1; off"
enforced          IN MX  10 mx1
_mta-sts.enforced IN TXT "v=STSCFG1; mode=enforce; mx=*.mail.example.net"
retiring          IN MX  10 mx1
_mta-sts.retiring IN TXT "v=STSCFG1; mode=none; max_age=86400"
`

// The Corefile of the provider's authoritative DNS: the mtasts plugin above
// the file plugin, and an MX backend that fails for broken.example.com.
const testCorefile = `example.com:{port} example.net:{port} xn--bcher-kva.example:{port} company-y.example:{port} {
	bind 127.0.0.1
	mtasts {
		policy_server 127.0.0.1
	}
	template IN MX broken.example.com {
		rcode SERVFAIL
	}
	file {zone} example.com example.net xn--bcher-kva.example company-y.example {
		reload 20ms
	}
}`

// testDNS is our CoreDNS serving testCorefile.
type testDNS struct {
	addr     string // TCP address
	zoneFile string
	stop     func() // stops the server; stopping it twice is harmless
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	d := &testDNS{zoneFile: filepath.Join(t.TempDir(), "zone")}
	d.writeZone(t, 1, "mx1")
	d.addr, d.stop = startCoreDNS(t, strings.ReplaceAll(testCorefile, "{zone}", d.zoneFile))
	return d
}

func (d *testDNS) writeZone(t *testing.T, serial int, mx string) {
	t.Helper()
	// Write then rename, so a reload never reads half a file.
	tmp := d.zoneFile + ".new"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, zoneTemplate, serial, mx), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.zoneFile); err != nil {
		t.Fatal(err)
	}
}

// setMX makes mx (relative to each origin) the apex MX host and waits until
// CoreDNS serves the id of the policy that follows for example.com.
func (d *testDNS) setMX(t *testing.T, serial int, mx string) {
	t.Helper()
	d.writeZone(t, serial, mx)
	want := expectedPolicy(t, mx+".example.com").ID()
	for deadline := time.Now().Add(5 * time.Second); d.stsID(t, "example.com") != want; {
		if time.Now().After(deadline) {
			t.Fatalf("CoreDNS did not pick up the zone with serial %d", serial)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stsID returns the id of the one _mta-sts record of domain, as a sender
// would read it.
func (d *testDNS) stsID(t *testing.T, domain string) string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("_mta-sts."+domain+".", dns.TypeTXT)
	resp, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, d.addr)
	if err != nil {
		t.Fatalf("_mta-sts.%s TXT: %v", domain, err)
	}
	var txts []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(txt.Txt, ""))
		}
	}
	rec, err := policy.SelectRecord(txts)
	if err != nil {
		t.Fatalf("_mta-sts.%s TXT: %v in\n%v", domain, err, resp)
	}
	return rec.ID
}

// expectedPolicy is the policy the plugin publishes, with its defaults, for
// a domain whose only MX host is mx.
func expectedPolicy(t *testing.T, mx string) policy.Policy {
	t.Helper()
	p, err := policy.New(policy.ModeTesting, []string{mx}, 604800)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// coredns is our cmd/coredns, built once per test binary by corednsBinary
// into a directory that TestMain removes.
var coredns struct {
	once       sync.Once
	dir, path  string
	buildError error
}

func TestMain(m *testing.M) {
	if config := os.Getenv(caddyProcessEnv); config != "" {
		runCaddyProcess(config)
	}
	code := m.Run()
	if coredns.dir != "" {
		os.RemoveAll(coredns.dir)
	}
	os.Exit(code)
}

// corednsBinary returns our CoreDNS, with every in-tree plugin and mtasts,
// built on first use. This module does not import the plugin, which would
// put CoreDNS into its module graph and so into every Caddy build with
// these modules: the go command builds it in the repository's root, where
// go.work (or, without it, the root module's replace directives) takes this
// checkout's plugin and policy package.
func corednsBinary(tb testing.TB) string {
	tb.Helper()
	coredns.once.Do(func() {
		if coredns.dir, coredns.buildError = os.MkdirTemp("", "caddymtasts-coredns-"); coredns.buildError != nil {
			return
		}
		coredns.path = filepath.Join(coredns.dir, "coredns")
		build := exec.Command("go", "build", "-o", coredns.path, "./cmd/coredns")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			coredns.buildError = fmt.Errorf("go build ./cmd/coredns: %w\n%s", err, out)
		}
	})
	if coredns.buildError != nil {
		tb.Fatal(coredns.buildError)
	}
	return coredns.path
}

// startCoreDNS runs our CoreDNS as a separate process with corefile, where
// {port} stands for a free loopback port, and waits until it answers. It
// returns the server's address and a function that stops it, which runs at
// cleanup too; stopping twice is harmless. A failed test logs the server's
// output.
func startCoreDNS(tb testing.TB, corefile string) (addr string, stop func()) {
	tb.Helper()
	port := strconv.Itoa(freePort(tb))
	conf := filepath.Join(tb.TempDir(), "Corefile")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(corefile, "{port}", port)), 0o644); err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(corednsBinary(tb), "-quiet", "-conf", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = sync.OnceFunc(func() { cmd.Process.Kill(); <-exited })
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("CoreDNS's output:\n%s", out.String())
		}
	})
	addr = net.JoinHostPort("127.0.0.1", port)
	if err := waitForDNS(addr, exited); err != nil {
		stop()
		tb.Fatalf("CoreDNS on %s: %v\n%s", addr, err, out.String())
	}
	return addr, stop
}

// waitForDNS asks the DNS server at addr over TCP until it answers anything,
// for 30 seconds at most, or until exited is closed.
func waitForDNS(addr string, exited <-chan struct{}) error {
	q := new(dns.Msg)
	q.SetQuestion(".", dns.TypeSOA)
	c := &dns.Client{Net: "tcp", Timeout: 200 * time.Millisecond}
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, _, err := c.Exchange(q, addr)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before it answered")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer: %w", err)
		}
	}
}

// freePort returns a loopback port that was free for both UDP and TCP.
func freePort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", u.LocalAddr().String())
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	tb.Fatal("no free port")
	return 0
}
