package mtasts

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// settingsPolicies are the policies the domains of settingsRecords get,
// below example.com, with basicCorefile's defaults (testing, a week).
func settingsPolicies(t *testing.T) map[string]policy.Policy {
	t.Helper()
	p := func(mode policy.Mode, maxAge uint32, mx ...string) policy.Policy {
		pol, err := policy.New(mode, mx, maxAge)
		if err != nil {
			t.Fatal(err)
		}
		return pol
	}
	const mx1 = "mx1.example.com"
	defaults := p(policy.ModeTesting, defaultMaxAge, mx1)
	return map[string]policy.Policy{
		"s-enforce":   p(policy.ModeEnforce, defaultMaxAge, mx1),
		"s-none":      p(policy.ModeNone, defaultMaxAge, mx1),
		"s-maxage":    p(policy.ModeTesting, 86400, mx1),
		"s-mx":        p(policy.ModeTesting, defaultMaxAge, "*.mail.protection.outlook.com", "mail.new.example", mx1),
		"s-all":       p(policy.ModeEnforce, 1209600, mx1, "mx9.example.net"),
		"s-autopilot": p(policy.ModeEnforce, defaultMaxAge, mx1), // by= changes no policy
		"s-defaults":  defaults,                                  // the same id as without settings
		"s-invalid":   defaults,
		"s-two":       defaults,
		"s-longline":  defaults, // an mx line longer than a character-string
	}
}

// Each key, and keys combined, shape the policy and its id, over UDP and
// TCP; invalid settings and two settings records leave the defaults. The
// settings record is hidden: senders see exactly one record, the plugin's.
func TestSettingsShapeThePolicy(t *testing.T) {
	s := startCoreDNS(t, basicCorefile, map[string]string{"example.com.zone": settingsZone(1)})
	for domain, want := range settingsPolicies(t) {
		record, host := "_mta-sts."+domain+".example.com.", "mta-sts."+domain+".example.com."
		for _, network := range []string{"udp", "tcp"} {
			txts := txtStrings(t, s.exchange(t, network, record, dns.TypeTXT, false), record)
			if len(txts) != 1 || strings.Join(txts[0], "") != (policy.Record{ID: want.ID()}).String() {
				t.Errorf("%s over %s: got %q, want only the record with id %s", record, network, txts, want.ID())
			}
			lines := txtStrings(t, s.exchange(t, network, host, dns.TypeTXT, false), host)
			if len(lines) != 1 || !slices.Equal(lines[0], want.Lines()) {
				t.Errorf("%s over %s: got %q, want %q", host, network, lines, want.Lines())
			}
		}
	}
	if got, want := s.stsID(t, "_mta-sts.s-defaults.example.com."), expectedID(t, "mx1.example.com"); got != want {
		t.Errorf("settings stating the defaults: id %s, want %s, as without settings", got, want)
	}
}

// With off, and with an owner's v=STSv1 record beside settings, every name
// of the domain passes through exactly as without the plugin, the records
// at _mta-sts included; and the web server's lookup gets the echo without
// an id: not managed.
func TestSettingsOffAndOwnerPassThrough(t *testing.T) {
	with, without := startWithAndWithout(t, settingsZone(1))
	for _, domain := range []string{"s-off.example.com.", "s-owner.example.com."} {
		checkPassedThrough(t, with, without, domain)
		resp := with.exchangeWithProof(t, "tcp", "mta-sts."+domain, testNonce)
		if !bytes.Equal(echo(resp), testNonce) || len(resp.Extra) != 1 {
			t.Errorf("mta-sts.%s TXT: want the echo without an id, got\n%v", domain, resp)
		}
	}
	txts := txtStrings(t, with.query(t, "_mta-sts.s-off.example.com.", dns.TypeTXT), "_mta-sts.s-off.example.com.")
	if len(txts) != 1 || txts[0][0] != "v=STSCFG1; off" {
		t.Errorf("_mta-sts.s-off: got %q, want the zone's settings record", txts)
	}
}

// invalidSettingsRecords are mail domains with invalid settings, named for
// TestInvalidSettingsAreCountedAndLoggedOnce alone: each is logged once per
// process.
const invalidSettingsRecords = `logsettings-invalid      IN MX  10 mx1
_mta-sts.logsettings-invalid IN TXT "v=STSCFG1; mode=enforce; colour=blue"
logsettings-two          IN MX  10 mx1
_mta-sts.logsettings-two IN TXT "v=STSCFG1; mode=enforce"
_mta-sts.logsettings-two IN TXT "v=STSCFG1; max_age=86400"
logsettings-off          IN MX  10 mx1
_mta-sts.logsettings-off IN TXT "v=STSCFG1; off"
`

func TestInvalidSettingsAreCountedAndLoggedOnce(t *testing.T) {
	logs := captureLog(t)
	dir := t.TempDir()
	zone := dir + "/example.com.zone"
	writeFile(t, zone, exampleZoneWith(1, exampleApexMX+"\n"+invalidSettingsRecords))
	s := startCoreDNS(t, strings.ReplaceAll(basicCorefile, "{dir}", dir), nil)
	const invalid = "coredns_mtasts_invalid_settings_total"
	query := func(domain string) {
		for range 2 {
			s.query(t, "_mta-sts."+domain+".example.com.", dns.TypeTXT)
			s.query(t, "mta-sts."+domain+".example.com.", dns.TypeTXT)
		}
	}
	before := counterSum(t, invalid)
	for _, domain := range []string{"logsettings-invalid", "logsettings-two", "logsettings-off", "example"} {
		query(domain)
	}
	if got := counterSum(t, invalid) - before; got != 8 {
		t.Errorf("counted %v queries, want 8 (4 for each of 2 domains)", got)
	}
	logged := func(domain string) int {
		return strings.Count(logs(), "[WARNING] plugin/mtasts: "+domain+".example.com.: settings ignored, the Corefile's defaults apply: ")
	}
	for domain, want := range map[string]int{"logsettings-invalid": 1, "logsettings-two": 1, "logsettings-off": 0} {
		if n := logged(domain); n != want {
			t.Errorf("%s: logged %d times, want %d\n%s", domain, n, want, logs())
		}
	}
	// Another version of a record is logged again, once.
	writeFile(t, zone, exampleZoneWith(2, exampleApexMX+"\n"+strings.Replace(invalidSettingsRecords, "colour=blue", "colour=red", 1)))
	waitForSerial(t, s, 2)
	query("logsettings-invalid")
	query("logsettings-two")
	if a, b := logged("logsettings-invalid"), logged("logsettings-two"); a != 2 || b != 1 {
		t.Errorf("after a new invalid record: logsettings-invalid logged %d times (want 2), logsettings-two %d (want 1)\n%s", a, b, logs())
	}
}

// A reload that changes the settings changes the id at once, and back.
func TestSettingsFollowZoneReloads(t *testing.T) {
	dir := t.TempDir()
	zone := dir + "/example.com.zone"
	writeFile(t, zone, zoneWithSerial(1))
	s := startCoreDNS(t, strings.ReplaceAll(basicCorefile, "{dir}", dir), nil)
	apex := []string{"mx1.example.com", "mx2.example.com"}
	initial := s.stsID(t, "_mta-sts.example.com.")
	for i, step := range []struct {
		settings string
		mode     policy.Mode
		mx       []string
	}{
		{"mode=enforce", policy.ModeEnforce, apex},
		{"mode=enforce; mx=mx3.example.com", policy.ModeEnforce, append(slices.Clone(apex), "mx3.example.com")},
		{"mode=none", policy.ModeNone, apex},
		{"off", "", nil},
		{"", policy.ModeTesting, apex},
	} {
		serial := uint32(i + 2)
		record := ""
		if step.settings != "" {
			record = `_mta-sts IN TXT "v=STSCFG1; ` + step.settings + `"`
		}
		writeFile(t, zone, exampleZoneWith(int(serial), exampleApexMX+"\n"+record))
		waitForSerial(t, s, serial)
		if step.mode == "" {
			txts := txtStrings(t, s.query(t, "_mta-sts.example.com.", dns.TypeTXT), "_mta-sts.example.com.")
			if len(txts) != 1 || !strings.HasPrefix(txts[0][0], policy.SettingsPrefix) {
				t.Errorf("%s: want the zone's record right after the reload, got %q", step.settings, txts)
			}
			continue
		}
		p, err := policy.New(step.mode, step.mx, defaultMaxAge)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.stsID(t, "_mta-sts.example.com."); got != p.ID() {
			t.Errorf("%q: id %s right after the reload, want %s", step.settings, got, p.ID())
		}
		lines := txtStrings(t, s.query(t, "mta-sts.example.com.", dns.TypeTXT), "mta-sts.example.com.")[0]
		if !slices.Equal(lines, p.Lines()) {
			t.Errorf("%q: policy lines %q, want %q", step.settings, lines, p.Lines())
		}
	}
	if got := s.stsID(t, "_mta-sts.example.com."); got != initial {
		t.Errorf("without settings again: id %s, want the initial %s", got, initial)
	}
}

func TestSettingsIDsAreTheSameOnTwoServers(t *testing.T) {
	files := map[string]string{"example.com.zone": settingsZone(1)}
	a, b := startCoreDNS(t, basicCorefile, files), startCoreDNS(t, basicCorefile, files)
	for domain := range settingsPolicies(t) {
		name := "_mta-sts." + domain + ".example.com."
		if ida, idb := a.stsID(t, name), b.stsID(t, name); ida != idb {
			t.Errorf("%s: %s on one server, %s on the other", name, ida, idb)
		}
	}
}

// countingHandler counts the queries the plugin asks the rest of the chain.
type countingHandler struct {
	plugin.Handler
	queries int
}

func (c *countingHandler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	c.queries++
	return c.Handler.ServeDNS(ctx, w, r)
}

// Settings are read from the owner check's answer: a domain with settings
// costs the chain exactly the queries of one without.
func TestSettingsAddNoLookup(t *testing.T) {
	m := newExampleMTASTS(t)
	next := &countingHandler{Handler: m.Next}
	m.Next = next
	lookups := func(name string, qtype uint16) int {
		next.queries = 0
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		r := new(dns.Msg)
		r.SetQuestion(name, qtype)
		if _, err := m.ServeDNS(context.Background(), rec, r); err != nil || len(rec.Msg.Answer) == 0 {
			t.Fatalf("%s: %v\n%v", name, err, rec.Msg)
		}
		return next.queries
	}
	for _, q := range []struct {
		prefix string
		qtype  uint16
	}{{"_mta-sts.", dns.TypeTXT}, {"mta-sts.", dns.TypeTXT}, {"mta-sts.", dns.TypeA}, {"_smtp._tls.", dns.TypeTXT}} {
		without := lookups(q.prefix+"notes.example.com.", q.qtype)
		for _, domain := range []string{"s-all", "s-mx", "s-invalid", "s-two"} {
			if with := lookups(q.prefix+domain+".example.com.", q.qtype); with != without {
				t.Errorf("%s%s %s: %d lookups, %d without settings", q.prefix, domain, dns.TypeToString[q.qtype], with, without)
			}
		}
	}
}

func TestAnswersCountedByMode(t *testing.T) {
	s := startCoreDNS(t, basicCorefile, map[string]string{"example.com.zone": settingsZone(1)})
	const answers = "coredns_mtasts_answers_total"
	modes := []string{"testing", "enforce", "none"}
	before := map[string]float64{}
	for _, mode := range modes {
		before[mode] = counterSum(t, answers, "kind", "record", "mode", mode)
	}
	for _, domain := range []string{"s-enforce", "s-all", "s-none", "s-maxage", "s-invalid", "s-off"} {
		s.query(t, "_mta-sts."+domain+".example.com.", dns.TypeTXT)
	}
	for mode, want := range map[string]float64{"testing": 2, "enforce": 2, "none": 1} {
		if got := counterSum(t, answers, "kind", "record", "mode", mode) - before[mode]; got != want {
			t.Errorf("mode %s: counted %v records, want %v", mode, got, want)
		}
	}
}
