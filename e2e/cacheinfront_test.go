//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// testCacheInFront: a second Caddy (port 8443, same storage) asks a server
// block of our CoreDNS with cache 30 and forward to the authoritative one,
// the setup in which Caddy once served a stale body. The cache's answers
// lack the plugin's echo of the nonce, so it never serves them.
func testCacheInFront(t *testing.T, s *suite) {
	s.startCaddy(t, "caddy-cached", "Caddyfile.cached", 8443)
	old := stsID(t, "example.test")
	oldLines := short(t, cacheAddr, "mta-sts.example.test", dns.TypeTXT, false)
	if oldLines == "" {
		t.Fatalf("no policy lines from the cache at %s", cacheAddr)
	}
	resp, _ := s.mustFetch(t, "mta-sts.example.test", 8443, webAddr)
	s.expect(t, "policy through the cache, before the change (status)", resp.StatusCode, 503)
	s.writeZone(t, "example.test", zoneData{Serial: 4, MX: []string{"mx1.example.test", "mx4.example.test"}})
	id := waitForNewID(t, "example.test", old)
	s.ok(t, "id changed: %s -> %s", old, id)
	s.expect(t, "mta-sts.example.test TXT at the cache (still the old policy)",
		short(t, cacheAddr, "mta-sts.example.test", dns.TypeTXT, false), oldLines)
	refused, fresh := 0, 0
	for i := range 10 {
		resp, body := s.mustFetch(t, "mta-sts.example.test", 8443, webAddr)
		switch {
		case resp.StatusCode == 503:
			refused++
		case resp.StatusCode == 200 && idOf(body) == id:
			fresh++
		case resp.StatusCode == 200:
			t.Fatalf("fetch %d served a stale policy: %q", i+1, body)
		default:
			t.Fatalf("fetch %d: status %d", i+1, resp.StatusCode)
		}
	}
	s.ok(t, "10 fetches through the cache: %d x 503, %d x the new policy, none stale", refused, fresh)
	log, err := os.ReadFile(s.path("caddy-cached.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "not vouched for by the mtasts plugin") {
		t.Fatal("caddy-cached does not log why it answers 503")
	}
	s.ok(t, "caddy-cached logs why: the plugin did not vouch for the cache's answer")
	_, body := s.mustFetch(t, "mta-sts.example.test", 443, "")
	s.expect(t, "id of the body from the caddy asking "+dnsAddr, idOf(body), id)
}
