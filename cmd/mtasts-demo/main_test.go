package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/internal/testcmd"
	"github.com/coredns-mtasts/mtasts/policy"
)

var binary string

func TestMain(m *testing.M) { testcmd.Run(m, &binary) }

// demo is a running mtasts-demo process and what it printed.
type demo struct {
	cmd    *exec.Cmd
	output chan string // every line printed after the usage text
	usage  []string
}

func startDemo(t *testing.T, p ports) *demo {
	t.Helper()
	cmd := exec.Command(binary, "-dns-port", fmt.Sprint(p.dns), "-https-port", fmt.Sprint(p.https),
		"-dns-metrics-port", fmt.Sprint(p.dnsMetrics), "-https-metrics-port", fmt.Sprint(p.httpsMetrics))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &demo{cmd: cmd, output: make(chan string, 1000)}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		d.usage = append(d.usage, lines.Text())
		if strings.Contains(lines.Text(), "Ctrl-C stops") {
			break
		}
	}
	go func() {
		for lines.Scan() {
			d.output <- lines.Text()
		}
		close(d.output)
	}()
	if len(d.usage) == 0 {
		t.Fatal("the demo printed nothing")
	}
	return d
}

// command returns the printed command line that starts with prefix and
// contains substr.
func (d *demo) command(t *testing.T, prefix, substr string) string {
	t.Helper()
	for _, l := range d.usage {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) && strings.Contains(l, substr) {
			return l
		}
	}
	t.Fatalf("no %q command with %q in:\n%s", prefix, substr, strings.Join(d.usage, "\n"))
	return ""
}

// shell runs a printed command line the way a user pastes it.
func shell(t *testing.T, line string) (string, error) {
	t.Helper()
	out, err := exec.Command("bash", "-c", "set -o pipefail; "+line).Output()
	return strings.TrimSpace(string(out)), err
}

func requireTools(t *testing.T, tools ...string) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; .ci/run installs it", tool)
			}
			t.Skipf("%s is not installed (Debian: bind9-dnsutils, curl)", tool)
		}
	}
}

// The demo works as its usage text says: the printed dig and curl commands
// show the record, the policy and its id, the refused certificate, the
// metrics of both sides, the effect of editing the zone; every request is
// logged; Ctrl-C stops it.
func TestDemoAsPrinted(t *testing.T) {
	requireTools(t, "dig", "curl", "sha256sum", "grep")
	port := ports{dns: testcmd.FreePort(t), https: testcmd.FreePort(t), dnsMetrics: testcmd.FreePort(t), httpsMetrics: testcmd.FreePort(t)}
	d := startDemo(t, port)
	testcmd.QueryUntilUp(t, fmt.Sprintf("127.0.0.1:%d", port.dns), "example.com.", dns.TypeSOA)

	record, err := shell(t, d.command(t, "dig", "_mta-sts.example.com TXT"))
	p, _ := policy.New(policy.ModeTesting, []string{"mx1.example.com", "mx2.example.com"}, 604800)
	if want := fmt.Sprintf("%q", "v=STSv1; id="+p.ID()); err != nil || record != want {
		t.Errorf("dig _mta-sts: %q, %v; want %s", record, err, want)
	}
	body, err := shell(t, d.command(t, "curl", "https://mta-sts.example.com:"))
	if want := strings.TrimSpace(string(p.Encode())); err != nil || strings.ReplaceAll(body, "\r", "") != strings.ReplaceAll(want, "\r", "") {
		t.Errorf("curl policy: %q, %v; want %q", body, err, want)
	}
	if id, err := shell(t, d.command(t, "curl", "sha256sum")); err != nil || id != p.ID() {
		t.Errorf("sha256 of the policy: %q, %v; want %s", id, err, p.ID())
	}
	for _, name := range []string{"_mta-sts.shop.example.com TXT", "_smtp._tls.example.com TXT"} {
		if out, err := shell(t, d.command(t, "dig", name)); err != nil || out == "" {
			t.Errorf("dig %s: %q, %v", name, out, err)
		}
	}
	if out, err := shell(t, d.command(t, "dig", "_mta-sts.www.example.com TXT")); err != nil || out != "" {
		t.Errorf("dig _mta-sts.www: %q, %v; want nothing", out, err)
	}
	if out, err := shell(t, d.command(t, "curl", "mta-sts.www.example.com")); err == nil {
		t.Errorf("curl mta-sts.www.example.com succeeded: %q", out)
	}
	checkMetrics(t, d, port.dnsMetrics, "coredns_mtasts_answers_total")
	checkMetrics(t, d, port.httpsMetrics, "caddy_mta_sts_policy_requests_total", "caddy_mta_sts_permission_decisions_total")

	editZone(t, d)
	if record, err := shell(t, d.command(t, "dig", "_mta-sts.example.com TXT")); err != nil || record == "" || strings.Contains(record, p.ID()) {
		t.Errorf("after the edit, dig _mta-sts: %q, %v; want a new id", record, err)
	}

	d.cmd.Process.Signal(syscall.SIGINT)
	logged := d.drain(t)
	for _, want := range []string{"dns 127.0.0.1 TXT _mta-sts.example.com.", "handled request", `"uri": "/.well-known/mta-sts.txt"`, "stopping"} {
		if !strings.Contains(logged, want) {
			t.Errorf("output lacks %q:\n%s", want, logged)
		}
	}
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("exit after Ctrl-C: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(d.zonePath(t))); !os.IsNotExist(err) {
		t.Errorf("the demo left its directory behind: %v", err)
	}
}

// checkMetrics runs the printed curl command for the metrics on port and
// requires a sample of each named metric in its output.
func checkMetrics(t *testing.T, d *demo, port int, names ...string) {
	t.Helper()
	line := d.command(t, "curl", fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	out, err := shell(t, line)
	if err != nil {
		t.Errorf("%s: %v; output:\n%s", line, err, out)
		return
	}
	for _, name := range names {
		if !regexp.MustCompile(`(?m)^` + name + `(\{.*\})? [0-9]`).MatchString(out) {
			t.Errorf("%s: no %s sample in:\n%s", line, name, out)
		}
	}
}

var zonePath = regexp.MustCompile(`Edit the MX records in (\S+),`)

// editZone follows the usage text: change an MX record, raise the serial,
// and wait for the reload.
func editZone(t *testing.T, d *demo) {
	t.Helper()
	path := d.zonePath(t)
	zone, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(zone), "IN MX    20 mx2", "IN MX    20 mx3", 1)
	edited = regexp.MustCompile(`hostmaster (\d+)`).ReplaceAllString(edited, "hostmaster 2099010101")
	if edited == string(zone) {
		t.Fatal("the example zone changed: the edit does not apply")
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // the demo's file plugin reloads every second
}

// zonePath returns the zone file the usage text invites to edit.
func (d *demo) zonePath(t *testing.T) string {
	t.Helper()
	m := zonePath.FindStringSubmatch(strings.Join(d.usage, "\n"))
	if m == nil {
		t.Fatal("the usage text names no zone file")
	}
	return m[1]
}

// drain returns all output until the process closes stdout.
func (d *demo) drain(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-d.output:
			if !ok {
				return b.String()
			}
			b.WriteString(l + "\n")
		case <-timeout:
			t.Fatalf("the demo did not stop within 15s after Ctrl-C; output:\n%s", b.String())
		}
	}
}
