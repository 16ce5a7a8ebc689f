package mtasts

import (
	"bytes"
	"fmt"
	golog "log"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// invalidMXRecords are MX records, for the example zone, whose targets are
// no LDH host names in A-label form: each makes its domain unmanaged.
const invalidMXRecords = `ulabel  IN MX 10 bücher.example.test.
wildmx  IN MX 10 *.mx.example.test.
escaped IN MX 10 mx\032a.example.test.
octets  IN MX 10 b\195\188cher.example.test.
badxn   IN MX 10 xn--a.example.test.
mixed   IN MX 10 mx1
mixed   IN MX 20 bücher.example.test.
upper   IN MX 10 MX1.EXAMPLE.COM.`

// fileOnlyCorefile serves the example zone with the file plugin alone.
const fileOnlyCorefile = `example.com:0 {
	bind 127.0.0.1
	file {dir}/example.com.zone
}`

// startWithAndWithout serves zone with mtasts (basicCorefile) and without.
func startWithAndWithout(t *testing.T, zone string) (with, without *dnsServer) {
	t.Helper()
	files := map[string]string{"example.com.zone": zone}
	return startCoreDNS(t, basicCorefile, files), startCoreDNS(t, fileOnlyCorefile, files)
}

// checkPassedThrough checks that the plugin answers every query for domain's
// names, over UDP and TCP, exactly as the zone does without it.
func checkPassedThrough(t *testing.T, with, without *dnsServer, domain string) {
	t.Helper()
	for _, q := range []struct {
		prefix string
		qtype  uint16
	}{{"_mta-sts.", dns.TypeTXT}, {"mta-sts.", dns.TypeTXT}, {"mta-sts.", dns.TypeA}, {"_smtp._tls.", dns.TypeTXT}, {"_tls.", dns.TypeTXT}} {
		for _, network := range []string{"udp", "tcp"} {
			name := q.prefix + domain
			got, want := with.exchange(t, network, name, q.qtype, false), without.exchange(t, network, name, q.qtype, false)
			got.Id, want.Id = 0, 0
			if got.String() != want.String() {
				t.Errorf("%s %s over %s: answer changed by the plugin:\n%v\nwithout it:\n%v", name, dns.TypeToString[q.qtype], network, got, want)
			}
		}
	}
}

func TestInvalidMXTargetsAreNotManaged(t *testing.T) {
	with, without := startWithAndWithout(t, exampleZoneWith(1, exampleApexMX+"\n"+invalidMXRecords))
	for _, domain := range []string{"ulabel", "wildmx", "escaped", "octets", "badxn", "mixed"} {
		checkPassedThrough(t, with, without, domain+".example.com.")
	}
	if got, want := with.stsID(t, "_mta-sts.upper.example.com."), expectedID(t, "mx1.example.com"); got != want {
		t.Errorf("upper-case MX target: id %s, want %s", got, want)
	}
}

// mxHost returns the i-th of distinct MX host names: a first label of
// width octets that holds i, then k labels of 63 letters, under example.net.
func mxHost(i, width, k int) string {
	return fmt.Sprintf("m%0*d", width-1, i) + strings.Repeat("."+strings.Repeat("x", 63), k) + ".example.net"
}

// mxRecords returns MX records for owner, one per host.
func mxRecords(owner string, hosts []string) string {
	var b strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s IN MX 10 %s.\n", owner, h)
	}
	return b.String()
}

// hostsSized returns as few distinct MX hosts of up to 203 octets as make
// size(hosts) exactly target, for a size that grows by one with every
// octet of a host name.
func hostsSized(t *testing.T, target int, size func([]string) int) []string {
	t.Helper()
	var widths []int
	hosts := func() []string {
		hs := make([]string, len(widths))
		for i, w := range widths {
			hs[i] = mxHost(i, w, 2)
		}
		return hs
	}
	for len(widths) == 0 || size(hosts()) < target {
		widths = append(widths, 63)
	}
	excess := size(hosts()) - target
	for i := range widths {
		cut := min(excess, widths[i]-8)
		widths[i] -= cut
		excess -= cut
	}
	if hs := hosts(); size(hs) == target {
		return hs
	}
	t.Fatalf("no hosts of size %d", target)
	return nil
}

// weekPolicy is the policy basicCorefile's mtasts publishes for hosts.
func weekPolicy(t *testing.T, hosts []string) policy.Policy {
	t.Helper()
	p, err := policy.New(policy.ModeTesting, hosts, defaultMaxAge)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tooLargeZone is the example zone with four more mail domains: "big" with
// the 500 long MX targets of the tester's report (a policy of over 100 kB),
// "overmax" with a policy one byte over policy.MaxSize, "overanswer" whose
// answer at mta-sts would take one octet more than a DNS message holds (the
// policy itself within MaxSize), and "atlimit" whose answer takes exactly
// 65535 octets.
func tooLargeZone(t *testing.T) string {
	t.Helper()
	big := make([]string, 500)
	for i := range big {
		big[i] = mxHost(i, 63, 2)
	}
	encoded := func(hosts []string) int {
		return len(policy.JoinLines(policy.Policy{Mode: policy.ModeTesting, MX: hosts, MaxAge: defaultMaxAge}.Lines()))
	}
	answer := func(domain string) func([]string) int {
		return func(hosts []string) int { return policyAnswerSize(domain, weekPolicy(t, hosts)) }
	}
	overAnswer := hostsSized(t, dns.MaxMsgSize+1, answer("overanswer.example.com."))
	if size := encoded(overAnswer); size > policy.MaxSize {
		t.Fatalf("overanswer's policy is %d bytes, want at most %d", size, policy.MaxSize)
	}
	return exampleZoneWith(1, exampleApexMX+"\n"+mxRecords("big", big)+
		mxRecords("overmax", hostsSized(t, policy.MaxSize+1, encoded))+
		mxRecords("overanswer", overAnswer)+
		mxRecords("atlimit", hostsSized(t, dns.MaxMsgSize, answer("atlimit.example.com."))))
}

func TestPoliciesTooLargeToServeAreNotManaged(t *testing.T) {
	with, without := startWithAndWithout(t, tooLargeZone(t))
	for _, domain := range []string{"big", "overmax", "overanswer"} {
		checkPassedThrough(t, with, without, domain+".example.com.")
	}
	// As reported: an id at _mta-sts.big, but its policy truncated to nothing.
	if resp := with.exchange(t, "tcp", "mta-sts.big.example.com.", dns.TypeTXT, false); resp.Truncated || resp.Rcode != dns.RcodeNameError {
		t.Errorf("mta-sts.big TXT over TCP: want the zone's NXDOMAIN, got\n%v", resp)
	}
	// The largest answer: to the web server, with the longest proof nonce.
	const host = "mta-sts.atlimit.example.com."
	nonce := bytes.Repeat([]byte{'n'}, policy.ProofNonceMax)
	resp := with.exchangeWithProof(t, "tcp", host, nonce)
	if resp.Truncated || !bytes.Equal(echo(resp), nonce) || len(resp.Extra) != 2 {
		t.Fatalf("%s TXT over TCP: want the policy with the id and the nonce, got\n%v", host, resp.MsgHdr)
	}
	txts := txtStrings(t, resp, host)
	if len(txts) != 1 {
		t.Fatalf("%s TXT: want one record, got %d", host, len(txts))
	}
	body := policy.JoinLines(txts[0])
	if _, err := policy.Parse(body); err != nil {
		t.Fatalf("%s TXT does not parse: %v", host, err)
	}
	if id := with.stsID(t, "_mta-sts.atlimit.example.com."); policy.IDOf(body) != id {
		t.Errorf("atlimit: the policy lines hash to %s, the published id is %s", policy.IDOf(body), id)
	}
}

// The fast path of checkAnswerSize measures no policy of mxLinesAlwaysFit
// lines or fewer: so many of the longest lines must fit, with the longest
// mail domain.
func TestMXLinesAlwaysFitAnswer(t *testing.T) {
	domain := strings.Repeat(strings.Repeat("d", 63)+".", 3) + strings.Repeat("d", 40) + ".example.com."
	if _, ok := dns.IsDomainName("_mta-sts." + domain); !ok || len(domain) != 245 {
		t.Fatalf("%s is not the longest mail domain", domain)
	}
	hosts := make([]string, mxLinesAlwaysFit)
	for i := range hosts {
		hosts[i] = mxHost(i, 47, 3) // the longest: "mx: " and a host of 251 octets
	}
	p := weekPolicy(t, hosts)
	if size := policyAnswerSize(domain, p); size > dns.MaxMsgSize {
		t.Fatalf("%d lines of 255 octets take %d octets, more than %d", len(hosts), size, dns.MaxMsgSize)
	}
	if err := checkCharacterStrings(p); err != nil {
		t.Fatal(err)
	}
}

func TestUnusableMXSetsAreCountedAndLoggedOnce(t *testing.T) {
	logs := captureLog(t)
	s := startCoreDNS(t, basicCorefile, map[string]string{"example.com.zone": exampleZoneWith(1, exampleApexMX+`
logonce-invalid IN MX 10 *.mx.example.net.
logonce-long    IN MX 10 `+mxHost(0, 49, 3)+".\n")}) // "mx: " and 253 octets: too long a line
	const unusable = "coredns_mtasts_unusable_mx_sets_total"
	before := map[string]float64{"invalid_mx": counterSum(t, unusable, "reason", "invalid_mx"), "too_large": counterSum(t, unusable, "reason", "too_large")}
	for _, domain := range []string{"logonce-invalid.example.com.", "logonce-long.example.com."} {
		for range 2 {
			s.query(t, "_mta-sts."+domain, dns.TypeTXT)
			s.query(t, "mta-sts."+domain, dns.TypeA)
		}
	}
	for reason, n := range before {
		if got := counterSum(t, unusable, "reason", reason) - n; got != 4 {
			t.Errorf("%s: counted %v queries, want 4", reason, got)
		}
	}
	for _, want := range []string{
		"[WARNING] plugin/mtasts: logonce-invalid.example.com. is not managed (invalid_mx): ",
		"[WARNING] plugin/mtasts: logonce-long.example.com. is not managed (too_large): ",
	} {
		if n := strings.Count(logs(), want); n != 1 {
			t.Errorf("logged %d times, want once: %q\n%s", n, want, logs())
		}
	}
}

// captureLog sends the standard logger's output, which CoreDNS's log
// writes to, to a buffer for the rest of the test, and returns a function
// that reads it. The output before, io.Discard (log_test.go), comes back
// after.
func captureLog(t *testing.T) func() string {
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	prev := golog.Writer()
	golog.SetOutput(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}))
	t.Cleanup(func() { golog.SetOutput(prev) })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
