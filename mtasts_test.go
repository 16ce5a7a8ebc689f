package mtasts

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/coredns-mtasts/mtasts/policy"
)

func TestRecordAtApexAndSubdomain(t *testing.T) {
	s := startExample(t)
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name  string
			hosts []string
			ttl   uint32
		}{
			{"_mta-sts.example.com.", []string{"mx1.example.com", "mx2.example.com"}, 300},
			{"_mta-sts.sub.example.com.", []string{"mail.sub.example.com"}, 60},
		} {
			resp := s.exchange(t, network, tc.name, dns.TypeTXT, false)
			txts := txtStrings(t, resp, tc.name)
			want := "v=STSv1; id=" + expectedID(t, tc.hosts...)
			if len(txts) != 1 || len(txts[0]) != 1 || txts[0][0] != want {
				t.Fatalf("%s over %s: got %q, want %q", tc.name, network, txts, want)
			}
			if ttl := resp.Answer[0].Header().Ttl; ttl != tc.ttl {
				t.Errorf("%s: TTL %d, want %d (min of ttl and the MX TTL)", tc.name, ttl, tc.ttl)
			}
		}
	}
}

func TestPolicyLinesHashToPublishedID(t *testing.T) {
	s := startExample(t)
	for _, domain := range []string{"example.com.", "sub.example.com.", "anything.wild.example.com."} {
		txts := txtStrings(t, s.query(t, "mta-sts."+domain, dns.TypeTXT), "mta-sts."+domain)
		if len(txts) != 1 {
			t.Fatalf("mta-sts.%s TXT: want one record, got %q", domain, txts)
		}
		body := policy.JoinLines(txts[0])
		p, err := policy.Parse(body)
		if err != nil {
			t.Fatalf("mta-sts.%s TXT does not parse: %v\n%q", domain, err, body)
		}
		if id := s.stsID(t, "_mta-sts."+domain); policy.IDOf(body) != id || p.ID() != id {
			t.Errorf("%s: lines hash to %s, published id is %s", domain, policy.IDOf(body), id)
		}
	}
	lines := txtStrings(t, s.query(t, "mta-sts.example.com.", dns.TypeTXT), "mta-sts.example.com.")[0]
	want := []string{"version: STSv1", "mode: testing", "mx: mx1.example.com", "mx: mx2.example.com", "max_age: 604800"}
	if !slices.Equal(lines, want) {
		t.Errorf("policy lines %q, want %q", lines, want)
	}
}

func TestPolicyHostAddresses(t *testing.T) {
	s := startExample(t)
	if got := addresses(t, s.query(t, "mta-sts.example.com.", dns.TypeA)); !slices.Equal(got, []string{"192.0.2.10", "192.0.2.11"}) {
		t.Errorf("A: %v", got)
	}
	if got := addresses(t, s.query(t, "mta-sts.sub.example.com.", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8::10"}) {
		t.Errorf("AAAA: %v", got)
	}
}

func addresses(t *testing.T, resp *dns.Msg) []string {
	t.Helper()
	if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative {
		t.Fatalf("want an authoritative answer, got\n%v", resp)
	}
	var ips []string
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			ips = append(ips, rr.A.String())
		case *dns.AAAA:
			ips = append(ips, rr.AAAA.String())
		default:
			t.Fatalf("unexpected record %v", rr)
		}
	}
	return ips
}

func TestNODATAShapes(t *testing.T) {
	s := startCoreDNS(t, strings.Replace(basicCorefile, " 2001:db8::10", "", 1),
		map[string]string{"example.com.zone": zoneWithSerial(1)})
	for _, q := range []struct {
		name   string
		qtype  uint16
		soaTTL uint32
	}{
		{"_mta-sts.example.com.", dns.TypeA, 300}, // RFC 2308: min(SOA TTL, SOA MINIMUM)
		{"_mta-sts.example.com.", dns.TypeMX, 300},
		{"mta-sts.example.com.", dns.TypeMX, 300},
		{"mta-sts.example.com.", dns.TypeAAAA, 300}, // no IPv6 policy server configured
		{"_smtp._tls.example.com.", dns.TypeA, 300},
		{"_tls.example.com.", dns.TypeTXT, 3600}, // the file plugin's NXDOMAIN, turned NODATA
	} {
		for _, network := range []string{"udp", "tcp"} {
			resp := s.exchange(t, network, q.name, q.qtype, false)
			checkNODATA(t, resp, q.name+" "+dns.TypeToString[q.qtype], q.soaTTL)
		}
	}
}

func checkNODATA(t *testing.T, resp *dns.Msg, what string, soaTTL uint32) {
	checkNODATAIn(t, resp, what, "example.com.", soaTTL)
}

func checkNODATAIn(t *testing.T, resp *dns.Msg, what, zone string, soaTTL uint32) {
	t.Helper()
	if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative || len(resp.Answer) != 0 || len(resp.Ns) != 1 {
		t.Fatalf("%s: want NODATA, got\n%v", what, resp)
	}
	soa, ok := resp.Ns[0].(*dns.SOA)
	if !ok || soa.Hdr.Name != zone || soa.Hdr.Ttl != soaTTL {
		t.Fatalf("%s: want the zone's SOA with TTL %d in authority, got %v", what, soaTTL, resp.Ns[0])
	}
}

func TestQueryCaseIsKept(t *testing.T) {
	s := startExample(t)
	want := s.stsID(t, "_mta-sts.example.com.")
	for _, name := range []string{"_MTA-STS.EXAMPLE.COM.", "_mTa-StS.ExAmPlE.cOm."} {
		if got := s.stsID(t, name); got != want { // stsID checks the owner name too
			t.Errorf("%s: id %s, want %s", name, got, want)
		}
	}
	resp := s.query(t, "MTA-STS.Example.COM.", dns.TypeA)
	if len(resp.Answer) == 0 || resp.Answer[0].Header().Name != "MTA-STS.Example.COM." {
		t.Errorf("owner name case not kept: %v", resp)
	}
}

func TestIDIsTheSameOnTwoServers(t *testing.T) {
	a, b := startExample(t), startExample(t)
	for _, name := range []string{"_mta-sts.example.com.", "_mta-sts.sub.example.com.", "_mta-sts.x.wild.example.com."} {
		if ida, idb := a.stsID(t, name), b.stsID(t, name); ida != idb {
			t.Errorf("%s: %s on one server, %s on the other", name, ida, idb)
		}
	}
}

func TestWildcardMX(t *testing.T) {
	s := startExample(t)
	want := expectedID(t, "mx.wild.example.net")
	for _, name := range []string{"_mta-sts.a.wild.example.com.", "_mta-sts.b.wild.example.com."} {
		if got := s.stsID(t, name); got != want {
			t.Errorf("%s: id %s, want %s", name, got, want)
		}
	}
}

// Names the plugin must not answer for get exactly the answer the zone gives
// without the plugin.
func TestUnmanagedPassesThroughUntouched(t *testing.T) {
	files := map[string]string{"example.com.zone": zoneWithSerial(1)}
	with := startCoreDNS(t, basicCorefile, files)
	start, end := strings.Index(basicCorefile, "\tmtasts {"), strings.Index(basicCorefile, "\t}\n")+3
	without := startCoreDNS(t, basicCorefile[:start]+basicCorefile[end:], files)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_mta-sts.nullmx.example.com.", dns.TypeTXT},     // null MX
		{"mta-sts.nullmx.example.com.", dns.TypeA},        //
		{"_mta-sts.nomx.example.com.", dns.TypeTXT},       // no MX
		{"_mta-sts.alias.example.com.", dns.TypeTXT},      // CNAME at D
		{"mta-sts.alias.example.com.", dns.TypeA},         //
		{"_mta-sts.host.child.example.com.", dns.TypeTXT}, // below a delegation
		{"_mta-sts.child.example.com.", dns.TypeTXT},      // at a delegation
		{"_mta-sts.owner.example.com.", dns.TypeTXT},      // owner-managed
		{"mta-sts.owner.example.com.", dns.TypeA},         //
		{"_mta-sts.delegated.example.com.", dns.TypeTXT},  // owner delegated _mta-sts
		{"mta-sts.delegated.example.com.", dns.TypeA},     //
		{"_mta-sts.cnamed.example.com.", dns.TypeTXT},     // policy delegation by CNAME
		{"mta-sts.cnamed.example.com.", dns.TypeTXT},      //
		{"_mta-sts.badmx.example.com.", dns.TypeTXT},      // MX host no certificate can name
		{"_mta-sts.mta-sts.example.com.", dns.TypeTXT},    // a policy host is no mail domain
		{"_mta-sts._mta-sts.example.com.", dns.TypeTXT},   //
		{"_smtp._tls.reports.example.com.", dns.TypeTXT},  // own TLS-RPT record
		{"_tls.reports.example.com.", dns.TypeTXT},        //
		{"_smtp._tls.nomx.example.com.", dns.TypeTXT},     //
		{"example.com.", dns.TypeMX},                      // not a name of ours
		{"www.example.com.", dns.TypeA},                   //
		{"x.mta-sts.example.com.", dns.TypeA},             //
		{"_mta-sts.example.com.", dns.TypeAXFR},           // transfers are not ours
		{"_mta-sts.sub.example.com.", dns.TypeTXT},        // managed: differs (checked below)
	} {
		got, want := with.query(t, q.name, q.qtype), without.query(t, q.name, q.qtype)
		got.Id, want.Id = 0, 0
		if q.name == "_mta-sts.sub.example.com." {
			if got.String() == want.String() {
				t.Errorf("%s: the plugin did not answer", q.name)
			}
			continue
		}
		if got.String() != want.String() {
			t.Errorf("%s %s: answer changed by the plugin:\n%v\nwithout it:\n%v", q.name, dns.TypeToString[q.qtype], got, want)
		}
	}
	if rec := txtStrings(t, with.query(t, "_mta-sts.owner.example.com.", dns.TypeTXT), "_mta-sts.owner.example.com."); rec[0][0] != "v=STSv1; id=ownerpolicy1" {
		t.Errorf("owner's record replaced: %q", rec)
	}
}

func TestOtherTXTAtRecordNameIsNotOwnerManaged(t *testing.T) {
	s := startExample(t)
	if got, want := s.stsID(t, "_mta-sts.notes.example.com."), expectedID(t, "mx1.example.com"); got != want {
		t.Errorf("id %s, want %s", got, want)
	}
}

func TestIDFollowsZoneReloads(t *testing.T) {
	dir := t.TempDir()
	zone := dir + "/example.com.zone"
	writeFile(t, zone, zoneWithSerial(1))
	s := startCoreDNS(t, strings.ReplaceAll(basicCorefile, "{dir}", dir), nil)
	const name = "_mta-sts.example.com."
	seen := map[string]string{s.stsID(t, name): "initial"}
	for i, step := range []struct {
		what, mx string
		hosts    []string
		sameAs   string // the step whose id must come back, if any
	}{
		{"add", "@ MX 10 mx1\n@ MX 20 mx2\n@ MX 30 mx3", []string{"mx1.example.com", "mx2.example.com", "mx3.example.com"}, ""},
		{"remove", "@ MX 20 mx2", []string{"mx2.example.com"}, ""},
		{"retarget", "@ MX 20 mx2\n@ MX 10 mx9", []string{"mx2.example.com", "mx9.example.com"}, ""},
		{"reorder, recase, duplicate", "@ MX 5 MX9.example.com.\n@ MX 99 mx2\n@ MX 7 mx9", []string{"mx2.example.com", "mx9.example.com"}, "retarget"},
		{"back to the start", exampleApexMX, []string{"mx1.example.com", "mx2.example.com"}, "initial"},
	} {
		serial := uint32(i + 2)
		writeFile(t, zone, exampleZoneWith(int(serial), step.mx))
		waitForSerial(t, s, serial)
		want := expectedID(t, step.hosts...)
		if got := s.stsID(t, name); got != want {
			t.Fatalf("%s: id %s right after the reload, want %s", step.what, got, want)
		}
		if prev, ok := seen[want]; ok != (step.sameAs != "") || ok && prev != step.sameAs {
			t.Errorf("%s: id %s was also the id of %q", step.what, want, prev)
		}
		seen[want] = step.what
		lines := txtStrings(t, s.query(t, "mta-sts.example.com.", dns.TypeTXT), "mta-sts.example.com.")[0]
		if got := policy.IDOf(policy.JoinLines(lines)); got != want {
			t.Errorf("%s: policy lines hash to %s, want %s", step.what, got, want)
		}
	}
}

// waitForSerial waits until the server has loaded the zone with serial.
func waitForSerial(t *testing.T, s *dnsServer, serial uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := s.query(t, "example.com.", dns.TypeSOA)
		if len(resp.Answer) == 1 && resp.Answer[0].(*dns.SOA).Serial == serial {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zone serial %d not loaded: %v", serial, resp.Answer)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailingBackendGivesSERVFAIL(t *testing.T) {
	s := startCoreDNS(t, `example.net:0 example.org:0 {
	bind 127.0.0.1
	mtasts {
		policy_server 192.0.2.10
	}
	template IN MX example.net {
		rcode SERVFAIL
	}
	file {dir}/example.net.zone example.net
	secondary example.org {
		transfer from 127.0.0.1:9
	}
}`, map[string]string{"example.net.zone": strings.ReplaceAll(zoneWithSerial(1), "example.com.", "example.net.")})
	before := counterSum(t, "coredns_mtasts_lookup_failures_total")
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_mta-sts.example.net.", dns.TypeTXT},
		{"mta-sts.example.net.", dns.TypeA},
		{"mta-sts.example.net.", dns.TypeTXT},
		{"_mta-sts.example.org.", dns.TypeTXT}, // secondary zone never transferred
	} {
		if resp := s.query(t, q.name, q.qtype); resp.Rcode != dns.RcodeServerFailure || len(resp.Answer) != 0 {
			t.Errorf("%s %s: want SERVFAIL, got\n%v", q.name, dns.TypeToString[q.qtype], resp)
		}
	}
	if got := counterSum(t, "coredns_mtasts_lookup_failures_total") - before; got != 4 {
		t.Errorf("lookup failures counted %v times, want 4", got)
	}
	if resp := s.query(t, "www.example.net.", dns.TypeA); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
		t.Errorf("a query the plugin does not own was affected:\n%v", resp)
	}
}

func TestTLSRPT(t *testing.T) {
	s := startExample(t)
	txts := txtStrings(t, s.query(t, "_smtp._tls.example.com.", dns.TypeTXT), "_smtp._tls.example.com.")
	want := "v=TLSRPTv1; rua=mailto:tlsrpt+example.com@provider.example,https://reports.provider.example/v1/example.com"
	if len(txts) != 1 || strings.Join(txts[0], "") != want {
		t.Errorf("got %q, want %q", txts, want)
	}
	if resp := s.query(t, "_tls.nomx.example.com.", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("_tls of an unmanaged domain: want NXDOMAIN, got\n%v", resp)
	}
}

func TestPolicyCNAMEModeAndMaxAge(t *testing.T) {
	s := startCoreDNS(t, `example.com:0 {
	bind 127.0.0.1
	mtasts example.com {
		policy_cname MTA-STS.Provider.example.
		mode enforce
		max_age 86400
		ttl 30
	}
	file {dir}/example.com.zone
}`, map[string]string{"example.com.zone": zoneWithSerial(1)})
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME} {
		resp := s.query(t, "mta-sts.example.com.", qtype)
		if len(resp.Answer) != 1 {
			t.Fatalf("%s: want one CNAME, got\n%v", dns.TypeToString[qtype], resp)
		}
		if c, ok := resp.Answer[0].(*dns.CNAME); !ok || c.Target != "mta-sts.provider.example." || c.Hdr.Ttl != 30 {
			t.Errorf("%s: want CNAME to mta-sts.provider.example. with TTL 30, got %v", dns.TypeToString[qtype], resp.Answer[0])
		}
	}
	lines := txtStrings(t, s.query(t, "mta-sts.example.com.", dns.TypeTXT), "mta-sts.example.com.")[0]
	want := []string{"version: STSv1", "mode: enforce", "mx: mx1.example.com", "mx: mx2.example.com", "max_age: 86400"}
	if !slices.Equal(lines, want) {
		t.Errorf("policy lines %q, want %q", lines, want)
	}
	if resp := s.query(t, "_smtp._tls.example.com.", dns.TypeTXT); resp.Rcode != dns.RcodeNameError {
		t.Errorf("TLS-RPT published without tlsrpt configured:\n%v", resp)
	}
}

func TestMetricsCountAnswers(t *testing.T) {
	s := startExample(t)
	before := counterSum(t, "coredns_mtasts_answers_total", "kind", "record")
	s.query(t, "_mta-sts.example.com.", dns.TypeTXT)
	s.query(t, "_mta-sts.nomx.example.com.", dns.TypeTXT) // not ours: not counted
	if got := counterSum(t, "coredns_mtasts_answers_total", "kind", "record") - before; got != 1 {
		t.Errorf("record answers counted %v times, want 1", got)
	}
}

// counterSum adds up a counter's values over all servers, for the metrics
// that have the given label name and value pairs.
func counterSum(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// hasLabels reports whether m has all the label name and value pairs.
func hasLabels(m *dto.Metric, pairs []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if have[pairs[i]] != pairs[i+1] {
			return false
		}
	}
	return true
}

// With auto serving a directory of zones, cache above and the plugin's zones
// taken from a root server block, each domain gets its own policy, and a zone
// file added later is picked up.
func TestAutoZonesBehindCache(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/db.example.com", zoneWithSerial(1))
	writeFile(t, dir+"/db.example.net", strings.ReplaceAll(zoneWithSerial(1), "example.com.", "example.net."))
	s := startCoreDNS(t, `.:0 {
	bind 127.0.0.1
	cache 30
	mtasts {
		policy_server 192.0.2.10
	}
	auto {
		directory `+dir+`
		reload 50ms
	}
}`, nil)
	for _, domain := range []string{"example.com", "example.net"} {
		want := expectedID(t, "mx1."+domain, "mx2."+domain)
		for range 2 { // the second answer comes from the cache
			if got := s.stsID(t, "_mta-sts."+domain+"."); got != want {
				t.Errorf("%s: id %s, want %s", domain, got, want)
			}
		}
	}
	checkNODATAIn(t, s.query(t, "mta-sts.example.net.", dns.TypeMX), "mta-sts.example.net MX", "example.net.", 30) // cache 30 caps TTLs

	writeFile(t, dir+"/db.example.org", strings.ReplaceAll(zoneWithSerial(1), "example.com.", "example.org."))
	deadline := time.Now().Add(10 * time.Second)
	for s.query(t, "example.org.", dns.TypeSOA).Rcode != dns.RcodeSuccess {
		if time.Now().After(deadline) {
			t.Fatal("auto did not load the new zone")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, want := s.stsID(t, "_mta-sts.example.org."), expectedID(t, "mx1.example.org", "mx2.example.org"); got != want {
		t.Errorf("example.org: id %s, want %s", got, want)
	}
}
