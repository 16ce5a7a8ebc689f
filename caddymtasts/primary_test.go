package caddymtasts

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/autopilot"
	"github.com/coredns-mtasts/mtasts/policy"
)

// primaryZone is the zone on the primary of these tests: mail domains,
// each with what its _mta-sts name holds.
const primaryZone = `$TTL 3600
@                  IN SOA   ns1 hostmaster 1 7200 3600 1209600 300
@                  IN NS    ns1
ns1                IN A     127.0.0.1
none               IN MX    10 mx
own                IN MX    10 mx
_mta-sts.own       IN TXT   "v=STSCFG1; mode=enforce; by=autopilot"
explicit           IN MX    10 mx
_mta-sts.explicit  IN TXT   "v=STSCFG1; mode=testing"
edited             IN MX    10 mx
_mta-sts.edited    IN TXT   "v=STSCFG1; mode=enforce; max_age=86400; by=autopilot"
verified           IN MX    10 mx
_mta-sts.verified  IN TXT   "site-verification=abc"
owner              IN MX    10 mx
_mta-sts.owner     IN TXT   "v=STSv1; id=owner1"
delegated          IN MX    10 mx
_mta-sts.delegated IN CNAME _mta-sts.elsewhere.example.
raced              IN MX    10 mx
`

func newTestPrimary(t *testing.T, addr, key, secret string) *primary {
	t.Helper()
	p, err := newPrimary(addr, 2*time.Second, key, "hmac-sha256", secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	return p
}

// What the primary holds at _mta-sts.D is read as the autopilot needs it,
// and an update replaces the autopilot's record, or adds one where there
// was none, leaving every other TXT record there as it was.
func TestPrimaryReadsAndUpdates(t *testing.T) {
	k := startKnot(t, "", map[string]string{"primary.test": primaryZone}, "")
	p := newTestPrimary(t, k.addr, k.key, k.secret)
	ctx := context.Background()
	for domain, want := range map[string]struct {
		who  autopilot.Settings
		mode policy.Mode
	}{
		"none.primary.test":      {autopilot.SettingsNone, ""},
		"own.primary.test":       {autopilot.SettingsAutopilot, policy.ModeEnforce},
		"explicit.primary.test":  {autopilot.SettingsExplicit, ""},
		"edited.primary.test":    {autopilot.SettingsExplicit, ""},
		"verified.primary.test":  {autopilot.SettingsNone, ""},
		"owner.primary.test":     {autopilot.SettingsExplicit, ""},
		"delegated.primary.test": {autopilot.SettingsExplicit, ""},
	} {
		held, err := p.read(ctx, domain)
		if err != nil || held.who != want.who || held.mode != want.mode {
			t.Errorf("read %s: %q %q, %v; want %q %q", domain, held.who, held.mode, err, want.who, want.mode)
		}
		if err == nil && held.who != autopilot.SettingsExplicit && held.zone != "primary.test." {
			t.Errorf("read %s: zone %q", domain, held.zone)
		}
	}
	for _, c := range []struct {
		domain string
		action autopilot.Action
		want   []string
	}{
		{"none.primary.test", autopilot.Promote, []string{"v=STSCFG1; mode=enforce; by=autopilot"}},
		{"own.primary.test", autopilot.Demote, []string{"v=STSCFG1; mode=testing; by=autopilot"}},
		{"verified.primary.test", autopilot.Promote, []string{"site-verification=abc", "v=STSCFG1; mode=enforce; by=autopilot"}},
	} {
		held, err := p.read(ctx, c.domain)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.update(ctx, held, autopilot.RecordFor(c.action)); err != nil {
			t.Errorf("%s %s: %v", c.action, c.domain, err)
		}
		if got := slices.Sorted(slices.Values(k.txts(t, "_mta-sts."+c.domain))); !slices.Equal(got, c.want) {
			t.Errorf("after %s %s: the primary holds %q, want %q", c.action, c.domain, got, c.want)
		}
	}
}

// An operator's record written between the read and the update makes the
// update fail, and stays as the operator wrote it; so does the autopilot's
// record edited meanwhile.
func TestPrimaryUpdateRequiresWhatWasRead(t *testing.T) {
	k := startKnot(t, "", map[string]string{"primary.test": primaryZone}, "")
	p := newTestPrimary(t, k.addr, k.key, k.secret)
	ctx := context.Background()
	for domain, operators := range map[string]string{
		"raced.primary.test": "v=STSCFG1; mode=testing",
		"own.primary.test":   "v=STSCFG1; mode=enforce; max_age=86400; by=autopilot",
	} {
		held, err := p.read(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		k.set(t, "primary.test", "_mta-sts."+domain+".", operators)
		if err := p.update(ctx, held, autopilot.RecordFor(autopilot.Demote)); !errors.Is(err, errChangedMeanwhile) {
			t.Errorf("%s: update after an operator's change: %v, want errChangedMeanwhile", domain, err)
		}
		if got := k.txts(t, "_mta-sts."+domain); !slices.Equal(got, []string{operators}) {
			t.Errorf("%s: the primary holds %q, want the operator's %q", domain, got, operators)
		}
	}
}

// A wrong key is a clear error, at checkKey (what Provision asks with
// check_zone) and at an update; so are a zone the primary does not serve
// and a primary that does not answer, which is worth another try.
func TestPrimaryKeyAndReachability(t *testing.T) {
	k := startKnot(t, "", map[string]string{"primary.test": primaryZone}, "")
	ctx := context.Background()
	good := newTestPrimary(t, k.addr, k.key, k.secret)
	if err := good.checkKey(ctx, "primary.test"); err != nil {
		t.Errorf("the right key: %v", err)
	}
	if err := good.checkKey(ctx, "other.test"); err == nil || !strings.Contains(err.Error(), "check_zone other.test: the primary answered REFUSED") {
		t.Errorf("a zone the primary does not serve: %v", err)
	}
	held, err := good.read(ctx, "none.primary.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, secret, want string
	}{
		{k.key, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=", "BADSIG"},
		{"someone-else.", k.secret, "BADKEY"},
	} {
		p := newTestPrimary(t, k.addr, c.key, c.secret)
		for what, err := range map[string]error{
			"checkKey": p.checkKey(ctx, "primary.test"),
			"update":   p.update(ctx, held, autopilot.RecordFor(autopilot.Promote)),
		} {
			if !errors.Is(err, errKeyRefused) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s with key %s and a wrong secret or name: %v, want errKeyRefused, %s", what, c.key, err, c.want)
			}
		}
	}
	if got := k.txts(t, "_mta-sts.none.primary.test"); len(got) != 0 {
		t.Errorf("after updates with wrong keys, the primary holds %q", got)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	down := newTestPrimary(t, closed, k.key, k.secret)
	held.zone = "primary.test."
	for what, err := range map[string]error{
		"checkKey": down.checkKey(ctx, "primary.test"),
		"update":   down.update(ctx, held, autopilot.RecordFor(autopilot.Promote)),
	} {
		if !errors.Is(err, errPrimaryUnreachable) {
			t.Errorf("%s with no primary listening: %v, want errPrimaryUnreachable", what, err)
		}
	}
}

func TestNewPrimaryRefuses(t *testing.T) {
	const secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
	for _, c := range []struct {
		addr, key, algorithm, secret, want string
	}{
		{"192.0.2.1:domain", "k.", "hmac-sha256", secret, `primary: DNS server "192.0.2.1:domain"`},
		{"192.0.2.1", "", "hmac-sha256", secret, `tsig_key_name "": want a domain name`},
		{"192.0.2.1", "a..b", "hmac-sha256", secret, `tsig_key_name "a..b"`},
		{"192.0.2.1", "k.", "hmac-md5", secret, `tsig_algorithm "hmac-md5": want hmac-sha256, hmac-sha384 or hmac-sha512`},
		{"192.0.2.1", "k.", "hmac-sha256", "", "tsig_secret: want the key's secret in base64, as the primary has it, not 0 characters"},
		{"192.0.2.1", "k.", "hmac-sha256", "not base64!", "tsig_secret: want the key's secret in base64"},
	} {
		if _, err := newPrimary(c.addr, time.Second, c.key, c.algorithm, c.secret); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("newPrimary(%q, %q, %q, %q): %v, want %q", c.addr, c.key, c.algorithm, c.secret, err, c.want)
		}
	}
	p, err := newPrimary("192.0.2.1", time.Second, "Autopilot.Provider.Example", "HMAC-SHA512", secret)
	if err != nil || p.key != "autopilot.provider.example." || p.addr != net.JoinHostPort("192.0.2.1", strconv.Itoa(53)) {
		t.Errorf("newPrimary: %+v, %v", p, err)
	}
	p.close()
}
