package caddymtasts

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// Defaults of PolicyDNS.
const (
	defaultServer  = "127.0.0.1:53"
	defaultTimeout = 3 * time.Second
)

var (
	// errNotManaged means the authoritative DNS says there is no policy for
	// the domain: it is not one of the provider's managed mail domains.
	errNotManaged = errors.New("no MTA-STS policy published")
	// errInvalidPolicy means the DNS publishes a record that claims to be a
	// policy but is not a valid one: a fault on the publishing side.
	errInvalidPolicy = errors.New("invalid MTA-STS policy published")
	// errUnvouched means DNS answered with what looks like a policy, but
	// the mtasts plugin did not vouch for it (see policy.ProofOption): a
	// cache or resolver between the modules and the plugin, which may hold
	// an old policy, or zone data imitating one. Neither may be served.
	errUnvouched = errors.New("policy not vouched for by the mtasts plugin; is a cache or resolver in front of it, or does the zone hold a TXT record that imitates a policy?")
	// errNoSuchName means the servers say the name does not exist.
	errNoSuchName = errors.New("no such name")
	// errNotInZones means the name is in none of the servers' zones: they
	// refused the query, or the name is delegated to other servers.
	errNotInZones = errors.New("not in the servers' zones")
)

// proofNonceSize is the length of the nonces sent in policy.ProofOption:
// 128 bits, so no cache can have stored an answer with a matching echo.
const proofNonceSize = 16

// PolicyDNS says where both modules read policies: the DNS servers that are
// authoritative for the managed mail domains, where the CoreDNS plugin
// mtasts publishes each policy at mta-sts.D TXT.
type PolicyDNS struct {
	// The authoritative DNS servers running the CoreDNS plugin mtasts, as
	// "host" or "host:port" (port 53 by default). They are asked in order,
	// over TCP, each in turn after the previous one failed. Only answers
	// the plugin vouches for count (an EDNS option echoed; see
	// policy.ProofOption), so give a server block without a cache above
	// the plugin, never a caching resolver: a cache's answer can be older
	// than the id senders see, and it never carries the echo, so policies
	// would be refused. Default: ["127.0.0.1:53"].
	Servers []string `json:"servers,omitempty"`

	// How long one policy lookup may take, across all servers. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// source applies the defaults and returns the client that reads policies.
func (c PolicyDNS) source() (*policySource, error) {
	servers := c.Servers
	if len(servers) == 0 {
		servers = []string{defaultServer}
	}
	pools := make([]*connPool, len(servers))
	for i, s := range servers {
		addr, err := serverAddress(s)
		if err != nil {
			return nil, err
		}
		pools[i] = &connPool{addr: addr}
	}
	timeout := time.Duration(c.Timeout)
	switch {
	case timeout < 0:
		return nil, fmt.Errorf("timeout %s is negative", timeout)
	case timeout == 0:
		timeout = defaultTimeout
	}
	// TCP makes off-path spoofing impractical: a forged answer would have
	// to match the connection's sequence numbers, not just guess a 16-bit
	// id and a port. The connections stay open between lookups.
	return &policySource{timeout: timeout, pools: pools}, nil
}

// serverAddress returns s as host:port, adding port 53 when s has none. A
// port that is no number from 1 to 65535 is an error here, when the config
// loads, rather than at the first lookup.
func serverAddress(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "53"
		if bracketed, ok := strings.CutPrefix(s, "["); ok {
			if host, ok = strings.CutSuffix(bracketed, "]"); !ok {
				host = ""
			}
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); host == "" || err != nil || n == 0 || strings.ContainsAny(host, "[]/ ") {
		return "", fmt.Errorf("DNS server %q: want host or host:port, with a port from 1 to 65535", s)
	}
	return net.JoinHostPort(host, port), nil
}

// policySource reads policies from the authoritative DNS servers. It keeps
// no answers: every lookup asks DNS again.
type policySource struct {
	timeout time.Duration
	pools   []*connPool // one per server, asked in this order
}

// servers returns the addresses of the DNS servers, in the order asked.
func (s *policySource) servers() []string {
	addrs := make([]string, len(s.pools))
	for i, p := range s.pools {
		addrs[i] = p.addr
	}
	return addrs
}

// close closes the connections the source keeps open. Caddy cleans up
// modules whose provisioning failed, so s may be nil.
func (s *policySource) close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, p := range s.pools {
		errs = append(errs, p.close())
	}
	return errors.Join(errs...)
}

// lookup returns the policy body of the Policy Domain domain as the
// authoritative DNS publishes it now: the strings of the one policy TXT
// record at mta-sts.<domain>, each line ending in CRLF, exactly the bytes
// whose SHA-256 is the id at _mta-sts.<domain>. It fails with errNotManaged
// when DNS says there is no policy, with errInvalidPolicy when the
// published policy is not valid, and with another error when no server gave
// an authoritative answer in time.
func (s *policySource) lookup(ctx context.Context, domain string) ([]byte, error) {
	start := time.Now()
	body, err := askServers(ctx, s, "mta-sts."+domain+".", askOne)
	observeLookup(time.Since(start), err)
	return body, err
}

// askServers asks the servers about qname in order, each after the
// previous one failed, until one gives a verdict (an answer, or an
// authoritative statement that there is none), all within the source's
// timeout and ctx's deadline. ask asks one server by the deadline.
func askServers[T any](ctx context.Context, s *policySource, qname string,
	ask func(ctx context.Context, pool *connPool, qname string, deadline time.Time) (T, error),
) (T, error) {
	end := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	var errs []error
	for i, pool := range s.pools {
		// Each server gets an equal share of the time left among the
		// servers not yet asked, so one server that hangs does not use up
		// the time of the others.
		deadline := time.Now().Add(time.Until(end) / time.Duration(len(s.pools)-i))
		answer, err := ask(ctx, pool, qname, deadline)
		if err == nil || isVerdict(err) {
			return answer, err
		}
		errs = append(errs, fmt.Errorf("DNS server %s: %w", pool.addr, err))
	}
	var none T
	return none, errors.Join(errs...)
}

// isVerdict reports whether err is an authoritative statement about the
// name rather than a failure of the server, so that asking another server
// would not change it.
func isVerdict(err error) bool {
	return errors.Is(err, errNotManaged) || errors.Is(err, errInvalidPolicy) ||
		errors.Is(err, errNoSuchName) || errors.Is(err, errNotInZones)
}

// askOne asks one server for the policy at qname, giving up at deadline.
// The deadline goes to the connection rather than into a context of its
// own: deriving contexts with timeouts (a timer and a link to the parent
// each) took 2 of the 2.7 us a lookup cost on top of the bare exchange
// (BenchmarkPolicyLookup).
func askOne(ctx context.Context, pool *connPool, qname string, deadline time.Time) ([]byte, error) {
	q, nonce := policyQuery(qname)
	resp, err := pool.exchange(ctx, deadline, q)
	if err != nil {
		return nil, err
	}
	return policyFromAnswer(qname, nonce, resp)
}

// policyQuery returns the query "qname TXT", without recursion, asking the
// plugin to vouch for its answer with a fresh nonce, and that nonce.
func policyQuery(qname string) (*dns.Msg, []byte) {
	nonce := make([]byte, proofNonceSize)
	rand.Read(nonce)
	q := new(dns.Msg)
	q.SetQuestion(qname, dns.TypeTXT)
	q.RecursionDesired = false
	q.SetEdns0(dns.MaxMsgSize, false)
	opt := q.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: nonce})
	return q, nonce
}

// policyFromAnswer reads a policy body out of a DNS response to the
// question "qname TXT" that carried nonce in its policy.ProofOption.
//
// A policy counts only if the mtasts plugin synthesized it for this very
// query: the answer echoes the nonce, and the policy lines hash to the id
// the plugin put beside them. An echo without an id is the plugin's word
// that it does not manage the domain, whatever TXT records the zone holds
// there. A TXT record that looks like a policy in an answer without the
// echo is errUnvouched: a cache or resolver answered, not the plugin.
// Otherwise only an authoritative statement counts: NXDOMAIN, NODATA, a
// referral (the name is delegated away from the provider's zones) or
// REFUSED (the server holds no zone for the name) say the domain is not
// managed. Anything else, SERVFAIL or a truncated answer in particular, is
// an error, so callers fail closed.
func policyFromAnswer(qname string, nonce []byte, resp *dns.Msg) ([]byte, error) {
	if err := checkResponse(qname, dns.TypeTXT, resp); err != nil {
		if errors.Is(err, errNoSuchName) || errors.Is(err, errNotInZones) {
			return nil, fmt.Errorf("%w: %w", errNotManaged, err)
		}
		return nil, err
	}
	policies := policyRecords(qname, resp)
	ids := idRecords(qname, resp)
	vouched := bytes.Equal(proofEcho(resp), nonce)
	switch {
	case !vouched && len(policies) > 0:
		return nil, fmt.Errorf("%w at %s", errUnvouched, qname)
	case !vouched || len(ids) == 0:
		return nil, fmt.Errorf("%w: no policy synthesized at %s", errNotManaged, qname)
	case len(policies) != 1:
		return nil, fmt.Errorf("%w: %d policy TXT records at %s, want one", errInvalidPolicy, len(policies), qname)
	}
	body := policy.JoinLines(policies[0].Txt)
	if _, err := policy.Parse(body); err != nil {
		return nil, fmt.Errorf("%w at %s: %w", errInvalidPolicy, qname, err)
	}
	rec, err := policy.SelectRecord(ids)
	if err != nil {
		return nil, fmt.Errorf("%w: id beside the policy at %s: %w", errInvalidPolicy, qname, err)
	}
	if id := policy.IDOf(body); id != rec.ID {
		return nil, fmt.Errorf("%w: policy at %s hashes to %s, the id beside it is %s", errInvalidPolicy, qname, id, rec.ID)
	}
	return body, nil
}

// checkResponse returns nil for an authoritative NOERROR answer to the
// question "qname qtype", and an error that says why for any other:
// errNoSuchName or errNotInZones for the authoritative statements that
// the name does not exist or is not in the servers' zones, another error
// for a failure.
func checkResponse(qname string, qtype uint16, resp *dns.Msg) error {
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, qname) ||
		resp.Question[0].Qtype != qtype || resp.Question[0].Qclass != dns.ClassINET {
		return errors.New("answer to another question")
	}
	switch {
	case resp.Truncated:
		// Over TCP only an answer too large for one message is cut; the
		// plugin does not publish such policies, so something is wrong.
		return errors.New("answer truncated")
	case resp.Rcode == dns.RcodeRefused:
		return fmt.Errorf("%w: server refused the query for %s, it is authoritative for no zone holding it", errNotInZones, qname)
	case resp.Rcode == dns.RcodeNameError && resp.Authoritative:
		return fmt.Errorf("%w: %s", errNoSuchName, qname)
	case resp.Rcode == dns.RcodeSuccess && !resp.Authoritative && isReferral(resp):
		return fmt.Errorf("%w: %s is delegated to other servers", errNotInZones, qname)
	case resp.Rcode != dns.RcodeSuccess:
		return fmt.Errorf("server answered %s", dns.RcodeToString[resp.Rcode])
	case !resp.Authoritative:
		return errors.New("answer is not authoritative; is this server a resolver rather than an authoritative server?")
	}
	return nil
}

// policyRecords returns the TXT records at qname that claim to be a policy.
func policyRecords(qname string, resp *dns.Msg) []*dns.TXT {
	var found []*dns.TXT
	for _, rr := range resp.Answer {
		// Like senders with the _mta-sts record (RFC 8461 §3.1), skip TXT
		// records that do not claim to be a policy, such as a customer's
		// own verification token at mta-sts.D.
		if txt, ok := rr.(*dns.TXT); ok && strings.EqualFold(txt.Hdr.Name, qname) && txt.Hdr.Class == dns.ClassINET &&
			len(txt.Txt) > 0 && strings.HasPrefix(txt.Txt[0], "version:") {
			found = append(found, txt)
		}
	}
	return found
}

// idRecords returns the text of the TXT records in the additional section
// owned by the "_mta-sts" name beside qname: where the plugin puts the id
// of the policy it synthesized.
func idRecords(qname string, resp *dns.Msg) []string {
	recordName := "_" + qname
	var txts []string
	for _, rr := range resp.Extra {
		if txt, ok := rr.(*dns.TXT); ok && strings.EqualFold(txt.Hdr.Name, recordName) {
			txts = append(txts, strings.Join(txt.Txt, ""))
		}
	}
	return txts
}

// proofEcho returns the data of the policy.ProofOption in resp's OPT
// record, or nil.
func proofEcho(resp *dns.Msg) []byte {
	opt := resp.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if local, ok := o.(*dns.EDNS0_LOCAL); ok && local.Code == policy.ProofOption {
			return local.Data
		}
	}
	return nil
}

// isReferral reports whether a response delegates the name elsewhere: no
// answer, NS records in the authority section.
func isReferral(resp *dns.Msg) bool {
	if len(resp.Answer) > 0 {
		return false
	}
	for _, rr := range resp.Ns {
		if rr.Header().Rrtype == dns.TypeNS {
			return true
		}
	}
	return false
}
