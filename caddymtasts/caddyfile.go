package caddymtasts

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mta_sts", parseHandler)
	// Ahead of the routing directives, so that a catch-all handle or route
	// in the same site cannot shadow the policy path; the handler passes
	// every other path on.
	httpcaddyfile.RegisterDirectiveOrder("mta_sts", httpcaddyfile.Before, "invoke")
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	mta_sts {
//	    servers <address...>
//	    timeout <duration>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if err := h.PolicyDNS.unmarshalOption(d); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the permission module from Caddyfile tokens,
// inside the on_demand_tls global option:
//
//	permission mta_sts {
//	    servers     <address...>
//	    timeout     <duration>
//	    allow_ttl   <duration>
//	    deny_ttl    <duration>
//	    stale_allow <duration>
//	    cache_size  <entries>
//	    new_certs_per_domain_hour <certificates>
//	}
func (p *PermissionByMTASTS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "allow_ttl":
			err = unmarshalDuration(d, &p.AllowTTL)
		case "deny_ttl":
			err = unmarshalDuration(d, &p.DenyTTL)
		case "stale_allow":
			err = unmarshalDuration(d, &p.StaleAllow)
		case "cache_size":
			err = unmarshalCount(d, &p.CacheSize)
		case "new_certs_per_domain_hour":
			err = unmarshalCount(d, &p.NewCertsPerDomainHour)
		default:
			err = p.PolicyDNS.unmarshalOption(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalOption reads the subdirectives both modules share.
func (c *PolicyDNS) unmarshalOption(d *caddyfile.Dispenser) error {
	switch d.Val() {
	case "servers":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		for _, a := range args {
			if _, err := serverAddress(a); err != nil {
				return d.Errf("servers: %v", err)
			}
		}
		c.Servers = append(c.Servers, args...)
		return nil
	case "timeout":
		return unmarshalDuration(d, &c.Timeout)
	}
	return d.Errf("unrecognized subdirective %q", d.Val())
}

func unmarshalDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	option := d.Val()
	var arg string
	if !d.AllArgs(&arg) {
		return d.ArgErr()
	}
	dur, err := caddy.ParseDuration(arg)
	if err != nil {
		return d.Errf("%s: %v", option, err)
	}
	if dur < 0 {
		return d.Errf("%s: %s is negative", option, arg)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// unmarshalCount reads the one argument of the current subdirective, a
// whole number of at least 1.
func unmarshalCount(d *caddyfile.Dispenser, dst *int) error {
	option := d.Val()
	var arg string
	if !d.AllArgs(&arg) {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 {
		return d.Errf("%s: want a whole number of at least 1, not %q", option, arg)
	}
	*dst = n
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*PermissionByMTASTS)(nil)
)
