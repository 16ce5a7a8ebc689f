package caddymtasts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

// The readiness checker reads what a sender reads through the modules' DNS
// client: the same servers, TCP, authoritative answers only, failover.

// Policy returns the policy the domain publishes now, read the way the
// handler reads it.
func (s *policySource) Policy(ctx context.Context, domain string) (policy.Policy, error) {
	body, err := s.lookup(ctx, domain)
	if err != nil {
		return policy.Policy{}, err
	}
	return policy.Parse(body)
}

// MXHosts returns the domain's MX hosts as the servers publish them, most
// preferred first (equal preferences by name), without a null MX.
func (s *policySource) MXHosts(ctx context.Context, domain string) ([]string, error) {
	return askServers(ctx, s, dns.Fqdn(domain), askMX)
}

func askMX(ctx context.Context, pool *connPool, qname string, deadline time.Time) ([]string, error) {
	resp, err := askType(ctx, pool, qname, dns.TypeMX, deadline)
	if err != nil {
		return nil, err
	}
	var records []*dns.MX
	for _, rr := range resp.Answer {
		if mx, ok := rr.(*dns.MX); ok && strings.EqualFold(mx.Hdr.Name, qname) && mx.Mx != "." {
			records = append(records, mx)
		}
	}
	slices.SortFunc(records, func(a, b *dns.MX) int {
		return cmp.Or(cmp.Compare(a.Preference, b.Preference), strings.Compare(hostName(a.Mx), hostName(b.Mx)))
	})
	hosts := make([]string, 0, len(records))
	for _, mx := range records {
		if host := hostName(mx.Mx); !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	return hosts, nil
}

// Addresses returns the IPv4 addresses of an MX host, then its IPv6
// addresses. A host in the servers' zones gets them from the servers; a
// host outside them, such as a large mail service's MX, from the system's
// resolver, as a sender would.
func (s *policySource) Addresses(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := askServers(ctx, s, dns.Fqdn(host), askAddresses)
	if errors.Is(err, errNotInZones) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	return addrs, err
}

func askAddresses(ctx context.Context, pool *connPool, qname string, deadline time.Time) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, err := askType(ctx, pool, qname, qtype, deadline)
		if err != nil {
			return nil, err
		}
		found, leaves := addressesOf(qname, resp)
		if leaves != "" {
			return nil, fmt.Errorf("%w: %s is an alias of %s", errNotInZones, qname, leaves)
		}
		addrs = append(addrs, found...)
	}
	return addrs, nil
}

// addressesOf returns the addresses of qname in resp, following the CNAME
// records in it. When the chain leaves the answer, it returns the name it
// leaves for.
func addressesOf(qname string, resp *dns.Msg) (addrs []netip.Addr, leaves string) {
	names := []string{strings.ToLower(qname)}
	var cname string
	for _, rr := range resp.Answer {
		owner := strings.ToLower(rr.Header().Name)
		if !slices.Contains(names, owner) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			cname = strings.ToLower(rr.Target)
			names = append(names, cname)
		case *dns.A:
			addrs = appendAddr(addrs, rr.A)
		case *dns.AAAA:
			addrs = appendAddr(addrs, rr.AAAA)
		}
	}
	if len(addrs) == 0 && cname != "" {
		return nil, cname
	}
	return addrs, ""
}

func appendAddr(addrs []netip.Addr, ip net.IP) []netip.Addr {
	if a, ok := netip.AddrFromSlice(ip); ok {
		return append(addrs, a.Unmap())
	}
	return addrs
}

// askType asks one server "qname qtype" and returns its answer if it is an
// authoritative NOERROR; errNoSuchName, errNotInZones or another error
// otherwise.
func askType(ctx context.Context, pool *connPool, qname string, qtype uint16, deadline time.Time) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(qname, qtype)
	q.RecursionDesired = false
	resp, err := pool.exchange(ctx, deadline, q)
	if err != nil {
		return nil, err
	}
	return resp, checkResponse(qname, qtype, resp)
}

// hostName returns a DNS name as an MX host name: lowercase, without the
// final dot.
func hostName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// Interface guard
var _ readiness.DNS = (*policySource)(nil)
