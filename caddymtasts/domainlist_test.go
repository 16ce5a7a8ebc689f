package caddymtasts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/caddyserver/certmagic"
)

// storeDomains makes the storage know n domains d0000.example ... from
// the three sources, overlapping: certificates for all, readiness results
// for every third, summaries of the latest day for every fifth, and a
// summary of an older day that does not count.
func storeDomains(t testing.TB, n int) certmagic.Storage {
	t.Helper()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	ctx := context.Background()
	store := func(key string) {
		if err := storage.Store(ctx, key, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	store(certmagic.StorageKeys.SiteCert("local", "reports.provider.test"))
	store(summaryKey("2030-01-01", "old.example"))
	for i := range n {
		domain := fmt.Sprintf("d%04d.example", i)
		store(certmagic.StorageKeys.SiteCert("acme-v02.api.letsencrypt.org-directory", policyHostPrefix+domain))
		if i%3 == 0 {
			store(domainReportKey(domain))
		}
		if i%5 == 0 {
			store(summaryKey("2030-01-02", domain))
		}
	}
	return storage
}

// listingStorage hides the FileStorage under it, so that listDomains asks
// it to List as it asks storages other than the file system.
type listingStorage struct{ certmagic.Storage }

func TestListDomainsPages(t *testing.T) {
	storage := storeDomains(t, 120)
	t.Run("file_system", func(t *testing.T) { testListDomainsPages(t, storage) })
	t.Run("List", func(t *testing.T) { testListDomainsPages(t, listingStorage{storage}) })
}

func testListDomainsPages(t *testing.T, storage certmagic.Storage) {
	ctx := context.Background()
	var all []string
	q := domainQuery{}
	for pages := 0; ; pages++ {
		page, err := listDomains(ctx, storage, q, dashboardPageSize)
		if err != nil {
			t.Fatal(err)
		}
		if page.earlier != (pages > 0) {
			t.Errorf("page %d: earlier %v", pages, page.earlier)
		}
		all = append(all, page.domains...)
		if !page.later {
			break
		}
		q.after = page.domains[len(page.domains)-1]
	}
	if len(all) != 120 || !slices.IsSorted(all) || all[0] != "d0000.example" {
		t.Fatalf("paged through %d domains: %v", len(all), all)
	}

	// Back from the last page.
	page, err := listDomains(ctx, storage, domainQuery{before: "d0100.example"}, dashboardPageSize)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(page.domains, all[50:100]) || !page.earlier || !page.later {
		t.Errorf("before d0100.example: %v earlier %v later %v", page.domains, page.earlier, page.later)
	}
	page, _ = listDomains(ctx, storage, domainQuery{before: "d0010.example"}, dashboardPageSize)
	if !slices.Equal(page.domains, all[:10]) || page.earlier || !page.later {
		t.Errorf("before d0010.example: %v earlier %v later %v", page.domains, page.earlier, page.later)
	}

	page, _ = listDomains(ctx, storage, domainQuery{search: "d001"}, dashboardPageSize)
	if !slices.Equal(page.domains, all[10:20]) || page.earlier || page.later {
		t.Errorf("search d001: %v", page.domains)
	}
	if slices.Sort(page.issuers); !slices.Equal(page.issuers, []string{"acme-v02.api.letsencrypt.org-directory", "local"}) ||
		!slices.Equal(page.sumsDays, []string{"2030-01-01", "2030-01-02"}) {
		t.Errorf("issuers %v, days %v", page.issuers, page.sumsDays)
	}
}

// TestDomainWindow offers names in random order, repeated, and checks
// that the window keeps the ones next to the cursor.
func TestDomainWindow(t *testing.T) {
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("n%03d", i))
	}
	offered := slices.Concat(names, names)
	rand.Shuffle(len(offered), func(i, j int) { offered[i], offered[j] = offered[j], offered[i] })
	for _, tc := range []struct {
		q              domainQuery
		want           []string
		earlier, later bool
	}{
		{domainQuery{}, names[:10], false, true},
		{domainQuery{after: "n009"}, names[10:20], true, true},
		{domainQuery{after: "n189"}, names[190:], true, false},
		{domainQuery{before: "n010"}, names[:10], false, true},
		{domainQuery{before: "n150"}, names[140:150], true, true},
		{domainQuery{search: "9", after: "n180"}, []string{"n189", "n190", "n191", "n192", "n193", "n194", "n195", "n196", "n197", "n198"}, true, true},
	} {
		w := newDomainWindow(tc.q, 11)
		for _, n := range offered {
			w.offer(n)
		}
		got, earlier, later := w.result()
		if !slices.Equal(got, tc.want) || earlier != tc.earlier || later != tc.later {
			t.Errorf("%+v: got %v %v %v, want %v %v %v", tc.q, got, earlier, later, tc.want, tc.earlier, tc.later)
		}
		if cap(w.names) != 11 {
			t.Errorf("%+v: the window grew to %d", tc.q, cap(w.names))
		}
	}
}
