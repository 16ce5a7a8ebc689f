package caddymtasts

import (
	"net/http"
	"testing"

	"github.com/coredns-mtasts/mtasts/policy"
)

// Settings records reach the web tier through DNS alone: off makes a
// domain unmanaged (no certificate, 404), and the policy of mode=enforce
// with an extra mx pattern is served with a body that hashes to the
// published id.
func TestSettingsReachTheWebTier(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	p := provisioned(t, &PermissionByMTASTS{PolicyDNS: PolicyDNS{Servers: []string{d.addr}}})
	expectVerdicts(t, p, map[string]verdict{
		"mta-sts.off.example.com":      deny,
		"mta-sts.enforced.example.com": allow,
	})
	if _, err := c.handshake("mta-sts.off.example.com"); err == nil {
		t.Error("mta-sts.off.example.com: handshake succeeded")
	}
	if r := c.request(t, http.MethodGet, "mta-sts.example.com", "mta-sts.off.example.com", policyPath); r.status != http.StatusNotFound {
		t.Errorf("mta-sts.off.example.com: got %d %q, want 404", r.status, r.body)
	}

	want, err := policy.New(policy.ModeEnforce, []string{"mx1.example.com", "*.mail.example.net"}, 604800)
	if err != nil {
		t.Fatal(err)
	}
	r := c.get(t, "mta-sts.enforced.example.com")
	expectPolicy(t, r, want.Encode())
	if got, id := policy.IDOf(r.body), d.stsID(t, "enforced.example.com"); got != id {
		t.Errorf("the body hashes to %s, DNS publishes id %s", got, id)
	}
}
