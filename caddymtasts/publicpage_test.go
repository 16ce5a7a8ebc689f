package caddymtasts

import (
	"net/http"
	"strings"
	"testing"
)

// TestPublicPage checks the page at the root of mta-sts.D: the policy
// senders get, by the policy path's rules, and nothing of the provider's.
func TestPublicPage(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	const sni = "mta-sts.example.com"
	for domain, want := range map[string][]string{
		"example.com": {"MTA-STS for example.com", "mode testing", "version: STSv1 mode: testing mx: mx1.example.com max_age: 604800",
			d.stsID(t, "example.com"), "https://mta-sts.example.com/.well-known/mta-sts.txt", "DNS hosting provider of example.com manages this policy"},
		"enforced.example.com": {"mode enforce", "or not at all", "mx: *.mail.example.net mx: mx1.example.com", d.stsID(t, "enforced.example.com")},
		"retiring.example.com": {"mode none", "being withdrawn"},
	} {
		r := c.request(t, http.MethodGet, sni, "mta-sts."+domain, "/")
		expectPage(t, domain, r, "text/html; charset=utf-8")
		text := visibleText(r.body)
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: no %q in %q", domain, w, text)
			}
		}
		for _, never := range []string{"session", "ready", "failed"} {
			if strings.Contains(strings.ToLower(text), never) {
				t.Errorf("%s: the public page mentions %q", domain, never)
			}
		}
	}

	head := c.request(t, http.MethodHead, sni, sni, "/")
	if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d %v %q", head.status, head.header, head.body)
	}
	if r := c.request(t, http.MethodPost, sni, sni, "/"); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", r.status, r.header)
	}
	for _, host := range []string{"mta-sts.not-hosted.example", "mta-sts.off.example.com", "mta-sts.nomx.example.com", "mta-sts.self.example.com"} {
		if r := c.request(t, http.MethodGet, sni, host, "/"); r.status != http.StatusNotFound || len(r.body) != 0 {
			t.Errorf("%s: %d %q, want 404", host, r.status, r.body)
		}
	}
	if r := c.request(t, http.MethodGet, sni, "mta-sts.broken.example.com", "/"); r.status != http.StatusServiceUnavailable ||
		r.header.Get("Retry-After") != retryAfter {
		t.Errorf("failing DNS: %d %v, want 503 with Retry-After", r.status, r.header)
	}
	// The root of another host in the catch-all site is not the handler's.
	if r := c.request(t, http.MethodGet, sni, "www.example.com", "/"); r.status != http.StatusTeapot {
		t.Errorf("www.example.com/: %d, want the next handler's 418", r.status)
	}
}
