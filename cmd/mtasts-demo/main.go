// Command mtasts-demo runs the whole system in one process, on loopback and
// unprivileged ports: CoreDNS with the mtasts plugin serving the example
// zone, and Caddy with the MTA-STS handler and permission modules, issuing
// certificates on demand from its own local CA. It needs no root, no network
// and nothing installed beyond Go:
//
//	go run ./cmd/mtasts-demo
//
// It prints the dig and curl commands to try, logs every query and request
// it serves, one line each, and stops cleanly on Ctrl-C. It shows the
// operator's view too: CoreDNS's and Caddy's Prometheus metrics, each on a
// loopback port of its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	caddy2 "github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"

	_ "github.com/coredns-mtasts/mtasts"
	_ "github.com/coredns-mtasts/mtasts/caddymtasts"
	"github.com/coredns-mtasts/mtasts/examples"
)

// corefile serves the example zone from a copy the user may edit; the file
// plugin reloads it within a second of a serial increase. The prometheus
// plugin serves CoreDNS's metrics, coredns_mtasts_* among them.
const corefile = `example.com:{dnsport} {
	bind 127.0.0.1
	log . "dns {remote} {type} {name} {rcode} {duration}"
	errors
	prometheus 127.0.0.1:{dnsmetricsport}
	mtasts {
		policy_server 127.0.0.1
		tlsrpt mailto:tlsrpt+{domain}@provider.example
	}
	file {zone} {
		reload 1s
	}
}`

// caddyfile is Caddyfile.example's local variant: the internal CA, on-demand
// certificates only for managed domains, the policy handler. Its metrics,
// caddy_mta_sts_* and (with the global metrics option) caddy_http_*, are
// served by the metrics handler on a plain-HTTP loopback site of their own,
// so the admin API stays on its unix socket.
const caddyfile = `{
	admin unix/{admin}
	metrics
	persist_config off
	skip_install_trust
	auto_https disable_redirects
	https_port {httpsport}
	storage file_system {storage}
	log {
		level ERROR
		format console {
			level_format upper
		}
	}
	on_demand_tls {
		permission mta_sts {
			servers 127.0.0.1:{dnsport}
		}
	}
}

https:// {
	bind 127.0.0.1
	tls internal {
		on_demand
	}
	log {
		output stdout
		format filter {
			wrap console {
				level_format upper
			}
			fields {
				request>headers delete
				request>tls delete
				request>remote_port delete
				request>client_ip delete
				request>proto delete
				resp_headers delete
				user_id delete
				bytes_read delete
			}
		}
	}
	mta_sts {
		servers 127.0.0.1:{dnsport}
	}
	respond 404
}

http://:{httpsmetricsport} {
	bind 127.0.0.1
	metrics /metrics
}
`

// ports are the demo's loopback ports, one flag each.
type ports struct {
	dns, https               int // CoreDNS (udp, tcp), Caddy (https)
	dnsMetrics, httpsMetrics int // their metrics, over http
}

func main() {
	var p ports
	flag.IntVar(&p.dns, "dns-port", 1053, "`port` for DNS (CoreDNS) on 127.0.0.1")
	flag.IntVar(&p.https, "https-port", 8443, "`port` for HTTPS (Caddy) on 127.0.0.1")
	flag.IntVar(&p.dnsMetrics, "dns-metrics-port", 9153, "`port` for CoreDNS's metrics on http://127.0.0.1")
	flag.IntVar(&p.httpsMetrics, "https-metrics-port", 9154, "`port` for Caddy's metrics on http://127.0.0.1")
	flag.Parse()
	if err := run(p); err != nil {
		fmt.Fprintln(os.Stderr, "mtasts-demo:", err)
		os.Exit(1)
	}
}

func run(p ports) error {
	dir, err := os.MkdirTemp("", "mtasts-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	zone := filepath.Join(dir, "example.com.zone")
	if err := os.WriteFile(zone, []byte(examples.Zone), 0o644); err != nil {
		return err
	}
	vars := strings.NewReplacer("{dnsport}", fmt.Sprint(p.dns), "{httpsport}", fmt.Sprint(p.https),
		"{dnsmetricsport}", fmt.Sprint(p.dnsMetrics), "{httpsmetricsport}", fmt.Sprint(p.httpsMetrics),
		"{zone}", zone, "{storage}", filepath.Join(dir, "caddy"), "{admin}", filepath.Join(dir, "admin.sock"))

	dns, err := startCoreDNS(vars.Replace(corefile))
	if err != nil {
		return err
	}
	defer dns.Stop()
	if err := startCaddy(vars.Replace(caddyfile)); err != nil {
		return err
	}
	defer caddy2.Stop()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	printUsage(p, zone, filepath.Join(dir, "caddy/pki/authorities/local/root.crt"))
	<-ctx.Done()
	fmt.Println("\nmtasts-demo: stopping")
	return nil
}

func startCoreDNS(corefile string) (*caddy.Instance, error) {
	caddy.Quiet, dnsserver.Quiet = true, true
	i, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		return nil, fmt.Errorf("starting CoreDNS: %w", err)
	}
	return i, nil
}

func startCaddy(caddyfile string) error {
	config, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return fmt.Errorf("adapting the Caddyfile: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "caddyfile:", w.String())
	}
	if err := caddy2.Load(config, true); err != nil {
		return fmt.Errorf("starting Caddy: %w", err)
	}
	// Caddy took over the standard logger, which CoreDNS's log plugin
	// writes to; give it back, so each query is one plain line too.
	log.SetOutput(os.Stdout)
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	return nil
}

func printUsage(p ports, zone, caRoot string) {
	curl := fmt.Sprintf("curl -sS --cacert %s --resolve mta-sts.%%s:%d:127.0.0.1 https://mta-sts.%%s:%d/.well-known/mta-sts.txt",
		caRoot, p.https, p.https)
	dig := fmt.Sprintf("dig @127.0.0.1 -p %d +short", p.dns)
	fmt.Printf(`mtasts-demo: CoreDNS with mtasts on 127.0.0.1:%d (udp, tcp), Caddy with mta_sts on https://127.0.0.1:%d

The MTA-STS record and the policy it names, for a domain with MX records:
  %[3]s _mta-sts.example.com TXT
  %[4]s
The policy's SHA-256 starts with the id:
  %[4]s | sha256sum | cut -c1-32
A sub-domain with MX records of its own, and TLS-RPT:
  %[3]s _mta-sts.shop.example.com TXT
  %[3]s _smtp._tls.example.com TXT
No MX records: no record, and no certificate (the TLS handshake is refused):
  %[3]s _mta-sts.www.example.com TXT
  %[5]s
Edit the MX records in %[6]s, raise the SOA serial,
and within a second the id and the policy change.

The operator's view: CoreDNS's metrics on http://127.0.0.1:%[7]d/metrics and Caddy's
on http://127.0.0.1:%[8]d/metrics, for Prometheus; the plugin's and the modules' own
(a counter shows once it has counted, so try the commands above first):
  curl -sS http://127.0.0.1:%[7]d/metrics | grep coredns_mtasts_
  curl -sS http://127.0.0.1:%[8]d/metrics | grep caddy_mta_sts_ | grep -v _bucket

Each query and request is logged below. Ctrl-C stops.
`, p.dns, p.https, dig, fmt.Sprintf(curl, "example.com", "example.com"),
		fmt.Sprintf(curl, "www.example.com", "www.example.com"), zone, p.dnsMetrics, p.httpsMetrics)
}
