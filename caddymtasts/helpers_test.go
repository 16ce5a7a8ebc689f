package caddymtasts

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// runningHandler returns the policy handler of the Caddy startCaddy started.
func runningHandler(t *testing.T) *Handler {
	t.Helper()
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range app.(*caddyhttp.App).Servers["mta_sts"].Routes {
		for _, handler := range route.Handlers {
			if h, ok := handler.(*Handler); ok {
				return h
			}
		}
	}
	t.Fatal("no mta_sts handler in Caddy's config")
	return nil
}

// stopClock makes l's clock stand at at. It takes the lock l reads its
// clock under, so that requests served meanwhile see one clock or the other.
func stopClock(l *rateLog, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = func() time.Time { return at }
}
