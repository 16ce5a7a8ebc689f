package mtasts

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/file"
	coretest "github.com/coredns/coredns/test"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// exampleZone is the zone most tests serve with the file plugin behind mtasts.
const exampleZone = `$ORIGIN example.com.
$TTL 3600
@         IN SOA  ns1 hostmaster %d 7200 3600 1209600 300
@         IN NS   ns1
ns1       IN A    192.0.2.53
%s
mx1       IN A    192.0.2.25
sub    60 IN MX   10 mail.sub
www       IN A    192.0.2.80
nullmx    IN MX   0 .
nomx      IN A    192.0.2.1
alias     IN CNAME example.com.
child     IN NS   ns.child
ns.child  IN A    192.0.2.54
owner     IN MX   10 mx.owner.example.
_mta-sts.owner IN TXT "v=STSv1; id=ownerpolicy1"
mta-sts.owner  IN A   198.51.100.1
*.wild    IN MX   10 mx.wild.example.net.
badmx     IN MX   10 mx_1.example.com.
notes     IN MX   10 mx1
_mta-sts.notes IN TXT "site-verification=abc"
reports   IN MX   10 mx1
delegated IN MX   10 mx1
_mta-sts.delegated IN NS ns.policy-host.example.
cnamed    IN MX   10 mx1
_mta-sts.cnamed IN CNAME _mta-sts.policy-host.example.
_smtp._tls.reports IN TXT "v=TLSRPTv1; rua=mailto:own@reports.example.com"
`

// dnsServer is a CoreDNS instance started in process from a Corefile.
type dnsServer struct {
	udp, tcp string
}

// startCoreDNS starts CoreDNS with corefile, in which {dir} stands for a
// temporary directory holding the given files.
func startCoreDNS(t testing.TB, corefile string, files map[string]string) *dnsServer {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	corefile = strings.ReplaceAll(corefile, "{dir}", dir)
	i, udp, tcp, err := coretest.CoreDNSServerAndPorts(corefile)
	if err != nil {
		t.Fatalf("starting CoreDNS: %v\n%s", err, corefile)
	}
	t.Cleanup(func() { i.Stop() })
	return &dnsServer{udp: udp, tcp: tcp}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	// Write then rename, so a reloading server never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// exchange sends one query over network ("udp" or "tcp").
func (s *dnsServer) exchange(t testing.TB, network, name string, qtype uint16, do bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if do {
		m.SetEdns0(4096, true)
	}
	return s.send(t, network, m)
}

// send sends the query m over network ("udp" or "tcp") and returns the answer.
func (s *dnsServer) send(t testing.TB, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	addr := s.udp
	if network == "tcp" {
		addr = s.tcp
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		q := m.Question[0]
		t.Fatalf("%s %s over %s: %v", q.Name, dns.TypeToString[q.Qtype], network, err)
	}
	return resp
}

func (s *dnsServer) query(t testing.TB, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return s.exchange(t, "udp", name, qtype, false)
}

// stsID returns the id in the single _mta-sts record at name, failing the test
// if the answer is not exactly one valid record.
func (s *dnsServer) stsID(t testing.TB, name string) string {
	t.Helper()
	resp := s.query(t, name, dns.TypeTXT)
	txts := txtStrings(t, resp, name)
	if len(txts) != 1 {
		t.Fatalf("%s TXT: want one record, got %v", name, resp)
	}
	rec, err := policy.ParseRecord(strings.Join(txts[0], ""))
	if err != nil {
		t.Fatalf("%s TXT: %v", name, err)
	}
	return rec.ID
}

// txtStrings returns the strings of each TXT record in an authoritative
// NOERROR answer, all owned by name.
func txtStrings(t testing.TB, resp *dns.Msg, name string) [][]string {
	t.Helper()
	if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative {
		t.Fatalf("%s: want an authoritative NOERROR answer, got\n%v", name, resp)
	}
	var txts [][]string
	for _, rr := range resp.Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok || txt.Hdr.Name != name {
			t.Fatalf("%s: unexpected record %v", name, rr)
		}
		txts = append(txts, txt.Txt)
	}
	return txts
}

// expectedID is the id of the testing-mode, one-week policy for these MX hosts.
func expectedID(t testing.TB, hosts ...string) string {
	t.Helper()
	p, err := policy.New(policy.ModeTesting, hosts, 604800)
	if err != nil {
		t.Fatal(err)
	}
	return p.ID()
}

// exampleApexMX is the apex's MX set: in mixed case and with a duplicate,
// which must not matter.
const exampleApexMX = `@ IN MX 10 mx1
@ IN MX 20 MX2.example.com.
@ IN MX 20 mx2.example.com.`

func zoneWithSerial(serial int) string { return exampleZoneWith(serial, exampleApexMX) }

func exampleZoneWith(serial int, apexMX string) string {
	return fmt.Sprintf(exampleZone, serial, apexMX)
}

// basicCorefile serves the example zone with the file plugin behind mtasts.
const basicCorefile = `example.com:0 {
	bind 127.0.0.1
	mtasts {
		policy_server 192.0.2.10 192.0.2.11 2001:db8::10
		tlsrpt mailto:tlsrpt+{domain}@provider.example https://reports.provider.example/v1/{domain}
	}
	file {dir}/example.com.zone {
		reload 50ms
	}
}`

func startExample(t testing.TB) *dnsServer {
	t.Helper()
	return startCoreDNS(t, basicCorefile, map[string]string{"example.com.zone": zoneWithSerial(1)})
}

// settingsRecords are mail domains of the example zone, each with the MX
// host mx1.example.com and settings records at _mta-sts: one per key, keys
// combined (with spaces and a tab around the delimiters, over two strings,
// beside another TXT record), the autopilot's record,
// settings stating the defaults, invalid records, two records, an owner's
// v=STSv1 record beside settings, and off.
var settingsRecords = `s-enforce            IN MX  10 mx1
_mta-sts.s-enforce   IN TXT "v=STSCFG1; mode=enforce"
s-none               IN MX  10 mx1
_mta-sts.s-none      IN TXT "v=STSCFG1; mode=none"
s-maxage             IN MX  10 mx1
_mta-sts.s-maxage    IN TXT "v=STSCFG1; max_age=86400"
s-mx                 IN MX  10 mx1
_mta-sts.s-mx        IN TXT "v=STSCFG1; mx=mail.new.example; mx=*.mail.protection.outlook.com; mx=MX1.example.com"
s-all                IN MX  10 mx1
_mta-sts.s-all       IN TXT "v=STSCFG1 ;	mode=enforce ; max_age=12" "09600; mx=mx9.example.net ;"
_mta-sts.s-all       IN TXT "site-verification=abc"
s-autopilot          IN MX  10 mx1
_mta-sts.s-autopilot IN TXT "v=STSCFG1; mode=enforce; by=autopilot"
s-defaults           IN MX  10 mx1
_mta-sts.s-defaults  IN TXT "v=STSCFG1; mode=testing; max_age=604800; mx=mx1.example.com"
s-invalid            IN MX  10 mx1
_mta-sts.s-invalid   IN TXT "v=STSCFG1; mode=enforce; colour=blue"
s-two                IN MX  10 mx1
_mta-sts.s-two       IN TXT "v=STSCFG1; mode=enforce"
_mta-sts.s-two       IN TXT "v=STSCFG1; max_age=86400"
s-longline           IN MX  10 mx1
_mta-sts.s-longline  IN TXT "v=STSCFG1; mode=enforce; mx=*.` + mxHost(0, 47, 3) + `"
s-owner              IN MX  10 mx1
_mta-sts.s-owner     IN TXT "v=STSv1; id=ownerpolicy2"
_mta-sts.s-owner     IN TXT "v=STSCFG1; mode=enforce"
s-off                IN MX  10 mx1
_mta-sts.s-off       IN TXT "v=STSCFG1; off"
mta-sts.s-off        IN A   198.51.100.7
`

// settingsZone is the example zone with settingsRecords.
func settingsZone(serial int) string {
	return exampleZoneWith(serial, exampleApexMX+"\n"+settingsRecords)
}

// newExampleMTASTS returns the plugin with the file plugin behind it,
// serving the example zone, MX targets the plugin refuses
// (invalidMXRecords) and settings records (settingsRecords), with an IPv4
// and an IPv6 policy server and a TLS-RPT template: the fixture of
// FuzzServeDNS and of the ServeDNS unit tests.
func newExampleMTASTS(tb testing.TB) *MTASTS {
	tb.Helper()
	zone, err := file.Parse(strings.NewReader(exampleZoneWith(1, exampleApexMX+"\n"+invalidMXRecords+"\n"+settingsRecords)), "example.com.", "example.com.zone", 0)
	if err != nil {
		tb.Fatal(err)
	}
	return &MTASTS{
		Next:          file.File{Zones: file.Zones{Z: map[string]*file.Zone{"example.com.": zone}, Names: []string{"example.com."}}},
		Zones:         []string{"example.com."},
		PolicyServers: []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::10")},
		Mode:          policy.ModeTesting,
		MaxAge:        defaultMaxAge,
		TTL:           defaultTTL,
		TLSRPT:        []string{"mailto:tlsrpt+{domain}@provider.example"},
	}
}
