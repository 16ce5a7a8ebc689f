package caddymtasts

import (
	"testing"

	"github.com/coredns-mtasts/mtasts/policy"
)

// expectMapping checks f against a table of inputs and the outputs wanted,
// "" meaning an error.
func expectMapping(t *testing.T, name string, f func(string) (string, error), table map[string]string) {
	t.Helper()
	for in, want := range table {
		got, err := f(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("%s(%q) = %q, %v; want %q", name, in, got, err, want)
		}
	}
}

func TestPolicyDomain(t *testing.T) {
	expectMapping(t, "policyDomain", policyDomain, map[string]string{
		"mta-sts.example.com":           "example.com",
		"MTA-STS.Example.COM":           "example.com",
		"mta-sts.example.com.":          "example.com",
		"mta-sts.example.com:8443":      "example.com",
		"mta-sts.example.com.:443":      "example.com",
		"mta-sts.bücher.example":        "xn--bcher-kva.example",
		"MTA-STS.BÜCHER.Example.":       "xn--bcher-kva.example",
		"mta-sts.xn--bcher-kva.example": "xn--bcher-kva.example",
		"mta-sts.sub.example.com":       "sub.example.com",
		"mta-sts.com":                   "com",
		"mta-sts.mta-sts.example.com":   "",
		"MTA-STS.mta-sts.example.com.":  "",
		"www.example.com":               "",
		"example.com":                   "",
		"mta-sts":                       "",
		"mta-sts.":                      "",
		"mta-sts..example.com":          "",
		"mta-sts.example.com..":         "",
		"*.example.com":                 "",
		"mta-sts.*.example.com":         "",
		"mta-sts.-bad.example":          "",
		"mta-sts.exa mple.com":          "",
		"mta-sts.xn--zz.example":        "",
		"127.0.0.1":                     "",
		"127.0.0.1:443":                 "",
		"[::1]:443":                     "",
		"::1":                           "",
		"":                              "",
	})
}

// FuzzPolicyDomain checks that an accepted host yields a canonical domain
// that names the same Policy Host again.
func FuzzPolicyDomain(f *testing.F) {
	for _, seed := range []string{
		"mta-sts.example.com", "MTA-STS.BÜCHER.Example.:443", "[::1]:443",
		"mta-sts.xn--bcher-kva.example", "*.example.com", "mta-sts..", "127.0.0.1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		domain, err := policyDomain(host)
		if err != nil {
			return
		}
		if canonical, err := policy.NormalizeHost(domain); err != nil || canonical != domain {
			t.Fatalf("policyDomain(%q) = %q, not canonical (%q, %v)", host, domain, canonical, err)
		}
		if again, err := policyDomain(policyHostPrefix + domain); err != nil || again != domain {
			t.Fatalf("policyDomain(%q) = %q, %v; want %q", policyHostPrefix+domain, again, err, domain)
		}
	})
}
