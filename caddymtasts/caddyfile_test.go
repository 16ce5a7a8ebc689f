package caddymtasts

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
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

// updateGolden rewrites the expected JSON of every golden file from what
// the adapter produces now; review the result with git diff:
//
//	go test -run TestCaddyfileAdaptGolden ./caddymtasts -args -update
var updateGolden = flag.Bool("update", false, "rewrite the expected JSON of testdata/caddyfile_adapt/*.caddyfiletest")

// TestCaddyfileAdaptGolden adapts each testdata/caddyfile_adapt/*.caddyfiletest
// the way Caddy's integration test does its own: the file is a Caddyfile,
// a line "----------", then the JSON the Caddyfile adapts to. Both JSON
// texts are indented with json.Indent and compared byte for byte, so key
// order matters but spacing does not. The adapter must give no warnings,
// so a Caddyfile that caddy fmt would change fails too. To add a form,
// write the Caddyfile and a separator line, then run with -update (see
// updateGolden) and check the JSON written.
func TestCaddyfileAdaptGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/caddyfile_adapt/*.caddyfiletest")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(data), "\r\n", "\n")
			caddyfile, expected, found := strings.Cut(text, "\n----------\n")
			if !found {
				t.Fatalf("%s: no line ---------- between the Caddyfile and the JSON", file)
			}
			caddyfile = strings.TrimSpace(caddyfile) + "\n"

			got, warnings, err := adapt(t, caddyfile)
			if err != nil {
				t.Fatalf("%s: adapt: %v", file, err)
			}
			for _, w := range warnings {
				t.Errorf("%s: warning: %s", file, w)
			}
			var gotIndented bytes.Buffer
			if err := json.Indent(&gotIndented, got, "", "\t"); err != nil {
				t.Fatalf("%s: adapted to invalid JSON: %v\n%s", file, err, got)
			}

			if *updateGolden {
				out := caddyfile + "----------\n" + gotIndented.String() + "\n"
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}

			var wantIndented bytes.Buffer
			if err := json.Indent(&wantIndented, []byte(strings.TrimSpace(expected)), "", "\t"); err != nil {
				t.Fatalf("%s: the expected part is not JSON: %v", file, err)
			}
			if !bytes.Equal(gotIndented.Bytes(), wantIndented.Bytes()) {
				t.Errorf("%s: adapted JSON differs from the expected part (- expected, + adapted):\n%s",
					file, lineDiff(wantIndented.String(), gotIndented.String()))
			}
		})
	}
}

// lineDiff is a line diff of want and got, from their longest common
// subsequence of lines: "  " common, "- " only in want, "+ " only in got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	// lcs[i][j]: length of the longest common subsequence of w[i:], g[j:].
	lcs := make([][]int, len(w)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(g)+1)
	}
	for i := len(w) - 1; i >= 0; i-- {
		for j := len(g) - 1; j >= 0; j-- {
			if w[i] == g[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			b.WriteString("  " + w[i] + "\n")
			i++
			j++
		case i < len(w) && (j == len(g) || lcs[i+1][j] >= lcs[i][j+1]):
			b.WriteString("- " + w[i] + "\n")
			i++
		default:
			b.WriteString("+ " + g[j] + "\n")
			j++
		}
	}
	return b.String()
}

// The golden example_local.caddyfiletest is the local variant of
// Caddyfile.example, commented out there: the two must not drift apart.
func TestCaddyfileAdaptGoldenLocalIsTheExample(t *testing.T) {
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "caddyfile_adapt", "example_local.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	caddyfile, _, found := strings.Cut(strings.ReplaceAll(string(golden), "\r\n", "\n"), "\n----------\n")
	if !found {
		t.Fatal("example_local.caddyfiletest: no line ----------")
	}
	lines := strings.Split(strings.TrimSpace(caddyfile), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight("# "+l, " ")
	}
	commented := strings.Join(lines, "\n") + "\n"
	if !strings.Contains(strings.ReplaceAll(string(example), "\r\n", "\n"), commented) {
		t.Errorf("Caddyfile.example has no local variant reading, commented out,\n%s", commented)
	}
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
	before, autopilot, found := strings.Cut(string(example), "\t\t# autopilot {\n")
	autopilot, after, found2 := strings.Cut(autopilot, "\t\t# }\n")
	if !found || !found2 {
		t.Fatal("Caddyfile.example has no autopilot block, commented out, in the mta_sts app")
	}
	autopilot = before + "\t\tautopilot {\n" + strings.ReplaceAll(autopilot, "\t\t# ", "\t\t") + "\t\t}\n" + after

	for name, tc := range map[string]struct {
		caddyfile string
		want      []string
	}{
		"production": {string(example), []string{
			`"handler":"mta_sts"`, `"module":"mta_sts"`, `"on_demand":true`,
			`"module":"acme"`, `"email":"hostmaster@provider.example"`,
			`"handler":"tlsrpt"`, `"subjects":["reports.provider.example"]`,
			`"mta_sts":{"servers":["192.0.2.53","198.51.100.53"],"ehlo_name":"mta-sts-check.provider.example"`,
		}},
		"local": {local, []string{
			`"handler":"mta_sts"`, `"module":"mta_sts"`, `"on_demand":true`, `"module":"internal"`,
		}},
		"autopilot": {autopilot, []string{
			`"autopilot":{"primary":"192.0.2.1","tsig_key_name":"autopilot.provider.example","tsig_secret":"{env.MTA_STS_TSIG_SECRET}","check_zone":"provider.example","dry_run":true}`,
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
