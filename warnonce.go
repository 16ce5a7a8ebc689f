package mtasts

import "github.com/coredns/coredns/plugin/pkg/cache"

// warned holds the hashes of the keys of the warnings already logged, so
// that a warning about zone data is logged once and not on every query, in
// bounded memory: a full cache forgets one at random, to be logged again.
// Two concurrent first queries may both log it.
var warned = cache.New[struct{}](10000)

// warnOnce logs a warning the first time it is called with key.
func warnOnce(key, format string, args ...any) {
	k := cache.Hash([]byte(key))
	if _, seen := warned.Get(k); seen {
		return
	}
	warned.Add(k, struct{}{})
	log.Warningf(format, args...)
}
