//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// senderResolverAddr is unbound as the resolver of a sender whose cache
// holds some records past their change.
const senderResolverAddr = "127.0.0.56"

const (
	moving  = "moving.customers.test"
	oldHost = "mx.old-host.test"
	newHost = "mx.new-host.test"
)

// movingStart is moving.customers.test before the move: one MX host, enforce.
var movingStart = zoneData{Serial: 1, MX: []string{oldHost}, Settings: "v=STSCFG1; mode=enforce"}

// sender is what a sender knows of moving.customers.test: the policy it
// holds (fetched earlier, not expired) and its id.
type sender struct{ policy stsResult }

// deliver is what the sender decides for a message to moving.customers.test,
// asking senderResolverAddr (with what it pins) for the _mta-sts record and
// the MX hosts, as RFC 8461 §5 says: refresh the policy if the id changed
// (mta-sts-query with the id it holds), then deliver to the first MX host
// the policy lists, or refuse in enforce mode.
func (snd *sender) deliver(t *testing.T, s *suite) string {
	t.Helper()
	r := s.stsQueryVia(t, senderResolverAddr, moving, snd.policy.ID)
	switch r.Status {
	case "VALID":
		snd.policy = r
	case "NOT_CHANGED":
	default:
		t.Fatalf("mta-sts-query %s %s: %s", moving, snd.policy.ID, r)
	}
	var hosts []string
	for _, rr := range mustAsk(t, senderResolverAddr, moving, dns.TypeMX, false).Answer {
		if mx, ok := rr.(*dns.MX); ok {
			hosts = append(hosts, strings.TrimSuffix(mx.Mx, "."))
		}
	}
	for _, h := range hosts {
		for _, pattern := range snd.policy.MX {
			if mxMatches(pattern, h) {
				return "deliver to " + h
			}
		}
	}
	return fmt.Sprintf("refuse: MX %s, policy mx %s", strings.Join(hosts, ","), strings.Join(snd.policy.MX, ","))
}

// mxMatches is RFC 8461 §4.1: a pattern is a host name, or "*." and a
// host name that stands for exactly one more label.
func mxMatches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		label, rest, found := strings.Cut(host, ".")
		return found && label != "" && rest == suffix
	}
	return pattern == host
}

// pinSenderCache (re)starts the sender's resolver with records pinned, as
// resource records in zone-file syntax; an empty cache otherwise.
func (s *suite) pinSenderCache(t *testing.T, pinned ...string) {
	t.Helper()
	if d, ok := s.daemons["unbound-sender"]; ok {
		d.stop()
	}
	render(t, templates, "unbound-sender.conf.tmpl", map[string]any{
		"Addr": senderResolverAddr, "DNS": dnsAddr, "Work": s.work, "Pinned": pinned,
	}, s.path("unbound-sender.conf"))
	s.start(t, "unbound-sender", nil, "unbound", "-d", "-c", s.path("unbound-sender.conf"))
	s.waitUntil(t, "unbound-sender", 20*time.Second, func() error {
		_, err := ask(senderResolverAddr, "customers.test", dns.TypeSOA, false)
		return err
	})
}

// setMoving rewrites moving.customers.test's MX hosts and settings and
// waits for the id to change, or returns at once if the policy stays.
func (s *suite) setMoving(t *testing.T, z zoneData, idChanges bool) string {
	t.Helper()
	old := stsID(t, moving)
	s.writeZone(t, "customers.test", z)
	if !idChanges {
		eventually(t, 15*time.Second, "the MX change of "+moving, func() bool {
			return short(t, dnsAddr, moving, dns.TypeMX, false) == fmt.Sprintf("10 %s.", z.MX[0])
		})
		return stsID(t, moving)
	}
	return waitForNewID(t, moving, old)
}

// testMovingMX moves moving.customers.test's mail from oldHost to newHost
// under enforce, as a provider would, with a sender whose resolver caches
// the _mta-sts record and the MX records independently (pinned records
// stand for what it still caches after a change). Changing the MX records
// alone refuses mail in both windows; the procedure of docs/overview.md
// (announce both hosts with mx=, change the MX records, drop mx= after
// the MX TTL) delivers in both.
func testMovingMX(t *testing.T, s *suite) {
	serial := movingStart.Serial
	next := func(mx string, settings string) zoneData {
		serial++
		return zoneData{Serial: serial, MX: []string{mx}, Settings: settings}
	}
	pinnedTXT := func(id string) string { return fmt.Sprintf(`_mta-sts.%s. 60 TXT "v=STSv1; id=%s"`, moving, id) }
	pinnedMX := fmt.Sprintf("%s. 60 MX 10 %s.", moving, oldHost)

	s.pinSenderCache(t)
	snd := &sender{}
	s.expect(t, "before the move: the sender", snd.deliver(t, s), "deliver to "+oldHost)
	before := snd.policy

	// Changing the MX records alone: a new policy (new host only), a new id.
	s.setMoving(t, next(newHost, movingStart.Settings), true)
	s.pinSenderCache(t, pinnedTXT(before.ID))
	s.expect(t, "MX changed alone, the sender's cache holds the old _mta-sts record",
		snd.deliver(t, s), fmt.Sprintf("refuse: MX %s, policy mx %s", newHost, oldHost))
	snd = &sender{policy: before}
	s.pinSenderCache(t, pinnedMX)
	s.expect(t, "MX changed alone, the sender's cache holds the old MX record",
		snd.deliver(t, s), fmt.Sprintf("refuse: MX %s, policy mx %s", oldHost, newHost))

	// Back to the start: the same policy gives the same id.
	s.expect(t, "id back at the start", s.setMoving(t, next(oldHost, movingStart.Settings), true), before.ID)

	// 1. Announce both hosts: a new policy; senders refresh it when they
	// next see the id (after the _mta-sts record's TTL).
	both := movingStart.Settings + "; mx=" + oldHost + "; mx=" + newHost
	announced := s.setMoving(t, next(oldHost, both), true)
	s.pinSenderCache(t)
	snd = &sender{policy: before}
	s.expect(t, "1. both hosts announced: the sender", snd.deliver(t, s), "deliver to "+oldHost)
	s.expect(t, "1. the sender's policy", snd.policy.String(),
		stsResult{Status: "VALID", ID: announced, Mode: "enforce", MX: []string{newHost, oldHost}, MaxAge: maxAge}.String())
	holding := snd.policy

	// 2. Change the MX records: the policy, and so the id, stay.
	s.expect(t, "2. MX changed: the id", s.setMoving(t, next(newHost, both), false), announced)
	s.pinSenderCache(t, pinnedTXT(announced))
	s.expect(t, "2. MX changed, the sender's cache holds the old _mta-sts record", snd.deliver(t, s), "deliver to "+newHost)
	snd = &sender{policy: holding}
	s.pinSenderCache(t, pinnedMX)
	s.expect(t, "2. MX changed, the sender's cache holds the old MX record", snd.deliver(t, s), "deliver to "+oldHost)

	// 3. After the MX TTL no sender holds the old MX record: drop mx=.
	done := s.setMoving(t, next(newHost, movingStart.Settings), true)
	s.pinSenderCache(t)
	s.expect(t, "3. mx= dropped: the sender", snd.deliver(t, s), "deliver to "+newHost)
	s.expect(t, "3. the sender's policy", snd.policy.String(),
		stsResult{Status: "VALID", ID: done, Mode: "enforce", MX: []string{newHost}, MaxAge: maxAge}.String())
	_, body := s.mustFetch(t, "mta-sts."+moving, 443, "")
	s.expect(t, "id of the policy caddy serves for "+moving, idOf(body), done)
}
