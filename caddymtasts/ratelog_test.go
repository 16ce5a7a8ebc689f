package caddymtasts

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestRateLog(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newRateLog(zap.New(core), time.Minute)
	start := time.Unix(1_700_000_000, 0)
	steps := []struct {
		at         time.Duration
		kind       string
		logged     bool
		suppressed int64 // in the line logged
	}{
		{0, "failed", true, 0},
		{0, "failed", false, 0},
		{time.Second, "failed", false, 0},
		{time.Second, "invalid_policy", true, 0}, // each kind has its own count
		{59 * time.Second, "failed", false, 0},
		{time.Minute, "failed", true, 3},
		{time.Minute, "invalid_policy", false, 0},
		{119 * time.Second, "failed", false, 0},
		{10 * time.Minute, "invalid_policy", true, 1},
		{10 * time.Minute, "failed", true, 1},
		{20 * time.Minute, "failed", true, 0}, // nothing left out since
	}
	for try, step := range steps {
		l.now = func() time.Time { return start.Add(step.at) }
		l.log(zapcore.ErrorLevel, step.kind, "lookup failed", zap.Int("try", try))
	}

	got := logs.AllUntimed()
	for try, step := range steps {
		if !step.logged {
			continue
		}
		if len(got) == 0 {
			t.Fatalf("try %d was not logged", try)
		}
		e, fields := got[0], got[0].ContextMap()
		if e.Level != zapcore.ErrorLevel || e.Message != "lookup failed" || fields["try"] != int64(try) ||
			fields["kind"] != step.kind || fields["suppressed"] != step.suppressed {
			t.Errorf("got %s %q %v, want try %d logged: %+v", e.Level, e.Message, fields, try, step)
		}
		got = got[1:]
	}
	if len(got) > 0 {
		t.Errorf("more lines logged: %v", got)
	}
}

func TestRateLogConcurrent(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newRateLog(zap.New(core), time.Minute)
	start := time.Unix(1_700_000_000, 0)
	stopClock(l, start)
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				l.log(zapcore.ErrorLevel, "failed", "lookup failed")
			}
		}()
	}
	wg.Wait()
	stopClock(l, start.Add(time.Minute))
	l.log(zapcore.ErrorLevel, "failed", "lookup failed")

	got := logs.AllUntimed()
	if len(got) != 2 || got[0].ContextMap()["suppressed"] != int64(0) ||
		got[1].ContextMap()["suppressed"] != int64(goroutines*each-1) {
		t.Fatalf("got %v, want a line with suppressed 0, then one with %d", got, goroutines*each-1)
	}
}
