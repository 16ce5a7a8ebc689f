package caddymtasts

import (
	"context"
	"errors"
	"io/fs"
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
// The storage interface lists a directory whole (certmagic.Storage has no
// paging), so every listing is read; what this keeps of them is the page,
// a window of at most size+1 names, never a copy of a listing. So the
// memory a page holds does not grow with the number of domains, and no
// state is kept between requests: a cursor is a domain name.
func listDomains(ctx context.Context, storage certmagic.Storage, q domainQuery, size int) (domainPage, error) {
	w := newDomainWindow(q, size+1)
	var page domainPage
	issuers, err := listBases(ctx, storage, certsPrefix)
	if err != nil {
		return page, err
	}
	page.issuers = issuers
	for _, issuer := range issuers {
		if err := offerKeys(ctx, storage, path.Join(certsPrefix, issuer), w, certificateDomain); err != nil {
			return page, err
		}
	}
	if err := offerKeys(ctx, storage, readinessPrefix, w, jsonDomain); err != nil {
		return page, err
	}
	if page.sumsDays, err = newReportStore(storage).days(ctx, summariesPrefix); err != nil {
		return page, err
	}
	if n := len(page.sumsDays); n > 0 {
		if err := offerKeys(ctx, storage, path.Join(summariesPrefix, page.sumsDays[n-1]), w, jsonDomain); err != nil {
			return page, err
		}
	}
	page.domains, page.earlier, page.later = w.result()
	return page, nil
}

// certificateDomain returns D for the key of a certificate's directory,
// certificates/ISSUER/mta-sts.D, and "" for the certificates of other
// names (the report site's, say).
func certificateDomain(key string) string {
	domain, _ := strings.CutPrefix(path.Base(key), policyHostPrefix)
	if domain == path.Base(key) {
		return ""
	}
	return domain
}

// jsonDomain returns D for a key .../D.json.
func jsonDomain(key string) string {
	domain, _ := strings.CutSuffix(path.Base(key), ".json")
	return domain
}

// listBases returns the last elements of the keys under prefix; none when
// the storage has nothing there.
func listBases(ctx context.Context, storage certmagic.Storage, prefix string) ([]string, error) {
	keys, err := storage.List(ctx, prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	for i, key := range keys {
		keys[i] = path.Base(key)
	}
	return keys, err
}

// offerKeys offers the domain of each key under prefix to w.
func offerKeys(ctx context.Context, storage certmagic.Storage, prefix string, w *domainWindow, domainOf func(string) string) error {
	keys, err := storage.List(ctx, prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, key := range keys {
		if domain := domainOf(key); domain != "" {
			w.offer(domain)
		}
	}
	return nil
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
