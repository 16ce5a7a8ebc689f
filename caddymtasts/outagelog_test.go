//go:build unix

package caddymtasts

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// During a DNS outage every policy request is a 503, and Caddy logs each
// handler error of 500 or more with the whole request: 100 requests wrote
// 64,765 bytes in 100 lines. The handler's own log of them is one line per
// interval.
func TestOutageLogBounded(t *testing.T) {
	caddyLog := captureStderr(t)
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	// Gets the certificate, so that the handshakes below need no DNS.
	expectPolicy(t, c.get(t, "mta-sts.example.com"), expectedPolicy(t, "mx1.example.com").Encode())
	failures := runningHandler(t).failures
	start := time.Now()
	stopClock(failures, start)
	d.stop()

	const n = 100
	for range n {
		expectUnavailable(t, c.get(t, "mta-sts.example.com"))
	}
	stopClock(failures, start.Add(failureLogInterval))
	expectUnavailable(t, c.get(t, "mta-sts.example.com"))

	// The servers of earlier tests may still write to standard error too;
	// only what Caddy's HTTP server logs counts.
	var lines []map[string]any
	logged := 0
	for _, line := range bytes.Split(caddyLog(), []byte("\n")) {
		var fields map[string]any
		if json.Unmarshal(line, &fields) != nil {
			continue
		}
		switch fields["logger"] {
		case "http.log.error":
			t.Errorf("Caddy logged a request error: %s", line)
		case "http.handlers.mta_sts":
			lines = append(lines, fields)
			logged += len(line) + 1
		}
	}
	t.Logf("%d requests answered 503; the log has %d bytes in %d lines of them", n+1, logged, len(lines))
	// The first failure is logged at once, the next after the interval
	// with the count of those in between.
	want := []float64{0, n - 1}
	if len(lines) != len(want) {
		t.Fatalf("the handler logged %d lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, suppressed := range want {
		if l := lines[i]; l["level"] != "error" || l["kind"] != "failed" || l["domain"] != "example.com" ||
			l["suppressed"] != suppressed || l["error"] == nil {
			t.Errorf("line %d: %v, want suppressed %v", i, l, suppressed)
		}
	}
}

// expectUnavailable checks that r is the 503 of a failed lookup.
func expectUnavailable(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != retryAfter ||
		r.header.Get("Cache-Control") != "no-store" || len(r.body) != 0 {
		t.Fatalf("got %d %v %q, want 503 with Retry-After and no body", r.status, r.header, r.body)
	}
}

// captureStderr points the process's standard error, file descriptor 2, at
// a file for the rest of the test, and returns a function that reads what
// was written there; at the end it copies that to the real standard error,
// so nothing is lost. startCaddy's config logs to Caddy's writer "stderr",
// which holds on to the *os.File it was first opened with across configs:
// only the descriptor catches what it writes.
func captureStderr(t *testing.T) func() []byte {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup2(int(f.Fd()), 2); err != nil {
		t.Fatal(err)
	}
	read := func() []byte {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Cleanup(func() {
		if err := unix.Dup2(saved, 2); err != nil {
			t.Error(err)
		}
		unix.Close(saved)
		os.Stderr.Write(read())
		f.Close()
	})
	return read
}
