package caddymtasts

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/caddyserver/certmagic"
)

// dashboardPageSize is how many domains a page of the dashboard's table
// shows: enough to scan by eye, few enough that the page's DNS lookups and
// storage reads stay well within a second.
const dashboardPageSize = 50

// domainQuery selects one page of the domains the storage knows about, in
// the order of their names: those containing search, and of these the
// first after the domain after, or the last before the domain before.
type domainQuery struct {
	search string // lowercase; "" for every domain
	after  string
	before string
}

// domainPage is one page of domains, and whether there are more on either
// side of it.
type domainPage struct {
	domains           []string
	earlier, later    bool
	issuers, sumsDays []string // what the listing found on the way, for the rows
}

// listDomains returns the page q selects of the domains Caddy's storage
// knows about: those with a certificate for mta-sts.D, a readiness result,
// or a TLS-RPT summary of the latest day with summaries.
//
// Every name under those prefixes is read, since the storage keeps no
// order the dashboard could page by; what this keeps of them is the page,
// a window of at most size+1 names, never a listing. So the memory a page
// holds does not grow with the number of domains, and no state is kept
// between requests: a cursor is a domain name.
func listDomains(ctx context.Context, storage certmagic.Storage, q domainQuery, size int) (domainPage, error) {
	w := newDomainWindow(q, size+1)
	var page domainPage
	err := eachName(ctx, storage, certsPrefix, func(issuer string) {
		page.issuers = append(page.issuers, issuer)
	})
	if err != nil {
		return page, err
	}
	for _, issuer := range page.issuers {
		if err := eachName(ctx, storage, path.Join(certsPrefix, issuer), offerCertificate(w)); err != nil {
			return page, err
		}
	}
	if err := eachName(ctx, storage, domainReportsPrefix, offerJSON(w)); err != nil {
		return page, err
	}
	if page.sumsDays, err = storedDays(ctx, storage, summariesPrefix); err != nil {
		return page, err
	}
	if n := len(page.sumsDays); n > 0 {
		if err := eachName(ctx, storage, path.Join(summariesPrefix, page.sumsDays[n-1]), offerJSON(w)); err != nil {
			return page, err
		}
	}
	page.domains, page.earlier, page.later = w.result()
	return page, nil
}

// offerCertificate offers D to w for the directory of a certificate for
// mta-sts.D, and skips the certificates of other names (the report site's,
// say).
func offerCertificate(w *domainWindow) func(string) {
	return func(name string) {
		if domain, ok := strings.CutPrefix(name, policyHostPrefix); ok {
			w.offer(domain)
		}
	}
}

// offerJSON offers D to w for a key D.json.
func offerJSON(w *domainWindow) func(string) {
	return func(name string) {
		if domain, ok := strings.CutSuffix(name, ".json"); ok {
			w.offer(domain)
		}
	}
}

// namesPerRead is how many directory entries eachName reads at a time.
const namesPerRead = 512

// eachName calls f with the last element of each key directly under
// prefix, if there are any. CertMagic's file system storage, Caddy's
// default, it reads directly, namesPerRead entries at a time: its List
// stats every entry and returns them all, which made listing 10,000
// domains from three prefixes take 0.56 s and 27 MB here
// (BenchmarkDashboardTable). Other storages are asked to List.
func eachName(ctx context.Context, storage certmagic.Storage, prefix string, f func(string)) error {
	fileStorage, ok := storage.(*certmagic.FileStorage)
	if !ok {
		keys, err := listKeys(ctx, storage, prefix)
		for _, key := range keys {
			f(path.Base(key))
		}
		return err
	}
	dir, err := os.Open(fileStorage.Filename(prefix))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer dir.Close()
	for {
		names, err := dir.Readdirnames(namesPerRead)
		for _, name := range names {
			f(name)
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
	}
}

// domainWindow keeps, of the names offered to it, the limit nearest to the
// query's cursor that contain its search: the smallest after q.after, or
// the largest before q.before. It holds at most limit names, whatever the
// number offered, in any order and with repeats.
type domainWindow struct {
	q      domainQuery
	limit  int
	names  []string // sorted
	beyond bool     // a matching name lies behind the cursor
}

func newDomainWindow(q domainQuery, limit int) *domainWindow {
	return &domainWindow{q: q, limit: limit, names: make([]string, 0, limit)}
}

func (w *domainWindow) offer(name string) {
	if !strings.Contains(name, w.q.search) {
		return
	}
	fromEnd := w.q.before != ""
	if fromEnd && name >= w.q.before || !fromEnd && name <= w.q.after && w.q.after != "" {
		w.beyond = true
		return
	}
	i, found := slices.BinarySearch(w.names, name)
	if found {
		return
	}
	if len(w.names) == w.limit {
		switch {
		case !fromEnd && i == len(w.names), fromEnd && i == 0:
			return // beyond the window's far end
		case !fromEnd:
			w.names = w.names[:len(w.names)-1]
		default:
			w.names = slices.Delete(w.names, 0, 1)
			i--
		}
	}
	w.names = slices.Insert(w.names, i, name)
}

// result returns the page, at most limit-1 names (the last one only tells
// that there is more), and whether there are matching names before and
// after it.
func (w *domainWindow) result() (names []string, earlier, later bool) {
	more := len(w.names) == w.limit
	if w.q.before != "" {
		if more {
			return w.names[1:], true, w.beyond
		}
		return w.names, false, w.beyond
	}
	if more {
		return w.names[:len(w.names)-1], w.beyond, true
	}
	return w.names, w.beyond, false
}
