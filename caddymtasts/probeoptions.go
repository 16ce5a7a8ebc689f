package caddymtasts

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
)

// ProbeOptions say how MX hosts are probed, in the app and in the command
// caddy mta-sts check.
type ProbeOptions struct {
	// The name the probes give in EHLO, so that the MX hosts' operators
	// can tell who connects. Default: this machine's host name.
	EHLOName string `json:"ehlo_name,omitempty"`

	// The SMTP port probed. Default: 25, the port senders connect to;
	// another is for tests.
	Port int `json:"port,omitempty"`

	// A PEM file of the root certificates a chain must lead to, instead
	// of the system's roots. Default: the system's roots, the ones senders
	// trust.
	CAFile string `json:"ca_file,omitempty"`

	// How long one probe of an MX host may take, from the connection to
	// the end of the TLS handshake. Default: 30s.
	ProbeTimeout caddy.Duration `json:"probe_timeout,omitempty"`

	// How many MX hosts are probed at once. Default: 10.
	Concurrency int `json:"concurrency,omitempty"`
}

// checkerConfig returns the checker's config for these options, reading
// the CA file.
func (o ProbeOptions) checkerConfig(dns readiness.DNS) (readiness.Config, error) {
	cfg := readiness.Config{
		DNS:         dns,
		EHLOName:    o.EHLOName,
		Port:        o.Port,
		Timeout:     time.Duration(o.ProbeTimeout),
		Concurrency: cmp.Or(o.Concurrency, readiness.DefaultConcurrency),
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return cfg, fmt.Errorf("ca_file: %w", err)
		}
		cfg.Roots = x509.NewCertPool()
		if !cfg.Roots.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("ca_file %s: no PEM certificate in it", o.CAFile)
		}
	}
	return cfg, nil
}
