package caddymtasts

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mta_sts_dashboard", parseDashboard)
	// With the handlers that answer every request they get, such as
	// file_server: after basic_auth and forward_auth, which must run
	// first, and after the routing directives, so a site can route other
	// paths elsewhere.
	httpcaddyfile.RegisterDirectiveOrder("mta_sts_dashboard", httpcaddyfile.Before, "file_server")
}

func parseDashboard(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	dashboard := new(Dashboard)
	err := dashboard.UnmarshalCaddyfile(h.Dispenser)
	return dashboard, err
}

// UnmarshalCaddyfile sets up the dashboard from Caddyfile tokens:
//
//	mta_sts_dashboard [<matcher>] {
//	    servers <address...>
//	    timeout <duration>
//	    protected_by basic_auth|client_certificates|network
//	}
func (d *Dashboard) UnmarshalCaddyfile(disp *caddyfile.Dispenser) error {
	disp.Next() // directive name
	if disp.NextArg() {
		return disp.ArgErr()
	}
	for disp.NextBlock(0) {
		if disp.Val() != "protected_by" {
			if err := d.PolicyDNS.unmarshalOption(disp); err != nil {
				return err
			}
			continue
		}
		if !disp.AllArgs(&d.ProtectedBy) {
			return disp.ArgErr()
		}
		if err := d.Validate(); err != nil {
			return disp.Err(err.Error())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Dashboard)(nil)
