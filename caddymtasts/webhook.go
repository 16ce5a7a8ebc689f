package caddymtasts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The webhook's queue in Caddy's storage: an entry per event not delivered
// yet, which any node with the webhook delivers, so that a restart or
// another node carries on. The lock mta_sts/webhook/ID is held while an
// entry is read and written, never during a delivery.
//
//	mta_sts/webhook/queue/ID.json  the delivery of event ID (webhookDelivery)
const webhookQueuePrefix = "mta_sts/webhook/queue"

// Defaults and bounds of the webhook.
const (
	defaultWebhookTimeout  = 10 * time.Second
	defaultWebhookRetryFor = 24 * time.Hour
	// The wait after the first failed attempt, doubled after each
	// further one up to maxWebhookRetryWait.
	firstWebhookRetry   = 10 * time.Second
	maxWebhookRetryWait = time.Hour
	// How often each node looks for due entries when nothing woke it: for
	// entries another node queued, or one that stopped left.
	webhookPollInterval = 10 * time.Second
	// Deliveries in flight per node.
	webhookConcurrency = 4
	// Entries the queue holds; events beyond are kept in storage but not
	// posted (dropped in the metrics), so a receiver that is down for long
	// cannot make the queue grow without bound.
	maxQueuedDeliveries = 100_000
	// An attempt in flight holds its entry for the timeout and this much
	// longer; then another node may take it, as when this one stopped.
	webhookLeaseMargin = 5 * time.Second
)

// Webhook posts each event, as its JSON, to a receiver of the provider's,
// signed with an HMAC-SHA256 of the secret (see the README):
//
//	Webhook-Id: ID
//	Webhook-Timestamp: UNIX_SECONDS
//	Webhook-Signature: v1=HEX(HMAC-SHA256(secret, ID "." UNIX_SECONDS "." BODY))
//
// Any 2xx answer delivers the event; anything else, or none within the
// timeout, is retried with exponential backoff until retry_for after the
// event was seen. Delivery is at least once: the receiver de-duplicates
// on Webhook-Id. The checks and the serving never wait for it.
type Webhook struct {
	// The receiver's https URL.
	URL string `json:"url"`

	// The key of the signature. Placeholders are replaced when the app
	// starts, so {env.MTA_STS_WEBHOOK_SECRET} keeps it out of the config.
	Secret string `json:"secret"`

	// How long one attempt may take. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// How long after an event was queued its delivery is retried; the
	// last attempt is at that time. Default: 24h.
	RetryFor caddy.Duration `json:"retry_for,omitempty"`

	// A PEM file of the roots the receiver's certificate must lead to,
	// instead of the system's roots: for a receiver with a private CA.
	CAFile string `json:"ca_file,omitempty"`
}

// webhookDelivery is a queue entry: the delivery of one event.
type webhookDelivery struct {
	Event    string    `json:"event"` // the event's key
	Queued   time.Time `json:"queued"`
	Attempts int       `json:"attempts"`
	// When the next attempt is due; while one is in flight, when it is
	// given up for lost.
	Next time.Time `json:"next"`
}

// webhookQueue delivers the events queued in storage to the webhook.
type webhookQueue struct {
	url        string
	secret     []byte
	timeout    time.Duration
	retryFor   time.Duration
	firstRetry time.Duration
	client     *http.Client
	storage    certmagic.Storage
	logger     *zap.Logger
	failures   *rateLog
	now        func() time.Time

	wake   chan struct{}
	queued atomic.Int64 // entries at the last listing, and queued since

	mu     sync.Mutex
	notDue map[string]time.Time // entries seen not due, and when they are
}

// queue checks the options and returns the webhook's queue.
func (w Webhook) queue(storage certmagic.Storage, logger *zap.Logger) (*webhookQueue, error) {
	u, err := url.Parse(w.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: want an https URL", w.URL)
	}
	secret, err := caddy.NewReplacer().ReplaceOrErr(w.Secret, true, true)
	if err != nil || secret == "" {
		return nil, fmt.Errorf("webhook secret: none given, or a placeholder that is empty or unknown (%v)", err)
	}
	if w.Timeout < 0 || w.RetryFor < 0 {
		return nil, fmt.Errorf("webhook timeout %s or retry_for %s is negative", time.Duration(w.Timeout), time.Duration(w.RetryFor))
	}
	setDefault(&w.Timeout, defaultWebhookTimeout)
	setDefault(&w.RetryFor, defaultWebhookRetryFor)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if w.CAFile != "" {
		pem, err := os.ReadFile(w.CAFile)
		if err != nil {
			return nil, fmt.Errorf("webhook ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("webhook ca_file %s: no PEM certificate in it", w.CAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	q := &webhookQueue{
		url:        w.URL,
		secret:     []byte(secret),
		timeout:    time.Duration(w.Timeout),
		retryFor:   time.Duration(w.RetryFor),
		firstRetry: firstWebhookRetry,
		storage:    storage,
		logger:     logger,
		failures:   newRateLog(logger, failureLogInterval),
		now:        time.Now,
		wake:       make(chan struct{}, 1),
		notDue:     map[string]time.Time{},
	}
	q.client = &http.Client{
		Transport: transport,
		Timeout:   q.timeout,
		// A redirect is no delivery: the signature is for this URL's
		// receiver, and a 3xx says the URL is wrong.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return q, nil
}

// signature is the Webhook-Signature of body, sent as event id at the
// Unix time timestamp.
func signature(secret []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

func deliveryKey(id string) string {
	return path.Join(webhookQueuePrefix, id+".json")
}

// enqueue queues the delivery of the event stored at key, unless the
// queue is full, and wakes the node's delivery.
func (q *webhookQueue) enqueue(ctx context.Context, id, key string) error {
	if q.queued.Load() >= maxQueuedDeliveries {
		webhookDeliveries.WithLabelValues("dropped").Inc()
		q.failures.log(zapcore.ErrorLevel, "dropped", "webhook queue full; event kept in storage but not posted",
			zap.String("id", id), zap.Int("queued", maxQueuedDeliveries))
		return nil
	}
	now := q.now()
	data, err := json.Marshal(webhookDelivery{Event: key, Queued: now, Next: now})
	if err != nil {
		return err
	}
	if err := q.storage.Store(ctx, deliveryKey(id), data); err != nil {
		return err
	}
	q.queued.Add(1)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// run delivers the queue's due entries whenever one is queued on this
// node, one comes due, or webhookPollInterval passes, until ctx ends.
func (q *webhookQueue) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
		}
		timer.Reset(time.Until(q.deliverDue(ctx)))
	}
}

// deliverDue attempts every due entry, webhookConcurrency at a time, and
// returns when the next one is due, as far as this node knows.
func (q *webhookQueue) deliverDue(ctx context.Context) time.Time {
	next := q.now().Add(webhookPollInterval)
	keys, err := listKeys(ctx, q.storage, webhookQueuePrefix)
	if err != nil {
		if ctx.Err() == nil {
			q.failures.log(zapcore.ErrorLevel, "listing", "listing the webhook queue", zap.Error(err))
		}
		return next
	}
	// CertMagic's file system storage writes a key through a temporary
	// file beside it, which a listing may show.
	keys = slices.DeleteFunc(keys, func(k string) bool { return !strings.HasSuffix(k, ".json") })
	q.queued.Store(int64(len(keys)))
	q.forgetAllBut(keys)
	var mu sync.Mutex
	slots := make(chan struct{}, webhookConcurrency)
	var attempts sync.WaitGroup
	for _, key := range keys {
		if due, ok := q.knownDue(key); ok && due.After(q.now()) {
			next = earliest(next, due)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		attempts.Go(func() {
			defer func() { <-slots }()
			if due := q.attempt(ctx, key); !due.IsZero() {
				mu.Lock()
				next = earliest(next, due)
				mu.Unlock()
			}
		})
	}
	attempts.Wait()
	return next
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// knownDue returns when the entry at key is due, if this node saw it not
// due before. Only attempts move an entry's time, and only later, so an
// entry is never passed over while due for longer than a lease.
func (q *webhookQueue) knownDue(key string) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	due, ok := q.notDue[key]
	return due, ok
}

func (q *webhookQueue) noteDue(key string, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if due.IsZero() {
		delete(q.notDue, key)
	} else {
		q.notDue[key] = due
	}
}

// forgetAllBut drops what the node knows of entries no longer queued.
func (q *webhookQueue) forgetAllBut(keys []string) {
	listed := make(map[string]bool, len(keys))
	for _, k := range keys {
		listed[k] = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for k := range q.notDue {
		if !listed[k] {
			delete(q.notDue, k)
		}
	}
}

// attempt delivers the entry at key if it is due and no other attempt
// holds it, and returns when it is due next (zero: delivered or gone).
func (q *webhookQueue) attempt(ctx context.Context, key string) time.Time {
	id := strings.TrimSuffix(path.Base(key), ".json")
	d, claimed, err := q.claim(ctx, key)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			q.failures.log(zapcore.ErrorLevel, "storage", "reading the webhook queue", zap.String("id", id), zap.Error(err))
		}
		return time.Time{}
	case !claimed:
		q.noteDue(key, d.Next)
		return d.Next
	}
	status, err := q.post(ctx, id, d.Event)
	if ctx.Err() != nil {
		return time.Time{} // stopping: the lease runs out, and a node takes it up
	}
	next, err := q.settle(ctx, key, id, d, status, err)
	if err != nil {
		q.failures.log(zapcore.ErrorLevel, "storage", "updating the webhook queue", zap.String("id", id), zap.Error(err))
	}
	q.noteDue(key, next)
	return next
}

// claim takes the entry at key for an attempt if it is due: it counts the
// attempt and sets its time to the end of the lease.
func (q *webhookQueue) claim(ctx context.Context, key string) (webhookDelivery, bool, error) {
	var d webhookDelivery
	var claimed bool
	err := withStorageLock(ctx, q.storage, "mta_sts/webhook/"+path.Base(key), func() error {
		if queued, err := loadJSON(ctx, q.storage, key, &d); err != nil || !queued {
			return err // or delivered meanwhile
		}
		now := q.now()
		if d.Next.After(now) {
			return nil
		}
		d.Attempts++
		d.Next = now.Add(q.timeout + webhookLeaseMargin)
		claimed = true
		return q.storeDelivery(ctx, key, d)
	})
	return d, claimed, err
}

func (q *webhookQueue) storeDelivery(ctx context.Context, key string, d webhookDelivery) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return q.storage.Store(ctx, key, data)
}

// errEventGone means the event of a queue entry is no longer stored:
// retention removed it, so there is nothing to deliver.
var errEventGone = errors.New("event no longer in storage")

// post sends the event stored at eventKey and returns the status of the
// answer.
func (q *webhookQueue) post(ctx context.Context, id, eventKey string) (int, error) {
	body, err := q.storage.Load(ctx, eventKey)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errEventGone
	}
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	timestamp := strconv.FormatInt(q.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-mta-sts-webhook")
	req.Header.Set("Webhook-Id", id)
	req.Header.Set("Webhook-Timestamp", timestamp)
	req.Header.Set("Webhook-Signature", signature(q.secret, id, timestamp, body))
	resp, err := q.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// Read a little, so that the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, nil
}

// settle ends an attempt: a 2xx delivers the event, and the entry goes.
// Otherwise the next attempt waits twice as long as the last, up to
// maxWebhookRetryWait, and no later than retry_for after the event was
// queued; an attempt that fails at that time or later gives up. It
// returns when the entry is due next (zero: gone).
func (q *webhookQueue) settle(ctx context.Context, key, id string, d webhookDelivery, status int, postErr error) (time.Time, error) {
	var next time.Time
	err := withStorageLock(ctx, q.storage, "mta_sts/webhook/"+path.Base(key), func() error {
		now := q.now()
		deadline := d.Queued.Add(q.retryFor)
		switch {
		case postErr == nil && status >= 200 && status < 300:
			webhookDeliveries.WithLabelValues("delivered").Inc()
		case errors.Is(postErr, errEventGone):
			webhookDeliveries.WithLabelValues("gone").Inc()
		case !now.Before(deadline):
			webhookDeliveries.WithLabelValues("gave_up").Inc()
			q.logger.Error("webhook: gave up delivering an event", zap.String("id", id), zap.Int("attempts", d.Attempts),
				zap.Duration("retried_for", q.retryFor), zap.Int("status", status), zap.Error(postErr))
		default:
			webhookDeliveries.WithLabelValues("failed").Inc()
			q.failures.log(zapcore.WarnLevel, "failed", "webhook: delivery failed; will retry", zap.String("id", id),
				zap.Int("attempt", d.Attempts), zap.Int("status", status), zap.Error(postErr))
			d.Next = earliest(now.Add(q.retryWait(d.Attempts)), deadline)
			next = d.Next
			return q.storeDelivery(ctx, key, d)
		}
		return q.storage.Delete(ctx, key)
	})
	return next, err
}

// retryWait is how long to wait after the attempt-th failed attempt:
// firstRetry doubled for each attempt before it, up to
// maxWebhookRetryWait, with a tenth either way at random so that the
// retries of many events that failed at once spread out.
func (q *webhookQueue) retryWait(attempt int) time.Duration {
	wait := min(q.firstRetry<<min(attempt-1, 30), maxWebhookRetryWait)
	return time.Duration(float64(wait) * (0.9 + 0.2*rand.Float64()))
}
