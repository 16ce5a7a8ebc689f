package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/internal/testcmd"
	"github.com/coredns-mtasts/mtasts/policy"
)

// upstreamDirectives reads the directive order of the CoreDNS release this
// module builds against from its plugin.cfg.
func upstreamDirectives(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/coredns/coredns").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	f, err := os.Open(filepath.Join(strings.TrimSpace(string(out)), "plugin.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for s := bufio.NewScanner(f); s.Scan(); {
		line := strings.TrimSpace(s.Text())
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			names = append(names, name)
		}
	}
	return names
}

func TestDirectivesAreUpstreamsWithMTASTSBelowDNSSEC(t *testing.T) {
	upstream := upstreamDirectives(t)
	if len(upstream) < 50 {
		t.Fatalf("read only %d directives from plugin.cfg", len(upstream))
	}
	i := slices.Index(upstream, "dnssec") + 1
	want := slices.Insert(slices.Clone(upstream), i, "mtasts")
	if !slices.Equal(dnsserver.Directives, want) {
		t.Errorf("directives\n%v\nwant\n%v", dnsserver.Directives, want)
	}
}

// binary is this command, built once by TestMain.
var binary string

func TestMain(m *testing.M) { testcmd.Run(m, &binary) }

func TestBinaryListsEveryPlugin(t *testing.T) {
	out, err := exec.Command(binary, "-plugins").Output()
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Fields(string(out))
	for _, name := range append(upstreamDirectives(t), "mtasts") {
		if !slices.Contains(listed, name) {
			t.Errorf("-plugins does not list %s", name)
		}
	}
}

// The binary serves Corefile.example and its zone as the README shows, run
// from the repository's root.
func TestBinaryServesCorefileExample(t *testing.T) {
	port := strconv.Itoa(testcmd.FreePort(t))
	corefile, err := os.ReadFile("../../Corefile.example")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "Corefile")
	corefile = []byte(strings.Replace(string(corefile), ":1053 {", ":"+port+" {", 1))
	if err := os.WriteFile(conf, corefile, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-conf", conf)
	cmd.Dir = "../.."
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	addr := net.JoinHostPort("127.0.0.1", port)
	resp := testcmd.QueryUntilUp(t, addr, "_mta-sts.example.com.", dns.TypeTXT)
	p, _ := policy.New(policy.ModeTesting, []string{"mx1.example.com", "mx2.example.com"}, 604800)
	if len(resp.Answer) != 1 || resp.Answer[0].(*dns.TXT).Txt[0] != "v=STSv1; id="+p.ID() {
		t.Errorf("_mta-sts.example.com TXT: %v, want id %s", resp, p.ID())
	}
	for _, name := range []string{"_mta-sts.no-mail.example.com.", "_mta-sts.www.example.com."} {
		if resp := testcmd.QueryUntilUp(t, addr, name, dns.TypeTXT); resp.Rcode != dns.RcodeNameError {
			t.Errorf("%s: want NXDOMAIN, got %v", name, resp)
		}
	}
}

// With the reload plugin, an edited mtasts block takes effect without a
// restart: the id follows the new mode.
func TestReloadPluginAppliesNewConfiguration(t *testing.T) {
	port := testcmd.FreePort(t)
	conf := filepath.Join(t.TempDir(), "Corefile")
	zone, err := filepath.Abs("../../examples/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	corefile := func(mode string) []byte {
		return fmt.Appendf(nil, "example.com:%d {\n bind 127.0.0.1\n reload 2s 1s\n mtasts {\n  policy_server 127.0.0.1\n  mode %s\n }\n file %s\n}\n", port, mode, zone)
	}
	if err := os.WriteFile(conf, corefile("testing"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-conf", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	id := func(mode policy.Mode) string {
		p, _ := policy.New(mode, []string{"mx1.example.com", "mx2.example.com"}, 604800)
		return "v=STSv1; id=" + p.ID()
	}
	record := func() string {
		resp := testcmd.QueryUntilUp(t, addr, "_mta-sts.example.com.", dns.TypeTXT)
		if len(resp.Answer) != 1 {
			return resp.String()
		}
		return resp.Answer[0].(*dns.TXT).Txt[0]
	}
	if got := record(); got != id(policy.ModeTesting) {
		t.Fatalf("before the reload: %s, want %s", got, id(policy.ModeTesting))
	}
	if err := os.WriteFile(conf, corefile("enforce"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for got := record(); got != id(policy.ModeEnforce); got = record() {
		if time.Now().After(deadline) {
			t.Fatalf("after the reload: %s, want %s", got, id(policy.ModeEnforce))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
