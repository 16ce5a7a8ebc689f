package caddymtasts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/caddymtasts/autopilot"
	"github.com/coredns-mtasts/mtasts/policy"
)

// Why a change to a settings record failed; see primary.update.
var (
	// The primary did not answer, or failed (SERVFAIL): worth another try.
	errPrimaryUnreachable = errors.New("primary unreachable")
	// The primary refused the TSIG key: a wrong name or secret, or an
	// ACL that does not let the key update the name.
	errKeyRefused = errors.New("the primary refused the TSIG key")
	// The primary refused the update (REFUSED): its ACL, or not its zone.
	errUpdateRefused = errors.New("the primary refused the update")
	// The record changed between the read and the update (RFC 2136 §2.4):
	// someone else wrote it; the update wrote nothing.
	errChangedMeanwhile = errors.New("the settings changed since they were read")
)

// settingsTTL is the TTL of the settings records the autopilot writes.
// Senders never see one (the plugin answers at _mta-sts.D), so it only
// matters to whoever reads the zone itself.
const settingsTTL = 3600

// The TSIG algorithms a key may use (RFC 8945 §6): those of the HMAC-SHA-2
// family that every primary with TSIG supports. HMAC-MD5 and HMAC-SHA1
// are deprecated.
var tsigAlgorithms = map[string]string{
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// primary is the provider's hidden primary, where the autopilot reads
// the settings records at _mta-sts.D and writes them with DNS UPDATE (RFC
// 2136), signed with a TSIG key (RFC 8945), so that a change reaches the
// secondaries by NOTIFY and zone transfer like any other. Only the
// primary holds the settings as they are: the plugin on the secondaries
// answers _mta-sts.D itself and shows no settings record.
type primary struct {
	addr      string
	reads     *policySource // the modules' DNS client, asking the primary alone
	key       string        // the key's name, a lowercase FQDN
	algorithm string        // the key's algorithm, an FQDN as miekg/dns names it
	secret    string        // base64
	timeout   time.Duration
}

// newPrimary checks the key, its name, algorithm and secret, and returns
// the primary at addr. The secret must be base64, as primaries write it
// (Knot's keymgr, BIND's tsig-keygen).
func newPrimary(addr string, dnsTimeout time.Duration, keyName, algorithm, secret string) (*primary, error) {
	addr, err := serverAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	if _, ok := dns.IsDomainName(keyName); !ok || keyName == "" {
		return nil, fmt.Errorf("tsig_key_name %q: want a domain name", keyName)
	}
	alg, ok := tsigAlgorithms[strings.ToLower(algorithm)]
	if !ok {
		return nil, fmt.Errorf("tsig_algorithm %q: want hmac-sha256, hmac-sha384 or hmac-sha512", algorithm)
	}
	if raw, err := base64.StdEncoding.DecodeString(secret); err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("tsig_secret: want the key's secret in base64, as the primary has it, not %d characters that decode to %d bytes (%v)",
			len(secret), len(raw), err)
	}
	reads, err := PolicyDNS{Servers: []string{addr}, Timeout: caddy.Duration(dnsTimeout)}.source()
	if err != nil {
		return nil, err
	}
	return &primary{
		addr: addr, reads: reads, key: dns.CanonicalName(keyName), algorithm: alg, secret: secret, timeout: reads.timeout,
	}, nil
}

// heldSettings is what the primary held at _mta-sts.D when it was read.
type heldSettings struct {
	name string // _mta-sts.D.
	zone string // the zone holding it, where the update goes
	// The TXT records there: the update's prerequisite is that they are
	// still exactly these.
	txts []dns.RR
	who  autopilot.Settings
	mode policy.Mode // the mode the autopilot's record sets
	own  dns.RR      // the autopilot's record, which the update replaces
}

// read reads the TXT records at _mta-sts.domain from the primary, and the
// zone that holds them.
func (p *primary) read(ctx context.Context, domain string) (heldSettings, error) {
	held := heldSettings{name: "_mta-sts." + dns.Fqdn(domain)}
	resp, err := askServers(ctx, p.reads, held.name, askTXT)
	if err != nil && !errors.Is(err, errNoSuchName) {
		return held, fmt.Errorf("reading %s TXT: %w", held.name, err)
	}
	var texts []string
	for _, rr := range resp.Answer {
		if !strings.EqualFold(rr.Header().Name, held.name) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			// Policy delegation (RFC 8461 §8.2): the owner's.
			held.who = autopilot.SettingsExplicit
			return held, nil
		case *dns.TXT:
			held.txts = append(held.txts, rr)
			texts = append(texts, strings.Join(rr.Txt, ""))
		}
	}
	held.who, held.mode = autopilot.SettingsOf(texts)
	if held.who == autopilot.SettingsAutopilot {
		held.own = held.txts[slices.IndexFunc(texts, policy.IsSettingsRecord)]
	}
	held.zone, err = p.zoneOf(ctx, held.name)
	return held, err
}

func askTXT(ctx context.Context, pool *connPool, qname string, deadline time.Time) (*dns.Msg, error) {
	return askType(ctx, pool, qname, dns.TypeTXT, deadline)
}

// zoneOf returns the zone of name, from the SOA record the primary gives
// with its answer to "name SOA": the answer itself at a zone's apex, the
// authority section below it.
func (p *primary) zoneOf(ctx context.Context, name string) (string, error) {
	resp, err := askServers(ctx, p.reads, name, func(ctx context.Context, pool *connPool, qname string, deadline time.Time) (*dns.Msg, error) {
		return askType(ctx, pool, qname, dns.TypeSOA, deadline)
	})
	if err != nil && !errors.Is(err, errNoSuchName) {
		return "", fmt.Errorf("the zone of %s: %w", name, err)
	}
	for _, rr := range slices.Concat(resp.Answer, resp.Ns) {
		if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
			return soa.Hdr.Name, nil
		}
	}
	return "", fmt.Errorf("the zone of %s: no SOA record in the primary's answer", name)
}

// update replaces what held found with record, in one UPDATE: the
// primary applies all of it or none (RFC 2136 §3.7), so nothing is ever
// half-written. Its prerequisite (§2.4.2, §2.4.3) is that the TXT records
// at the name are still exactly those read, or still none: a customer's
// or operator's record written meanwhile makes the update fail with
// errChangedMeanwhile rather than be overwritten. It fails with
// errPrimaryUnreachable when another try may succeed.
func (p *primary) update(ctx context.Context, held heldSettings, record string) error {
	m := new(dns.Msg)
	m.SetUpdate(held.zone)
	if len(held.txts) == 0 {
		m.RRsetNotUsed([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: held.name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
	} else {
		// Used and Remove rewrite the records' class and TTL, so they get
		// copies.
		m.Used(copies(held.txts))
	}
	if held.own != nil {
		m.Remove(copies([]dns.RR{held.own}))
	}
	m.Insert([]dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: held.name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: settingsTTL},
		Txt: []string{record},
	}})
	resp, err := p.exchange(ctx, m)
	if err != nil {
		return err
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeYXRrset, dns.RcodeNXRrset, dns.RcodeYXDomain, dns.RcodeNameError:
		return fmt.Errorf("%w: the primary answered %s", errChangedMeanwhile, dns.RcodeToString[resp.Rcode])
	case dns.RcodeRefused:
		return fmt.Errorf("%w for %s in zone %s: REFUSED (its ACL, or not its zone)", errUpdateRefused, held.name, held.zone)
	case dns.RcodeNotAuth:
		return fmt.Errorf("%w %s for %s: NOTAUTH (is the update policy of zone %s given to this key?)", errKeyRefused, p.key, held.name, held.zone)
	case dns.RcodeServerFailure:
		return fmt.Errorf("%w: SERVFAIL", errPrimaryUnreachable)
	}
	return fmt.Errorf("the primary answered the update %s", dns.RcodeToString[resp.Rcode])
}

// checkKey asks the primary for the SOA of zone, signed with the key: a
// harmless query whose answer says whether the primary knows the key and
// its secret. Primaries check a query's signature only for their own zones
// (Knot refuses others first), so zone must be one of them.
func (p *primary) checkKey(ctx context.Context, zone string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	m.RecursionDesired = false
	resp, err := p.exchange(ctx, m)
	if err != nil {
		return err
	}
	if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative {
		return fmt.Errorf("check_zone %s: the primary answered %s, not with the SOA of a zone it serves", zone, dns.RcodeToString[resp.Rcode])
	}
	return nil
}

// exchange sends m, signed, over TCP, and checks the signature of the
// answer. A TSIG error of the primary's (RFC 8945 §5.3.2) is
// errKeyRefused; no answer at all is errPrimaryUnreachable.
func (p *primary) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	m.SetTsig(p.key, p.algorithm, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: p.timeout, TsigSecret: map[string]string{p.key: p.secret}}
	resp, _, err := c.ExchangeContext(ctx, m, p.addr)
	if resp == nil {
		return nil, fmt.Errorf("%w: %s: %w", errPrimaryUnreachable, p.addr, err)
	}
	if t := resp.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		return nil, fmt.Errorf("%w %s (%s): %s; check the key's name, algorithm and secret, and that the primary's ACL lets it update TXT records",
			errKeyRefused, p.key, p.addr, dns.RcodeToString[int(t.Error)])
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s (%s): the answer's signature: %w", errKeyRefused, p.key, p.addr, err)
	}
	return resp, nil
}

func copies(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
	}
	return out
}

func (p *primary) close() error {
	if p == nil {
		return nil
	}
	return p.reads.close()
}
