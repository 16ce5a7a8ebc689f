package caddymtasts

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func adapt(t *testing.T, caddyfile string) ([]byte, []caddyconfig.Warning, error) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("no caddyfile adapter")
	}
	return adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
}

// expectJSON compares JSON documents by value, so key order and spacing do
// not matter.
func expectJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gotNorm, _ := json.Marshal(g)
	wantNorm, _ := json.Marshal(w)
	if !bytes.Equal(gotNorm, wantNorm) {
		t.Errorf("adapted to\n%s\nwant\n%s", gotNorm, wantNorm)
	}
}

func TestAdaptCaddyfile(t *testing.T) {
	// No route block: the directive order puts mta_sts ahead of the
	// catch-all handle.
	got, warnings, err := adapt(t, `{
	on_demand_tls {
		permission mta_sts {
			servers 192.0.2.53 [2001:db8::53]:5353
			timeout 2s
			allow_ttl 5m
			deny_ttl 10s
			stale_allow 12h
			cache_size 500
			new_certs_per_domain_hour 20
		}
	}
}

https:// {
	tls internal {
		on_demand
	}
	handle {
		respond 404
	}
	mta_sts {
		servers 192.0.2.53
		timeout 1500ms
	}
}
`)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v %v", err, warnings)
	}
	expectJSON(t, got, `{"apps": {
		"http": {"servers": {"srv0": {
			"listen": [":443"],
			"routes": [{"handle": [
				{"handler": "mta_sts", "servers": ["192.0.2.53"], "timeout": 1500000000},
				{"handler": "subroute", "routes": [{"handle": [{"handler": "static_response", "status_code": 404}]}]}
			]}],
			"tls_connection_policies": [{}]
		}}},
		"tls": {"automation": {
			"policies": [{"issuers": [{"module": "internal"}], "on_demand": true}],
			"on_demand": {"permission": {
				"module": "mta_sts",
				"servers": ["192.0.2.53", "[2001:db8::53]:5353"],
				"timeout": 2000000000,
				"allow_ttl": 300000000000,
				"deny_ttl": 10000000000,
				"stale_allow": 43200000000000,
				"cache_size": 500,
				"new_certs_per_domain_hour": 20
			}}
		}}
	}}`)
}

func TestAdaptDefaults(t *testing.T) {
	got, warnings, err := adapt(t, `{
	on_demand_tls {
		permission mta_sts
	}
}

https:// {
	tls internal {
		on_demand
	}
	mta_sts
}
`)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v %v", err, warnings)
	}
	expectJSON(t, got, `{"apps": {
		"http": {"servers": {"srv0": {
			"listen": [":443"],
			"routes": [{"handle": [{"handler": "mta_sts"}]}],
			"tls_connection_policies": [{}]
		}}},
		"tls": {"automation": {
			"policies": [{"issuers": [{"module": "internal"}], "on_demand": true}],
			"on_demand": {"permission": {"module": "mta_sts"}}
		}}
	}}`)
}

func TestAdaptRejects(t *testing.T) {
	site := func(handler string) string {
		return "https:// {\n\ttls internal {\n\t\ton_demand\n\t}\n\t" + handler + "\n}\n"
	}
	permission := func(block string) string {
		return "{\n\ton_demand_tls {\n\t\tpermission mta_sts {\n" + block + "\n\t\t}\n\t}\n}\n" + site("mta_sts")
	}
	for name, caddyfile := range map[string]string{
		"handler argument":          site("mta_sts 192.0.2.53"),
		"handler unknown option":    site("mta_sts {\n\t\tttl 1s\n\t}"),
		"handler servers empty":     site("mta_sts {\n\t\tservers\n\t}"),
		"handler bad timeout":       site("mta_sts {\n\t\ttimeout soon\n\t}"),
		"handler two timeouts":      site("mta_sts {\n\t\ttimeout 1s 2s\n\t}"),
		"permission argument":       "{\n\ton_demand_tls {\n\t\tpermission mta_sts 192.0.2.53\n\t}\n}\n" + site("mta_sts"),
		"permission unknown option": permission("\t\t\tfoo 1"),
		"permission bad allow_ttl":  permission("\t\t\tallow_ttl forever"),
		"permission bad cache_size": permission("\t\t\tcache_size many"),
		"permission no cache_size":  permission("\t\t\tcache_size"),
	} {
		if got, _, err := adapt(t, caddyfile); err == nil {
			t.Errorf("%s: adapted to %s", name, got)
		}
	}
}

func TestAdaptRejectsBadCountWithItsLine(t *testing.T) {
	for _, value := range []string{"0", "-1", "ten", "1.5"} {
		_, _, err := adapt(t, `{
	on_demand_tls {
		permission mta_sts {
			servers 192.0.2.53
			new_certs_per_domain_hour `+value+`
		}
	}
}
`)
		if err == nil || !strings.Contains(err.Error(), "Caddyfile:5") || !strings.Contains(err.Error(), "new_certs_per_domain_hour") {
			t.Errorf("new_certs_per_domain_hour %s: got error %v, want one naming the option and Caddyfile:5", value, err)
		}
	}
}

// Mistakes a user made that once passed caddy adapt fail there, naming
// the option and the line.
func TestAdaptRejectsBadValuesWithTheirLine(t *testing.T) {
	for option, want := range map[string]string{
		"allow_ttl -5m":          "allow_ttl: -5m is negative",
		"deny_ttl -1s":           "deny_ttl: -1s is negative",
		"timeout -3s":            "timeout: -3s is negative",
		"servers 127.0.0.1:abc":  `servers: DNS server "127.0.0.1:abc": want host or host:port, with a port from 1 to 65535`,
		"servers 192.0.2.53 :53": `servers: DNS server ":53"`,
	} {
		_, _, err := adapt(t, `{
	on_demand_tls {
		permission mta_sts {
			servers 192.0.2.53
			`+option+`
		}
	}
}
`)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Caddyfile:5") {
			t.Errorf("%s: got error %v, want one containing %q and Caddyfile:5", option, err, want)
		}
	}
	_, _, err := adapt(t, "https:// {\n\tmta_sts {\n\t\tservers 127.0.0.1:abc\n\t}\n}\n")
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:3") {
		t.Errorf("handler with a bad server: got error %v, want one naming Caddyfile:3", err)
	}
}

func TestAdaptCaddyfileExample(t *testing.T) {
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	_, local, found := strings.Cut(string(example), "# Local variant")
	if !found {
		t.Fatal("Caddyfile.example has no local variant")
	}
	_, local, found = strings.Cut(local, "\n# {\n")
	if !found {
		t.Fatal("the local variant has no global options block")
	}
	local = uncomment("# {\n" + local)

	for name, tc := range map[string]struct {
		caddyfile string
		want      []string
	}{
		"production": {string(example), []string{
			`"handler":"mta_sts"`, `"module":"mta_sts"`, `"on_demand":true`,
			`"module":"acme"`, `"email":"hostmaster@provider.example"`,
		}},
		"local": {local, []string{
			`"handler":"mta_sts"`, `"module":"mta_sts"`, `"on_demand":true`, `"module":"internal"`,
		}},
	} {
		got, warnings, err := adapt(t, tc.caddyfile)
		if err != nil || len(warnings) > 0 {
			t.Errorf("%s: %v %v", name, err, warnings)
			continue
		}
		for _, w := range tc.want {
			if !bytes.Contains(got, []byte(w)) {
				t.Errorf("%s: no %s in\n%s", name, w, got)
			}
		}
	}
}

// uncomment strips the comment marker from each line of a commented-out
// Caddyfile.
func uncomment(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l, ok := strings.CutPrefix(l, "#"); ok {
			lines[i] = strings.TrimPrefix(l, " ")
		}
	}
	return strings.Join(lines, "\n")
}
