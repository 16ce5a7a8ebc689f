package caddymtasts

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("mta_sts", parseApp)
}

// parseApp sets up the mta_sts app from the global option of that name.
func parseApp(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "mta_sts", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens, in the global
// options:
//
//	mta_sts {
//	    servers       <address...>
//	    timeout       <duration>
//	    interval      <duration>
//	    ehlo_name     <name>
//	    port          <port>
//	    ca_file       <path>
//	    probe_timeout <duration>
//	    concurrency   <probes>
//	    report_days   <days>
//	    disable_checks
//	    events {
//	        retention <duration>
//	        warn_days <days>
//	        webhook <url> {
//	            secret    <secret>
//	            timeout   <duration>
//	            retry_for <duration>
//	            ca_file   <path>
//	        }
//	    }
//	    autopilot {
//	        primary         <address>
//	        tsig_key_name   <name>
//	        tsig_algorithm  hmac-sha256|hmac-sha384|hmac-sha512
//	        tsig_secret     <base64, or a placeholder: {env.NAME}, {file./path}>
//	        check_zone      <zone>
//	        dry_run
//	        promote_checks  <checks>
//	        promote_after   <duration>
//	        report_days     <days>
//	        min_sessions    <sessions>
//	        change_interval <duration>
//	    }
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "interval":
			err = unmarshalDuration(d, &a.Interval)
		case "ehlo_name":
			err = unmarshalString(d, &a.EHLOName)
		case "port":
			if err = unmarshalCount(d, &a.Port); err == nil && a.Port > 65535 {
				err = d.Errf("port: want 1 to 65535, not %d", a.Port)
			}
		case "ca_file":
			err = unmarshalString(d, &a.CAFile)
		case "probe_timeout":
			err = unmarshalDuration(d, &a.ProbeTimeout)
		case "concurrency":
			err = unmarshalCount(d, &a.Concurrency)
		case "report_days":
			err = unmarshalCount(d, &a.ReportDays)
		case "disable_checks":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.DisableChecks = true
		case "events":
			err = a.Events.unmarshalCaddyfile(d)
		case "autopilot":
			a.Autopilot = new(Autopilot)
			err = a.Autopilot.unmarshalCaddyfile(d)
		default:
			err = a.PolicyDNS.unmarshalOption(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalCaddyfile reads the events block of the app.
func (o *EventOptions) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "retention":
			err = unmarshalDuration(d, &o.Retention)
		case "warn_days":
			err = unmarshalCount(d, &o.WarnDays)
		case "webhook":
			o.Webhook = new(Webhook)
			err = o.Webhook.unmarshalCaddyfile(d)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalCaddyfile reads the webhook line and block.
func (w *Webhook) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	w.URL = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "secret":
			err = unmarshalString(d, &w.Secret)
		case "timeout":
			err = unmarshalDuration(d, &w.Timeout)
		case "retry_for":
			err = unmarshalDuration(d, &w.RetryFor)
		case "ca_file":
			err = unmarshalString(d, &w.CAFile)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalCaddyfile reads the autopilot's block.
func (o *Autopilot) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "primary":
			if err = unmarshalString(d, &o.Primary); err != nil {
				break
			}
			if _, aerr := serverAddress(o.Primary); aerr != nil {
				err = d.Errf("primary: %v", aerr)
			}
		case "tsig_key_name":
			err = unmarshalString(d, &o.TSIGKeyName)
		case "tsig_algorithm":
			err = unmarshalString(d, &o.TSIGAlgorithm)
		case "tsig_secret":
			err = unmarshalString(d, &o.TSIGSecret)
		case "check_zone":
			err = unmarshalString(d, &o.CheckZone)
		case "dry_run":
			if d.NextArg() {
				return d.ArgErr()
			}
			o.DryRun = true
		case "promote_checks":
			err = unmarshalCount(d, &o.PromoteChecks)
		case "promote_after":
			err = unmarshalDuration(d, &o.PromoteAfter)
		case "report_days":
			err = unmarshalCount(d, &o.ReportDays)
		case "min_sessions":
			err = unmarshalSessions(d, &o.MinSessions)
		case "change_interval":
			err = unmarshalDuration(d, &o.ChangeInterval)
		default:
			err = d.Errf("autopilot: unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalSessions reads min_sessions: a whole number, 0 included.
func unmarshalSessions(d *caddyfile.Dispenser, dst **int64) error {
	var arg string
	if !d.AllArgs(&arg) {
		return d.ArgErr()
	}
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 {
		return d.Errf("min_sessions: want a whole number of at least 0, not %q", arg)
	}
	*dst = &n
	return nil
}

// unmarshalString reads the one argument of the current subdirective.
func unmarshalString(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
