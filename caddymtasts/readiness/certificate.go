package readiness

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coredns-mtasts/mtasts/policy"
)

// checkTLS completes r with what the TLS connection shows and checks it
// as RFC 8461 §4.2 asks a sender to: TLS 1.2 or later (RFC 8996 retired
// the older versions, and senders' libraries refuse them), a certificate
// valid now, a chain to a root the sender trusts, and a DNS-ID for the MX
// host name. The first check that fails gives the outcome.
func (c *Checker) checkTLS(r HostResult, state tls.ConnectionState) HostResult {
	r.TLSVersion = tls.VersionName(state.Version)
	if len(state.PeerCertificates) == 0 {
		return c.failed(r, OutcomeHandshake, errors.New("no certificate presented"))
	}
	leaf := state.PeerCertificates[0]
	r.CertificateNames = leaf.DNSNames
	r.NotAfter = leaf.NotAfter
	now := c.cfg.Now()
	chainErr := c.verifyChain(state.PeerCertificates, now)
	r.ChainVerified = chainErr == nil
	// RFC 6125's rules as RFC 8461 §4.1 restricts them for mx patterns,
	// the same rules: case-insensitive, "*" only as the whole left-most
	// label, standing for exactly one label.
	r.NameMatches = slices.ContainsFunc(leaf.DNSNames, func(id string) bool { return policy.MatchMX(id, r.Host) })
	switch {
	case state.Version < tls.VersionTLS12:
		return c.failed(r, OutcomeTLSVersion, fmt.Errorf("%s negotiated; senders require TLS 1.2 or later", r.TLSVersion))
	case now.After(leaf.NotAfter):
		return c.failed(r, OutcomeExpired, fmt.Errorf("certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
	case now.Before(leaf.NotBefore):
		return c.failed(r, OutcomeExpired, fmt.Errorf("certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339)))
	case chainErr != nil:
		outcome, err := chainFailure(leaf, chainErr)
		return c.failed(r, outcome, err)
	case !r.NameMatches:
		return c.failed(r, OutcomeNameMismatch, fmt.Errorf("certificate is for %s, not %s (a DNS-ID must name the host; a wildcard stands for exactly one left-most label)",
			namesOf(leaf), r.Host))
	}
	r.Outcome = OutcomePass
	r.CheckedAt = now
	return r
}

// verifyChain verifies the presented chain against the roots at now.
func (c *Checker) verifyChain(certs []*x509.Certificate, now time.Time) error {
	intermediates := x509.NewCertPool()
	for _, cert := range certs[1:] {
		intermediates.AddCert(cert)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         c.cfg.Roots,
		Intermediates: intermediates,
		CurrentTime:   now,
	})
	return err
}

// chainFailure names what is wrong with a chain that does not verify. A
// self-signed certificate is told from the others: it is the usual
// mistake, and its fix, a certificate from a CA, differs from that of a
// missing intermediate.
func chainFailure(leaf *x509.Certificate, err error) (Outcome, error) {
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) && bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		return OutcomeSelfSigned, errors.New("self-signed certificate; senders trust only certificates from a CA they know")
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		// An intermediate: the leaf's validity was checked before.
		return OutcomeExpired, fmt.Errorf("certificate chain does not verify: %w", err)
	}
	return OutcomeUntrusted, fmt.Errorf("certificate chain does not verify: %w", err)
}

// namesOf lists the certificate's DNS-IDs for a message.
func namesOf(cert *x509.Certificate) string {
	if len(cert.DNSNames) == 0 {
		return "no DNS name (no subject alternative name of type DNS)"
	}
	return strings.Join(cert.DNSNames, ", ")
}
