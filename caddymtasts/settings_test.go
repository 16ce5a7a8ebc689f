package caddymtasts

import (
	"net/http"
	"testing"

	"github.com/coredns-mtasts/mtasts/policy"
)

// Settings records reach the web tier through DNS alone: off makes a
// domain unmanaged (no certificate, 404), and the policies of mode=enforce
// with an extra mx pattern and of mode=none (RFC 8461 §8.3's removal) are
// served with a body that hashes to the published id.
func TestSettingsReachTheWebTier(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	p := provisioned(t, &PermissionByMTASTS{PolicyDNS: PolicyDNS{Servers: []string{d.addr}}})
	expectVerdicts(t, p, map[string]verdict{
		"mta-sts.off.example.com":      deny,
		"mta-sts.enforced.example.com": allow,
		"mta-sts.retiring.example.com": allow,
	})
	if _, err := c.handshake("mta-sts.off.example.com"); err == nil {
		t.Error("mta-sts.off.example.com: handshake succeeded")
	}
	if r := c.request(t, http.MethodGet, "mta-sts.example.com", "mta-sts.off.example.com", policyPath); r.status != http.StatusNotFound {
		t.Errorf("mta-sts.off.example.com: got %d %q, want 404", r.status, r.body)
	}

	for domain, p := range map[string]struct {
		mode   policy.Mode
		mx     []string
		maxAge uint32
	}{
		"enforced.example.com": {policy.ModeEnforce, []string{"mx1.example.com", "*.mail.example.net"}, 604800},
		"retiring.example.com": {policy.ModeNone, []string{"mx1.example.com"}, 86400},
	} {
		want, err := policy.New(p.mode, p.mx, p.maxAge)
		if err != nil {
			t.Fatal(err)
		}
		r := c.get(t, "mta-sts."+domain)
		expectPolicy(t, r, want.Encode())
		if got, id := policy.IDOf(r.body), d.stsID(t, domain); got != id {
			t.Errorf("%s: the body hashes to %s, DNS publishes id %s", domain, got, id)
		}
	}
}
