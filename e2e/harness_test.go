//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Addresses inside the namespace, which has nothing but loopback.
const (
	dnsAddr      = "127.0.0.53" // our CoreDNS, authoritative for the test zones; the namespace's resolv.conf
	resolverAddr = "127.0.0.54" // unbound, validating, stub to dnsAddr for signed.test
	cacheAddr    = "127.0.0.55" // our CoreDNS again, cache + forward to dnsAddr: what Caddy must not ask
	webAddr      = "127.0.0.1"  // our Caddy: policy_server in the Corefile
	ownerWebAddr = "127.0.0.2"  // the owner-managed domain's own mta-sts host (reaches our Caddy too)
	adminAddr    = "127.0.0.1:2019"
	pebbleACME   = "127.0.0.1:14000" // Pebble's ACME directory; its API certificate names 127.0.0.1 only
	pebbleAdmin  = "127.0.0.1:15000" // Pebble's management port: the root of what it issues (/roots/0)
	maxAge       = 86400             // set in the Corefile, so we see it travel to the client
)

// suite is the state the scenarios share: the work dir, the binaries and the
// daemons, in start order.
type suite struct {
	work      string        // configs, zones, keys, storage, one log per daemon
	bin       string        // coredns, caddy, pebble
	pebbleDir string        // Pebble's module, for its test certificates
	keyBase   string        // the DNSSEC key of signed.test, under work/keys
	pebbleCA  string        // the root of the certificates Pebble issues (PEM file)
	mxCA      *mxCA         // the CA of the MX hosts' certificates, its root in work/mx-ca.pem
	hooks     *hookReceiver // the webhook's receiver, from the step that starts it on
	daemons   map[string]*daemon
	order     []string
	passed    atomic.Int32 // checks passed, for the closing line

	// The password of the dashboard's user, and its bcrypt hash.
	dashboardPassword, dashboardHash string
	// The secret of the autopilot's TSIG key: in Knot's config, and in
	// Caddy's environment (MTA_STS_TSIG_SECRET, as Caddyfile.example has it).
	tsigSecret string
}

// newSuite reads what e2e/run prepared from the environment; without it the
// suite cannot run (it needs root and the namespace), so it is skipped.
func newSuite(t *testing.T) *suite {
	s := &suite{
		bin:       os.Getenv("E2E_BIN"),
		pebbleDir: os.Getenv("E2E_PEBBLE_DIR"),
		daemons:   map[string]*daemon{},
	}
	if s.bin == "" || s.pebbleDir == "" {
		t.Skip("run through e2e/run: it needs root, a network namespace and E2E_BIN, E2E_PEBBLE_DIR")
	}
	work, err := os.MkdirTemp("", "mtasts-e2e.")
	if err != nil {
		t.Fatal(err)
	}
	s.work = work
	t.Logf("work dir: %s", work)
	t.Cleanup(func() { s.cleanup(t) })
	return s
}

// cleanup stops the daemons in reverse start order. After a failure it shows
// the end of each log and keeps the work dir; after a pass it removes it,
// unless E2E_KEEP is set.
func (s *suite) cleanup(t *testing.T) {
	states := map[string]string{}
	for i := len(s.order) - 1; i >= 0; i-- {
		states[s.order[i]] = s.daemons[s.order[i]].state()
		s.daemons[s.order[i]].stop()
	}
	if s.hooks != nil {
		s.hooks.Close()
	}
	if t.Failed() {
		for _, name := range s.order {
			t.Logf("--- %s: %s; last lines of %s.log ---\n%s", name, states[name], name, tail(s.path(name+".log"), 40))
		}
	}
	if t.Failed() || os.Getenv("E2E_KEEP") != "" {
		t.Logf("work dir (configs, zones, logs): %s", s.work)
		return
	}
	os.RemoveAll(s.work)
}

// path names a file in the work dir.
func (s *suite) path(elem ...string) string {
	return filepath.Join(append([]string{s.work}, elem...)...)
}

// ok records a passed check, under the step's name in -v output, on one
// line (multi-line values are shown with " | ").
func (s *suite) ok(t *testing.T, format string, args ...any) {
	t.Helper()
	s.passed.Add(1)
	t.Log("ok: " + strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " | "))
}

// expect is the suite's one comparison, of strings or numbers: every check
// names what it compares.
func (s *suite) expect(t *testing.T, what string, got, want any) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %q, want %q", what, fmt.Sprint(got), fmt.Sprint(want))
	}
	s.ok(t, "%s: %v", what, want)
}

// step is one scenario: its steps run in order and share the suite.
type step struct {
	name string
	run  func(*testing.T, *suite)
}

// runSteps runs steps in order and stops at the first that fails: later
// scenarios build on the state earlier ones leave.
func runSteps(t *testing.T, s *suite, steps []step) {
	start := time.Now()
	for _, st := range steps {
		t.Logf("== [%3.0fs] %s", time.Since(start).Seconds(), st.name)
		if !t.Run(st.name, func(t *testing.T) { st.run(t, s) }) {
			t.Fatalf("e2e: %d passed, stopped at %q", s.passed.Load(), st.name)
		}
	}
	t.Logf("e2e: %d passed, 0 failed, in %.0fs", s.passed.Load(), time.Since(start).Seconds())
}

// daemon is a program the suite started, with its output in work/NAME.log.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // how it exited, once done is closed
}

// start runs a daemon in the background; env is added to the suite's.
func (s *suite) start(t *testing.T, name string, env []string, args ...string) *daemon {
	t.Helper()
	log, err := os.OpenFile(s.path(name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	if _, seen := s.daemons[name]; !seen {
		s.order = append(s.order, name)
	}
	s.daemons[name] = d
	return d
}

// running reports whether the daemon has not exited.
func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *daemon) state() string {
	if d.running() {
		return "running"
	}
	return fmt.Sprintf("exited (%v)", d.err)
}

// stop ends the daemon: SIGTERM, then SIGKILL after 5 s.
func (d *daemon) stop() {
	if !d.running() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// waitUntil polls ready until it returns nil; it fails early if the daemon
// exited, late after limit.
func (s *suite) waitUntil(t *testing.T, name string, limit time.Duration, ready func() error) {
	t.Helper()
	d := s.daemons[name]
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return
		}
		if !d.running() {
			t.Fatalf("%s %s; see %s", name, d.state(), s.path(name+".log"))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %v", name, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// eventually polls cond until it holds or limit passes: for what a zone
// reload (reload 1s) changes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
