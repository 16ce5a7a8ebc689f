package caddymtasts

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

// Exit codes of caddy mta-sts check besides 0, every domain ready.
const (
	exitNotReady    = 1 // a domain is not ready for enforce
	exitCheckFailed = 2 // the command could not check: usage, options
)

func init() {
	flags := flag.NewFlagSet("mta-sts", flag.ExitOnError)
	flags.String("servers", defaultServer, "authoritative DNS servers running mtasts, host or host:port, comma-separated, asked in order")
	flags.Int("port", readiness.DefaultPort, "SMTP port to probe")
	flags.String("ca-file", "", "PEM file of the roots a certificate chain must lead to (default: the system's roots)")
	flags.String("ehlo-name", "", "name given in EHLO (default: this machine's host name)")
	flags.Duration("probe-timeout", readiness.DefaultTimeout, "how long the probe of one MX host may take")
	flags.Bool("json", false, "write the reports as JSON")
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mta-sts",
		Usage: "check [--servers <addresses>] [--port <port>] [--ca-file <path>] [--ehlo-name <name>] [--probe-timeout <duration>] [--json] <domain...>",
		Short: "Checks whether mail domains are ready for an MTA-STS policy in enforce mode",
		Long: `
Checks each mail domain the way a sender checks it under an MTA-STS policy
in enforce mode (RFC 8461 §4, §5): reads the domain's policy and MX hosts
from the authoritative DNS servers running the mtasts plugin, then connects
to each MX host on port 25, says EHLO, asks for STARTTLS and checks the TLS
connection: TLS 1.2 or later, a certificate chain to a trusted root, valid
now, with a DNS name matching the MX host name (a wildcard stands for
exactly one left-most label).

Prints a report per domain, or with --json a JSON array of them. Exits 0
when every domain is ready, 1 when one is not, 2 when it could not check.

Many clouds block outbound port 25: run it where a mail server could send.
`,
		Flags: flags,
		Func:  cmdMTASTS,
	})
}

func cmdMTASTS(fs caddycmd.Flags) (int, error) {
	args := fs.Args()
	if len(args) < 2 || args[0] != "check" {
		return exitCheckFailed, errors.New("usage: caddy mta-sts check [flags] <domain...>")
	}
	c := checkCommand{
		dns: PolicyDNS{Servers: strings.Split(fs.String("servers"), ",")},
		probes: ProbeOptions{
			EHLOName:     fs.String("ehlo-name"),
			Port:         fs.Int("port"),
			CAFile:       fs.String("ca-file"),
			ProbeTimeout: caddy.Duration(fs.Duration("probe-timeout")),
		},
		json: fs.Bool("json"),
	}
	return c.run(context.Background(), os.Stdout, args[1:])
}

// checkCommand is caddy mta-sts check with its options.
type checkCommand struct {
	dns    PolicyDNS
	probes ProbeOptions
	json   bool
}

// run checks the domains, writes the reports to w and returns the exit
// code, with an error unless every domain is ready.
func (c checkCommand) run(ctx context.Context, w io.Writer, domains []string) (int, error) {
	for i, d := range domains {
		name, err := policy.NormalizeHost(d)
		if err != nil {
			return exitCheckFailed, fmt.Errorf("domain %q: %w", d, err)
		}
		domains[i] = name
	}
	source, err := c.dns.source()
	if err != nil {
		return exitCheckFailed, err
	}
	defer source.close()
	cfg, err := c.probes.checkerConfig(source)
	if err != nil {
		return exitCheckFailed, err
	}
	checker, err := readiness.New(cfg)
	if err != nil {
		return exitCheckFailed, err
	}
	reports := checkEach(ctx, checker, domains)
	if err := c.write(w, reports); err != nil {
		return exitCheckFailed, err
	}
	var notReady []string
	for _, r := range reports {
		if !r.Ready {
			notReady = append(notReady, r.Domain)
		}
	}
	if len(notReady) > 0 {
		return exitNotReady, fmt.Errorf("not ready for enforce: %s", strings.Join(notReady, ", "))
	}
	return 0, nil
}

// checkEach checks the domains at once and returns their reports in
// order; the checker bounds the probes.
func checkEach(ctx context.Context, checker *readiness.Checker, domains []string) []readiness.DomainReport {
	reports := make([]readiness.DomainReport, len(domains))
	var wg sync.WaitGroup
	for i, domain := range domains {
		wg.Go(func() { reports[i] = checker.CheckDomain(ctx, domain) })
	}
	wg.Wait()
	return reports
}

// write writes the reports, as JSON or for people.
func (c checkCommand) write(w io.Writer, reports []readiness.DomainReport) error {
	if c.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	var b strings.Builder
	for _, r := range reports {
		writeReport(&b, r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeReport writes one domain's report for people: the verdict, a line
// per MX host, and the reasons against enforce.
func writeReport(b *strings.Builder, r readiness.DomainReport) {
	verdict := "ready for enforce"
	if !r.Ready {
		verdict = "NOT ready for enforce"
	}
	fmt.Fprintf(b, "%s: %s", r.Domain, verdict)
	if r.Mode != "" {
		fmt.Fprintf(b, " (policy mode now: %s)", r.Mode)
	}
	b.WriteString("\n")
	for _, h := range r.MXHosts {
		fmt.Fprintf(b, "  %s  %s  %s", h.Host, h.Address, h.Outcome)
		if h.TLSVersion != "" {
			fmt.Fprintf(b, "  %s", h.TLSVersion)
		}
		if len(h.CertificateNames) > 0 {
			fmt.Fprintf(b, ", certificate for %s until %s", strings.Join(h.CertificateNames, " "), h.NotAfter.UTC().Format(time.DateOnly))
		}
		b.WriteString("\n")
	}
	for _, reason := range r.Reasons {
		fmt.Fprintf(b, "  - %s\n", reason)
	}
}
