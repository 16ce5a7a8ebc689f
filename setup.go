package mtasts

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

const pluginName = "mtasts"

// Defaults of the Corefile properties.
const (
	defaultMaxAge = 604800 // one week, as in RFC 8461's examples
	defaultTTL    = 300
	maxTTL        = 1<<31 - 1 // RFC 2181 §8
)

func init() {
	// A binary that imports the plugin gets it at its place in the chain,
	// right below dnssec so synthesized answers are signed; a build that
	// lists mtasts in plugin.cfg already has it and keeps that position.
	dnsserver.Directives = insertDirective(dnsserver.Directives, pluginName, "dnssec")
	plugin.Register(pluginName, setup)
}

// insertDirective returns directives with name placed right after the
// directive after, or appended if after is missing. A list that already
// holds name is returned unchanged.
func insertDirective(directives []string, name, after string) []string {
	if slices.Contains(directives, name) {
		return directives
	}
	i := slices.Index(directives, after) + 1
	if i == 0 {
		i = len(directives)
	}
	return slices.Insert(slices.Clone(directives), i, name)
}

func setup(c *caddy.Controller) error {
	m, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		m.Next = next
		return m
	})
	return nil
}

// parse reads one mtasts block:
//
//	mtasts [ZONES...] {
//	    policy_server ADDRESS...
//	    policy_cname HOST
//	    mode testing|enforce|none
//	    max_age SECONDS
//	    ttl SECONDS
//	    tlsrpt URI...
//	}
func parse(c *caddy.Controller) (*MTASTS, error) {
	m := &MTASTS{Mode: policy.ModeTesting, MaxAge: defaultMaxAge, TTL: defaultTTL}
	for i := 0; c.Next(); i++ {
		if i > 0 {
			return nil, plugin.ErrOnce
		}
		m.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		if zone := zoneOutsideBlock(m.Zones, c.ServerBlockKeys); zone != "" {
			return nil, c.Errf("zone '%s' is not in this server block's zones %v: mtasts would never see a query for it",
				zone, plugin.OriginsFromArgsOrServerBlock(nil, c.ServerBlockKeys))
		}
		seen := map[string]bool{}
		for c.NextBlock() {
			property := c.Val()
			if seen[property] {
				return nil, c.Errf("property '%s' given twice", property)
			}
			seen[property] = true
			if err := m.parseProperty(c, property); err != nil {
				return nil, err
			}
		}
		switch {
		case len(m.PolicyServers) == 0 && m.PolicyCNAME == "":
			return nil, c.Err("one of policy_server or policy_cname is required")
		case len(m.PolicyServers) > 0 && m.PolicyCNAME != "":
			return nil, c.Err("policy_server and policy_cname exclude each other")
		}
	}
	return m, nil
}

// zoneOutsideBlock returns the first of zones that is not at or below one
// of the server block's zones, or "". CoreDNS routes a query to a server
// block by its zones, so mtasts never sees a query outside them.
func zoneOutsideBlock(zones, serverBlockKeys []string) string {
	block := plugin.Zones(plugin.OriginsFromArgsOrServerBlock(nil, serverBlockKeys))
	for _, z := range zones {
		if block.Matches(z) == "" {
			return z
		}
	}
	return ""
}

func (m *MTASTS) parseProperty(c *caddy.Controller, property string) error {
	args := c.RemainingArgs()
	switch property {
	case "policy_server":
		return m.parsePolicyServers(c, args)
	case "policy_cname", "mode", "max_age", "ttl":
		if len(args) != 1 {
			return c.ArgErr()
		}
		return m.parseScalar(c, property, args[0])
	case "tlsrpt":
		if len(args) == 0 {
			return c.ArgErr()
		}
		if _, err := policy.TLSRPTRecord(reportURIs(args, "example.com")); err != nil {
			return c.Errf("tlsrpt: %v", err)
		}
		m.TLSRPT = args
		return nil
	}
	return c.Errf("unknown property '%s'", property)
}

func (m *MTASTS) parsePolicyServers(c *caddy.Controller, args []string) error {
	if len(args) == 0 {
		return c.ArgErr()
	}
	for _, a := range args {
		ip := net.ParseIP(a)
		if ip == nil {
			return c.Errf("policy_server: '%s' is not an IP address", a)
		}
		m.PolicyServers = append(m.PolicyServers, ip)
	}
	return nil
}

func (m *MTASTS) parseScalar(c *caddy.Controller, property, arg string) error {
	var err error
	switch property {
	case "policy_cname":
		var host string
		host, err = policy.NormalizeHost(arg)
		m.PolicyCNAME = dns.Fqdn(host)
	case "mode":
		m.Mode, err = policy.ParseMode(arg)
	case "max_age":
		// The grammar and bounds of RFC 8461, as in settings records.
		m.MaxAge, err = policy.ParseMaxAge(arg)
	case "ttl":
		// 0 would keep resolvers from caching the records at all, so that
		// every sender's lookup reached the authoritative servers.
		m.TTL, err = parseSeconds(arg, 1, maxTTL)
	}
	if err != nil {
		return c.Errf("%s: %v", property, err)
	}
	return nil
}

func parseSeconds(s string, min, max uint32) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || uint32(n) < min || uint32(n) > max {
		return 0, fmt.Errorf("'%s' is not a number of seconds from %d to %d", s, min, max)
	}
	return uint32(n), nil
}

// reportURIs returns the tlsrpt URIs for one mail domain, with {domain}
// replaced by its name.
func reportURIs(templates []string, domain string) []string {
	uris := make([]string, len(templates))
	for i, t := range templates {
		uris[i] = strings.ReplaceAll(t, "{domain}", domain)
	}
	return uris
}
