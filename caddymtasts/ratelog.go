package caddymtasts

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// failureLogInterval is how often at most the modules log one kind of
// failure. During an outage the same failure repeats for every request or
// handshake; a line a minute still tells an operator within a minute that
// it goes on and roughly when it ended, and costs the same few lines
// however heavy the load.
const failureLogInterval = time.Minute

// rateLog logs repeated failures at a bounded rate, with a count. The first
// failure of a kind is logged at once; further ones of that kind within the
// interval are only counted, and the next line logged for the kind, once
// the interval has passed, says how many were left out. There is no timer:
// a count is written with the next failure after the interval, so the
// count of the last burst waits for the next failure.
type rateLog struct {
	logger   *zap.Logger
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	kinds map[string]rateLogKind
}

// rateLogKind is what a rateLog knows of one kind of failure.
type rateLogKind struct {
	logged     time.Time // when the last line was written
	suppressed int       // failures since then that were not
}

func newRateLog(logger *zap.Logger, interval time.Duration) *rateLog {
	return &rateLog{logger: logger, interval: interval, now: time.Now, kinds: make(map[string]rateLogKind)}
}

// log logs msg with fields at level, unless a failure of the same kind was
// logged within the interval. The line has the fields "kind" and
// "suppressed": how many failures of the kind were not logged since the
// previous line. Each kind is remembered as long as the rateLog, so kind
// must come from a small fixed set (a metric label, say), never name a
// domain or a client.
func (l *rateLog) log(level zapcore.Level, kind, msg string, fields ...zap.Field) {
	suppressed, ok := l.take(kind)
	if !ok {
		return
	}
	l.logger.Log(level, msg, append(fields, zap.String("kind", kind), zap.Int("suppressed", suppressed))...)
}

// take reports whether a failure of kind is to be logged now and, if so,
// how many were suppressed since the last line; otherwise it counts the
// failure. The clock is read under the lock, so the decisions follow one
// another in time. Writing the line happens outside, so concurrent
// failures do not queue behind the log's I/O.
func (l *rateLog) take(kind string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k, seen := l.kinds[kind]
	if seen && now.Sub(k.logged) < l.interval {
		k.suppressed++
		l.kinds[kind] = k
		return 0, false
	}
	l.kinds[kind] = rateLogKind{logged: now}
	return k.suppressed, true
}
