package caddymtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

func testStore(t *testing.T) *reportStore {
	t.Helper()
	return newReportStore(testContext(t, "ERROR").Storage())
}

// storedKeys lists the keys under prefix, recursively, sorted.
func storedKeys(t *testing.T, s *reportStore, prefix string) []string {
	t.Helper()
	keys, err := s.storage.List(context.Background(), prefix, true)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, k := range keys {
		if info, err := s.storage.Stat(context.Background(), k); err == nil && info.IsTerminal {
			files = append(files, k)
		}
	}
	slices.Sort(files)
	return files
}

func TestRemoveExpired(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	days := []string{"2025-01-30", "2025-01-31", "2025-02-01", "2025-03-01"}
	for _, day := range days {
		for _, key := range []string{
			path.Join(reportsPrefix, day, "r.json"),
			path.Join(unattributedPrefix, day, "u.json"),
			summaryKey(day, "example.com"),
		} {
			if err := s.storage.Store(ctx, key, []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 30 days before 2025-03-02 12:00 is 2025-01-31 12:00: January 30
	// ended more than 30 days ago, January 31 did not.
	now := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	ran, err := s.removeExpired(ctx, now, 30*24*time.Hour)
	if err != nil || !ran {
		t.Fatalf("removeExpired: %v, %v", ran, err)
	}
	for _, prefix := range []string{reportsPrefix, unattributedPrefix, summariesPrefix} {
		kept, err := storedDays(ctx, s.storage, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if want := days[1:]; !slices.Equal(kept, want) {
			t.Errorf("%s: kept %v, want %v", prefix, kept, want)
		}
	}

	// Within the hour no node runs it again; after it, one does.
	if ran, err := s.removeExpired(ctx, now.Add(59*time.Minute), time.Hour); ran || err != nil {
		t.Errorf("59 minutes later: ran %v, %v", ran, err)
	}
	if kept := storedKeys(t, s, reportsPrefix); len(kept) != 3 {
		t.Errorf("kept %v", kept)
	}
	if ran, err := s.removeExpired(ctx, now.Add(time.Hour), 48*time.Hour); !ran || err != nil {
		t.Errorf("an hour later: ran %v, %v", ran, err)
	}
	if kept := storedKeys(t, s, summariesPrefix); !slices.Equal(kept, []string{summaryKey("2025-03-01", "example.com")}) {
		t.Errorf("kept %v", kept)
	}
}

func TestRemoveExpiredWithNothingStored(t *testing.T) {
	if ran, err := testStore(t).removeExpired(context.Background(), time.Now(), 30*24*time.Hour); !ran || err != nil {
		t.Errorf("ran %v, %v", ran, err)
	}
}

func TestUnattributedReportsPerDay(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	report := func(id string) *tlsrpt.Report {
		return &tlsrpt.Report{Organization: "o", ID: id, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	}
	for i, want := range []bool{true, true, false} {
		id := fmt.Sprint(i % 2) // the third is the first again
		if stored, err := s.storeUnattributed(ctx, report(id), []byte("{}"), 2); stored != want || err != nil {
			t.Errorf("report %d: stored %v, %v; want %v", i, stored, err, want)
		}
	}
	if _, err := s.storeUnattributed(ctx, report("2"), []byte("{}"), 2); !errors.Is(err, errUnattributedFull) {
		t.Errorf("a third report: %v, want %v", err, errUnattributedFull)
	}
	// The next day has room again.
	next := report("2")
	next.Start = next.Start.AddDate(0, 0, 1)
	if stored, err := s.storeUnattributed(ctx, next, []byte("{}"), 2); !stored || err != nil {
		t.Errorf("the next day: %v, %v", stored, err)
	}
}

// Reports added to one summary at once, by many requests of one node,
// each count once, and do not wait for the storage's lock polling.
func TestConcurrentSummaryUpdates(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	const n = 50
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &tlsrpt.Report{Organization: "o", ID: fmt.Sprint(i % (n / 2)), Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
			if _, err := s.addToSummary(ctx, r, tlsrpt.DomainSessions{Domain: "example.com", Successful: 1}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	summary, err := s.loadSummary(ctx, summaryKey("2025-03-01", "example.com"), "example.com", "2025-03-01")
	if err != nil {
		t.Fatal(err)
	}
	if summary.Reports != n/2 || summary.SuccessfulSessions != n/2 {
		t.Errorf("%d reports, %d sessions; want %d of each", summary.Reports, summary.SuccessfulSessions, n/2)
	}
	// CertMagic's file storage polls a held lock once a second.
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("took %v", elapsed)
	}
	if len(processLocks.held) != 0 {
		t.Errorf("locks left: %v", processLocks.held)
	}
}

func TestLocalLockWaitsAsLongAsTheContext(t *testing.T) {
	locks := &localLocks{held: map[string]*localLock{}}
	unlock, err := locks.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := locks.lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v while the lock is held", err)
	}
	other, err := locks.lock(context.Background(), "b")
	if err != nil {
		t.Fatalf("another name: %v", err)
	}
	other()
	unlock()
	again, err := locks.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if len(locks.held) != 0 {
		t.Errorf("locks left: %v", locks.held)
	}
}

func TestSessionsAddUpTheDays(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	for i, day := range []string{"2025-02-23", "2025-02-24", "2025-03-02", "2025-03-03"} {
		summary := tlsrpt.NewSummary("example.com", day)
		summary.Reports, summary.SuccessfulSessions, summary.FailedSessions = 1, int64(100*(i+1)), int64(i)
		data, err := json.Marshal(summary)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.storage.Store(ctx, summaryKey(day, "example.com"), data); err != nil {
			t.Fatal(err)
		}
	}
	first := time.Date(2025, 2, 24, 12, 0, 0, 0, time.UTC)
	got, err := s.Sessions(ctx, "example.com", first, first.AddDate(0, 0, 6))
	if want := (readiness.Sessions{Reports: 2, Successful: 500, Failed: 3}); err != nil || got != want {
		t.Errorf("sessions of 2025-02-24 to 2025-03-02: %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.Sessions(ctx, "other.example", first, first); err != nil || got != (readiness.Sessions{}) {
		t.Errorf("sessions of a domain without reports: %+v, %v", got, err)
	}
}
