package caddymtasts

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// newTestQueue is the webhook queue of a node posting to w, its first
// retry after 50 ms, with the storage given.
func newTestQueue(t *testing.T, w *webhookReceiver, storage certmagic.Storage, retryFor time.Duration) *webhookQueue {
	t.Helper()
	q, err := Webhook{
		URL: w.URL + "/hook", Secret: webhookSecret, CAFile: w.caFile,
		Timeout: caddy.Duration(time.Second), RetryFor: caddy.Duration(retryFor),
	}.queue(storage, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	q.firstRetry = 50 * time.Millisecond
	return q
}

// runQueue delivers q's events until the test ends.
func runQueue(t *testing.T, q *webhookQueue) {
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Go(func() { q.run(ctx) })
	t.Cleanup(func() { cancel(); running.Wait() })
}

// queueEvent stores an event about domain, as the app does, and queues
// it on q.
func queueEvent(t *testing.T, q *webhookQueue, domain string) event {
	t.Helper()
	e := event{Type: eventPolicyChanged, Domain: domain, Time: time.Now(), ID: eventID(domain)}
	key, added, err := (&eventStore{storage: q.storage}).add(context.Background(), e)
	if err != nil || !added {
		t.Fatalf("storing the event: %v, %v", added, err)
	}
	if err := q.enqueue(context.Background(), e.ID, key); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitForRequests waits until w received n requests, and returns them.
func waitForRequests(t *testing.T, w *webhookReceiver, n int, limit time.Duration) []webhookRequest {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if got := w.requests(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests after %s, want %d", len(w.requests()), limit, n)
		}
	}
}

// queued returns the keys in the webhook's queue.
func queued(t *testing.T, storage certmagic.Storage) []string {
	t.Helper()
	keys, err := listKeys(context.Background(), storage, webhookQueuePrefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestWebhookPostsSignedEvents(t *testing.T) {
	w := startWebhookReceiver(t)
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	q := newTestQueue(t, w, storage, time.Hour)
	delivered := total(t, webhookDeliveries.WithLabelValues("delivered"))
	runQueue(t, q)
	e := queueEvent(t, q, "example.com")
	got := waitForRequests(t, w, 1, 5*time.Second)
	stored, err := storage.Load(context.Background(), eventKey(e.Time, e.Domain, e.ID))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].err != nil || got[0].id != e.ID || !bytes.Equal(got[0].body, stored) {
		t.Errorf("received id %s, %v, body %s; want id %s, the stored event %s", got[0].id, got[0].err, got[0].body, e.ID, stored)
	}
	for deadline := time.Now().Add(5 * time.Second); len(queued(t, storage)) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still queued after delivery: %v", queued(t, storage))
		}
	}
	if n := total(t, webhookDeliveries.WithLabelValues("delivered")) - delivered; n != 1 {
		t.Errorf("webhook_deliveries_total{outcome=delivered} grew by %v, want 1", n)
	}
}

func TestWebhookRetriesAfterServerErrors(t *testing.T) {
	w := startWebhookReceiver(t, http.StatusInternalServerError, http.StatusBadGateway, http.StatusInternalServerError)
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	q := newTestQueue(t, w, storage, time.Hour)
	failed := total(t, webhookDeliveries.WithLabelValues("failed"))
	runQueue(t, q)
	e := queueEvent(t, q, "example.com")
	got := waitForRequests(t, w, 4, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // longer than the next retry would wait
	if got = w.requests(); len(got) != 4 {
		t.Fatalf("%d requests, want 3 failed ones and the one that delivered", len(got))
	}
	for _, r := range got {
		if r.err != nil || r.id != e.ID {
			t.Errorf("request of %s: %v; want every attempt of %s, signed", r.id, r.err, e.ID)
		}
	}
	if n := total(t, webhookDeliveries.WithLabelValues("failed")) - failed; n != 3 {
		t.Errorf("webhook_deliveries_total{outcome=failed} grew by %v, want 3", n)
	}
	if keys := queued(t, storage); len(keys) != 0 {
		t.Errorf("queued after delivery: %v", keys)
	}
}

// TestWebhookGivesUpAfterRetryFor retries against a receiver that always
// fails, 50 ms, 100 ms, 200 ms, ... after each attempt, until the bound.
func TestWebhookGivesUpAfterRetryFor(t *testing.T) {
	statuses := make([]int, 100)
	for i := range statuses {
		statuses[i] = http.StatusInternalServerError
	}
	w := startWebhookReceiver(t, statuses...)
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	const retryFor = 600 * time.Millisecond
	q := newTestQueue(t, w, storage, retryFor)
	gaveUp := total(t, webhookDeliveries.WithLabelValues("gave_up"))
	runQueue(t, q)
	start := time.Now()
	queueEvent(t, q, "example.com")
	for deadline := time.Now().Add(10 * time.Second); total(t, webhookDeliveries.WithLabelValues("gave_up")) == gaveUp; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no give-up after %d attempts", len(w.requests()))
		}
	}
	took := time.Since(start)
	attempts := len(w.requests())
	time.Sleep(500 * time.Millisecond)
	if n := len(w.requests()); n != attempts || attempts < 4 || attempts > 7 {
		t.Errorf("%d attempts, %d after giving up; want 4 to 7 within %s (about 0, 50, 150, 350 ms and the last at %s), none after", attempts, n, retryFor, retryFor)
	}
	if took < retryFor || took > retryFor+2*time.Second {
		t.Errorf("gave up after %s, want soon after %s", took, retryFor)
	}
	if keys := queued(t, storage); len(keys) != 0 {
		t.Errorf("queued after giving up: %v", keys)
	}
}

// TestTwoNodesPostEachEventOnce runs the queues of two nodes on one
// storage, each queueing half the events and both delivering: each event
// is posted once.
func TestTwoNodesPostEachEventOnce(t *testing.T) {
	w := startWebhookReceiver(t)
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	nodes := []*webhookQueue{newTestQueue(t, w, storage, time.Hour), newTestQueue(t, w, storage, time.Hour)}
	for _, q := range nodes {
		runQueue(t, q)
	}
	const n = 20
	for i := range n {
		queueEvent(t, nodes[i%2], fmt.Sprintf("d%d.example.com", i))
	}
	waitForRequests(t, w, n, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	seen := map[string]int{}
	for _, r := range w.requests() {
		seen[r.id]++
		if r.err != nil {
			t.Error(r.err)
		}
	}
	for id, times := range seen {
		if times != 1 {
			t.Errorf("event %s posted %d times", id, times)
		}
	}
	if len(seen) != n {
		t.Errorf("%d events posted, want %d", len(seen), n)
	}
}

func TestWebhookQueueIsBounded(t *testing.T) {
	w := startWebhookReceiver(t)
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	q := newTestQueue(t, w, storage, time.Hour)
	q.queued.Store(maxQueuedDeliveries)
	dropped := total(t, webhookDeliveries.WithLabelValues("dropped"))
	queueEvent(t, q, "example.com")
	if keys := queued(t, storage); len(keys) != 0 || total(t, webhookDeliveries.WithLabelValues("dropped"))-dropped != 1 {
		t.Errorf("a full queue took the event: %v", keys)
	}
}

func TestWebhookRefusesBadOptions(t *testing.T) {
	t.Setenv("EMPTY_SECRET", "")
	for name, w := range map[string]Webhook{
		"http":           {URL: "http://hooks.example/", Secret: "s"},
		"no URL":         {Secret: "s"},
		"no secret":      {URL: "https://hooks.example/"},
		"empty env":      {URL: "https://hooks.example/", Secret: "{env.EMPTY_SECRET}"},
		"negative":       {URL: "https://hooks.example/", Secret: "s", Timeout: -1},
		"no CA file":     {URL: "https://hooks.example/", Secret: "s", CAFile: "/nonexistent.pem"},
		"not a CA file":  {URL: "https://hooks.example/", Secret: "s", CAFile: "webhook_test.go"},
		"unknown holder": {URL: "https://hooks.example/", Secret: "{nope.x}"},
	} {
		if _, err := w.queue(nil, zap.NewNop()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	t.Setenv("MTA_STS_WEBHOOK_SECRET", "from the environment")
	q, err := Webhook{URL: "https://hooks.example/", Secret: "{env.MTA_STS_WEBHOOK_SECRET}"}.queue(nil, zap.NewNop())
	if err != nil || string(q.secret) != "from the environment" || q.timeout != defaultWebhookTimeout || q.retryFor != defaultWebhookRetryFor {
		t.Errorf("secret from the environment, defaults: %+v, %v", q, err)
	}
}
