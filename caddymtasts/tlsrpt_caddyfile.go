package caddymtasts

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("tlsrpt", parseTLSRPTReceiver)
	// Ahead of the routing directives, like mta_sts, so that a catch-all
	// handle in the same site cannot shadow the report path.
	httpcaddyfile.RegisterDirectiveOrder("tlsrpt", httpcaddyfile.Before, "invoke")
}

func parseTLSRPTReceiver(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	receiver := new(TLSRPTReceiver)
	err := receiver.UnmarshalCaddyfile(h.Dispenser)
	return receiver, err
}

// UnmarshalCaddyfile sets up the receiver from Caddyfile tokens:
//
//	tlsrpt [<matcher>] {
//	    servers <address...>
//	    timeout <duration>
//	    max_body_size <size>
//	    max_report_size <size>
//	    retention <duration>
//	    max_unattributed_per_day <reports>
//	}
//
// Sizes are in bytes or with a unit, as Caddy's request_body takes them:
// 1MiB, 16MB.
func (h *TLSRPTReceiver) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "max_body_size":
			err = unmarshalSize(d, &h.MaxBodySize)
		case "max_report_size":
			err = unmarshalSize(d, &h.MaxReportSize)
		case "retention":
			err = unmarshalDuration(d, &h.Retention)
		case "max_unattributed_per_day":
			err = unmarshalCount(d, &h.MaxUnattributedPerDay)
		default:
			err = h.PolicyDNS.unmarshalOption(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalSize reads the one argument of the current subdirective, a
// size of at least one byte.
func unmarshalSize(d *caddyfile.Dispenser, dst *int64) error {
	option := d.Val()
	var arg string
	if !d.AllArgs(&arg) {
		return d.ArgErr()
	}
	size, err := humanize.ParseBytes(arg)
	if err != nil || size < 1 || size > 1<<62 {
		return d.Errf("%s: want a size such as 1048576 or 1MiB, not %q", option, arg)
	}
	*dst = int64(size)
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*TLSRPTReceiver)(nil)
