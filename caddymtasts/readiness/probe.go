package readiness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// Outcome names the result of a probe: pass, or the first check that
// failed, in the order a sender makes them. It is a small fixed set, fit
// for a metric label.
type Outcome string

// The outcomes of a probe.
const (
	OutcomePass            Outcome = "pass"
	OutcomeDNS             Outcome = "dns_failed"       // no address for the host
	OutcomeConnect         Outcome = "connect_failed"   // no address accepted a connection
	OutcomeSMTP            Outcome = "smtp_failed"      // no greeting, or the server refused EHLO
	OutcomeNoSTARTTLS      Outcome = "no_starttls"      // STARTTLS not offered
	OutcomeSTARTTLSRefused Outcome = "starttls_refused" // STARTTLS offered, then refused
	OutcomeHandshake       Outcome = "tls_failed"       // the TLS handshake failed
	OutcomeTLSVersion      Outcome = "tls_version"      // TLS older than 1.2
	OutcomeExpired         Outcome = "expired"          // the certificate is expired or not valid yet
	OutcomeUntrusted       Outcome = "untrusted"        // the chain does not lead to a trusted root
	OutcomeSelfSigned      Outcome = "self_signed"      // the certificate signed itself
	OutcomeNameMismatch    Outcome = "name_mismatch"    // no DNS-ID for the MX host name
	OutcomeCanceled        Outcome = "canceled"         // the caller gave up; not cached
)

// HostResult is what a probe of one MX host found.
type HostResult struct {
	Host      string    `json:"host"`
	CheckedAt time.Time `json:"checked_at"`
	// The address that answered, or the last one tried.
	Address   string `json:"address,omitempty"`
	Reachable bool   `json:"reachable"` // an SMTP greeting came
	STARTTLS  bool   `json:"starttls"`  // offered in the EHLO response
	// The TLS version negotiated, such as "TLS 1.3".
	TLSVersion string `json:"tls_version,omitempty"`
	// The DNS-IDs of the certificate presented, and its expiry.
	CertificateNames []string  `json:"certificate_names,omitempty"`
	NotAfter         time.Time `json:"not_after,omitzero"`
	// The chain leads to a trusted root and every certificate in it is
	// valid now.
	ChainVerified bool `json:"chain_verified"`
	// A DNS-ID of the certificate matches the MX host name.
	NameMatches bool    `json:"name_matches"`
	Outcome     Outcome `json:"outcome"`
	// The exact failure, in words; empty when the host passed.
	Failure string `json:"failure,omitempty"`
}

// ProbeHost returns the result of probing host as a sender would: the
// result of this interval if the host was probed already, or that of the
// probe running for it, or that of a new probe.
func (c *Checker) ProbeHost(ctx context.Context, host string) HostResult {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return c.hosts.result(ctx, host, func() HostResult {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return c.failed(HostResult{Host: host}, OutcomeCanceled, ctx.Err())
		}
		defer func() { <-c.slots }()
		r := c.probe(ctx, host)
		if ctx.Err() != nil {
			// The caller gave up, not the host: nothing to keep or count.
			return c.failed(HostResult{Host: host}, OutcomeCanceled, ctx.Err())
		}
		if c.cfg.Probed != nil {
			c.cfg.Probed(r)
		}
		return r
	})
}

// failed completes r with the outcome and failure.
func (c *Checker) failed(r HostResult, o Outcome, err error) HostResult {
	r.CheckedAt = c.cfg.Now()
	r.Outcome = o
	r.Failure = err.Error()
	return r
}

// probe connects to the host's first address that accepts a connection,
// says EHLO, asks for STARTTLS and checks the TLS connection with a
// sender's rules, all within the timeout.
func (c *Checker) probe(ctx context.Context, host string) HostResult {
	r := HostResult{Host: host}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	addrs, err := c.cfg.DNS.Addresses(ctx, host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no A or AAAA records")
	}
	if err != nil {
		return c.failed(r, OutcomeDNS, fmt.Errorf("addresses of %s: %w", host, err))
	}
	conn, err := c.dial(ctx, addrs, &r)
	if err != nil {
		return c.failed(r, OutcomeConnect, err)
	}
	defer conn.Close()
	// The context's deadline bounds every read and write, and canceling
	// it ends a probe waiting for a silent server.
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	return c.converse(ctx, conn, r)
}

// dial connects to the first of addrs that accepts, each given an equal
// share of the time left among those not tried yet, so that one address
// that drops packets does not use up the time of the others.
func (c *Checker) dial(ctx context.Context, addrs []netip.Addr, r *HostResult) (net.Conn, error) {
	deadline, _ := ctx.Deadline()
	var errs []error
	for i, a := range addrs {
		r.Address = netip.AddrPortFrom(a, uint16(c.cfg.Port)).String()
		d := net.Dialer{Deadline: time.Now().Add(time.Until(deadline) / time.Duration(len(addrs)-i))}
		conn, err := d.DialContext(ctx, "tcp", r.Address)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// converse runs the SMTP dialogue on conn up to the end of the TLS
// handshake, says QUIT, and checks the TLS connection.
func (c *Checker) converse(ctx context.Context, conn net.Conn, r HostResult) HostResult {
	r.Reachable = true
	client, err := smtp.NewClient(conn, r.Host)
	if err != nil {
		return c.failed(r, OutcomeSMTP, c.stepError(ctx, "the SMTP greeting", err))
	}
	if err := client.Hello(c.cfg.EHLOName); err != nil {
		return c.failed(r, OutcomeSMTP, c.stepError(ctx, "the answer to EHLO "+c.cfg.EHLOName, err))
	}
	if r.STARTTLS, _ = client.Extension("STARTTLS"); !r.STARTTLS {
		client.Quit()
		return c.failed(r, OutcomeNoSTARTTLS, errors.New("STARTTLS not offered in the answer to EHLO"))
	}
	config := &tls.Config{
		// SNI carries the MX host name (RFC 8461 §7.1).
		ServerName: r.Host,
		// Versions before 1.2 are accepted here only to name the version
		// a server is stuck at; checkTLS fails them.
		MinVersion: tls.VersionTLS10,
		// checkTLS verifies the chain and the name with a sender's rules
		// after the handshake, so that a failure says exactly what is
		// wrong, and the result shows the certificate whatever it is.
		InsecureSkipVerify: true,
	}
	if err := client.StartTLS(config); err != nil {
		if _, refused := errors.AsType[*textproto.Error](err); refused {
			return c.failed(r, OutcomeSTARTTLSRefused, fmt.Errorf("STARTTLS refused: %w", err))
		}
		return c.failed(r, OutcomeHandshake, c.stepError(ctx, "the TLS handshake", err))
	}
	state, _ := client.TLSConnectionState()
	client.Quit()
	return c.checkTLS(r, state)
}

// stepError says which step of the probe failed, and how; a probe that
// ran out of time says so rather than name the closed connection.
func (c *Checker) stepError(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("timed out after %s waiting for %s", c.cfg.Timeout, step)
	}
	return fmt.Errorf("%s: %w", step, err)
}
