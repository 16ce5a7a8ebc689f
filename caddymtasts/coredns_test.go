package caddymtasts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corecaddy "github.com/coredns/caddy"
	coretest "github.com/coredns/coredns/test"
	"github.com/miekg/dns"

	_ "github.com/coredns-mtasts/mtasts" // the CoreDNS plugin mtasts; it adds itself to CoreDNS's directives
	"github.com/coredns-mtasts/mtasts/policy"
)

// zoneTemplate is served, relative to each origin, for example.com,
// example.net and the IDN bücher.example. Its first verb is the SOA serial,
// the second the apex's MX host. Below w, without MX, and at self, which
// runs MTA-STS itself, the zone holds TXT records imitating a policy.
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
`

// The Corefile of the provider's authoritative DNS: the mtasts plugin above
// the file plugin, and an MX backend that fails for broken.example.com.
const testCorefile = `example.com:0 example.net:0 xn--bcher-kva.example:0 {
	bind 127.0.0.1
	mtasts {
		policy_server 127.0.0.1
	}
	template IN MX broken.example.com {
		rcode SERVFAIL
	}
	file {zone} example.com example.net xn--bcher-kva.example {
		reload 20ms
	}
}`

// testDNS is an in-process CoreDNS serving testCorefile.
type testDNS struct {
	addr     string // TCP address
	zoneFile string
	instance *corecaddy.Instance
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	d := &testDNS{zoneFile: filepath.Join(t.TempDir(), "zone")}
	d.writeZone(t, 1, "mx1")
	instance, _, tcp, err := coretest.CoreDNSServerAndPorts(strings.ReplaceAll(testCorefile, "{zone}", d.zoneFile))
	if err != nil {
		t.Fatalf("starting CoreDNS: %v", err)
	}
	d.addr, d.instance = tcp, instance
	t.Cleanup(d.stop)
	return d
}

// stop stops the server; stopping it twice is harmless.
func (d *testDNS) stop() {
	if d.instance != nil {
		d.instance.Stop()
		d.instance = nil
	}
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
