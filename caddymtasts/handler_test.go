package caddymtasts

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func provisionHandler(t *testing.T, servers ...string) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{PolicyDNS: PolicyDNS{Servers: servers}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	// Without a config, ctx.Logger() is a development logger on stderr.
	h.failures = newRateLog(zap.NewNop(), failureLogInterval)
	return h
}

// serve runs one request through h and returns the status it chose: from
// the recorder, or from the error Caddy would turn into the response.
func serve(t *testing.T, h *Handler, method, host, path string) (int, *httptest.ResponseRecorder) {
	t.Helper()
	r := httptest.NewRequest(method, "https://placeholder"+path, nil)
	r.Host = host
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	err := h.ServeHTTP(w, r, next)
	var herr caddyhttp.HandlerError
	switch {
	case errors.As(err, &herr):
		return herr.StatusCode, w
	case err != nil:
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	return w.Code, w
}

// Go's HTTP server answers 400 to a Host header in U-labels before any
// handler runs, so only the handler itself shows that it takes them.
func TestHandlerTakesULabelHost(t *testing.T) {
	d := startDNS(t)
	h := provisionHandler(t, d.addr)
	status, w := serve(t, h, http.MethodGet, "MTA-STS.BÜCHER.Example.:443", policyPath)
	if want := expectedPolicy(t, "mx1.xn--bcher-kva.example").Encode(); status != http.StatusOK || w.Body.String() != string(want) {
		t.Errorf("got %d %q, want 200 %q", status, w.Body, want)
	}
}

func TestHandlerAnswersWithoutDNS(t *testing.T) {
	// Had DNS been asked, the closed port would have made each a 503.
	h := provisionHandler(t, freeAddr(t))
	before := lookupCount(t)
	for _, tc := range []struct {
		method, host, path string
		status             int
	}{
		{http.MethodGet, "www.example.com", policyPath, http.StatusNotFound},
		{http.MethodGet, "192.0.2.1", policyPath, http.StatusNotFound},
		{http.MethodGet, "mta-sts.exa_mple.com", policyPath, http.StatusNotFound},
		{http.MethodPost, "www.example.com", policyPath, http.StatusNotFound},
		{http.MethodPost, "mta-sts.example.com", policyPath, http.StatusMethodNotAllowed},
		{http.MethodGet, "www.example.com", "/", http.StatusTeapot},
		{http.MethodPost, "mta-sts.example.com", "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "mta-sts.example.com", "/index.html", http.StatusTeapot},
		{http.MethodPost, "mta-sts.example.com", "/other", http.StatusTeapot},
	} {
		if status, _ := serve(t, h, tc.method, tc.host, tc.path); status != tc.status {
			t.Errorf("%s %s%s: got %d, want %d", tc.method, tc.host, tc.path, status, tc.status)
		}
	}
	if n := lookupCount(t) - before; n != 0 {
		t.Errorf("%v DNS lookups", n)
	}
	if status, w := serve(t, h, http.MethodGet, "mta-sts.example.com", policyPath); status != http.StatusServiceUnavailable ||
		w.Header().Get("Retry-After") != retryAfter {
		t.Errorf("unreachable DNS: got %d %v, want 503 with Retry-After", status, w.Header())
	}
}
