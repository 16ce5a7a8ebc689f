package caddymtasts

import (
	"cmp"
	"context"
	"encoding/json"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// The events' keys in Caddy's storage, beside the TLS reports' and the
// readiness results'. DAY is the UTC date the event was seen, DOMAIN a
// lowercase A-label name, ID the event's id.
//
//	mta_sts/events/days/DAY/DOMAIN/ID.json  an event, the JSON the webhook posts
//	mta_sts/events/baselines/DOMAIN.json    what the checks last knew of DOMAIN (baseline)
//	mta_sts/events/last_cleanup             when old days were last removed (RFC 3339)
//
// Day first, as for the TLS reports, so that retention deletes one key per
// day whatever the number of domains; a domain's events are one listing
// per day kept. The lock mta_sts/events/ID is held while an event is
// added, mta_sts/events/cleanup while old days are removed.
const (
	eventDaysPrefix        = "mta_sts/events/days"
	baselinesPrefix        = "mta_sts/events/baselines"
	eventsLastCleanupKey   = "mta_sts/events/last_cleanup"
	eventsCleanupLockName  = "mta_sts/events/cleanup"
	defaultEventsRetention = 90 * 24 * time.Hour
)

// eventStore keeps events and the domains' baselines in Caddy's storage.
type eventStore struct {
	storage certmagic.Storage
}

func eventKey(at time.Time, domain, id string) string {
	return path.Join(eventDaysPrefix, at.UTC().Format(time.DateOnly), domain, id+".json")
}

func baselineKey(domain string) string {
	return path.Join(baselinesPrefix, domain+".json")
}

// add stores e unless an event with its id is stored already, on its day
// or the day before (a run that stopped before midnight and ran again
// after it), and reports whether this call stored it. The check and the
// write hold the event's lock, so of several nodes adding the same event
// at once one stores it: that one counts it and queues its delivery.
func (s *eventStore) add(ctx context.Context, e event) (string, bool, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return "", false, err
	}
	key := eventKey(e.Time, e.Domain, e.ID)
	var added bool
	err = withStorageLock(ctx, s.storage, path.Join("mta_sts/events", e.ID), func() error {
		for _, k := range []string{key, eventKey(e.Time.AddDate(0, 0, -1), e.Domain, e.ID)} {
			if s.storage.Exists(ctx, k) {
				return nil
			}
		}
		if err := s.storage.Store(ctx, key, data); err != nil {
			return err
		}
		added = true
		return nil
	})
	return key, added, err
}

// events returns the stored events of domain seen from day from to day to
// (YYYY-MM-DD, both included; "" for no bound), oldest first.
func (s *eventStore) events(ctx context.Context, domain, from, to string) ([]event, error) {
	days, err := storedDays(ctx, s.storage, eventDaysPrefix)
	if err != nil {
		return nil, err
	}
	found := []event{}
	for _, day := range days {
		if day < from || to != "" && day > to {
			continue
		}
		keys, err := listKeys(ctx, s.storage, path.Join(eventDaysPrefix, day, domain))
		if err != nil {
			return nil, err
		}
		for _, key := range keys {
			if !strings.HasSuffix(key, ".json") {
				continue // a temporary file of CertMagic's file system storage
			}
			var e event
			stored, err := loadJSON(ctx, s.storage, key, &e)
			if err != nil {
				return nil, err
			}
			if stored { // not removed meanwhile
				found = append(found, e)
			}
		}
	}
	// Events seen at once (those of one check) in an order that stays.
	slices.SortFunc(found, func(a, b event) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(string(a.Type), string(b.Type)), strings.Compare(a.Host, b.Host))
	})
	return found, nil
}

// baseline returns what the checks last knew of domain; nothing for a
// domain never checked.
func (s *eventStore) baseline(ctx context.Context, domain string) (*baseline, error) {
	b := new(baseline)
	if _, err := loadJSON(ctx, s.storage, baselineKey(domain), b); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *eventStore) storeBaseline(ctx context.Context, domain string, b *baseline) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return s.storage.Store(ctx, baselineKey(domain), data)
}

// removeExpired deletes the events of the days that ended more than
// retention before now, once per cleanupInterval for the cluster.
func (s *eventStore) removeExpired(ctx context.Context, now time.Time, retention time.Duration) (bool, error) {
	return removeOldDays(ctx, s.storage, dayCleanup{lock: eventsCleanupLockName, last: eventsLastCleanupKey,
		prefixes: []string{eventDaysPrefix}}, now, retention)
}
