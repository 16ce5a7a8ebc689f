package mtasts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/coredns/coredns/plugin/metrics"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// Why a domain's MX set gives no policy the plugin can publish; either makes
// the domain unmanaged, and names the reason in the log and the metric.
var (
	// errInvalidMX: an MX target is not an LDH host name in A-label form. An
	// mx line would name another host than the zone does (a U-label becomes
	// an A-label, another DNS name) or more hosts (a "*" label a wildcard).
	errInvalidMX = errors.New("an MX target is not an LDH host name in A-label form")
	// errTooLarge: the policy, a line of it or the answer that carries it to
	// the web server exceeds what can be served.
	errTooLarge = errors.New("the policy cannot be served")
)

// servablePolicy returns the policy that domain's MX hosts imply under its
// settings s, or an error (errInvalidMX, errTooLarge) if the plugin cannot
// publish it.
func (m *MTASTS) servablePolicy(domain string, hosts []string, s policy.Settings) (policy.Policy, error) {
	for _, host := range hosts {
		if err := policy.CheckWireHost(host); err != nil {
			return policy.Policy{}, fmt.Errorf("%w: %w", errInvalidMX, err)
		}
	}
	p, err := s.Policy(m.Mode, hosts, m.MaxAge)
	if err != nil {
		// The hosts are valid, and so are the settings' mx patterns; the
		// mode and max_age were checked at setup or by ParseSettings: only
		// the size is left to refuse (policy.ErrTooLarge).
		return policy.Policy{}, fmt.Errorf("%w: %w", errTooLarge, err)
	}
	if err := checkCharacterStrings(p); err != nil {
		return policy.Policy{}, err
	}
	return p, checkAnswerSize(domain, p)
}

// checkCharacterStrings checks that each line of p fits one DNS
// character-string, as the policy lines at mta-sts.D are published. Only
// an "mx: " line can be longer than 255 octets.
func checkCharacterStrings(p policy.Policy) error {
	for _, mx := range p.MX {
		if n := len("mx: ") + len(mx); n > 255 {
			return fmt.Errorf("%w: the line \"mx: %s\" is %d octets, more than a character-string holds (255)", errTooLarge, mx, n)
		}
	}
	return nil
}

// checkAnswerSize checks that the answer to "mta-sts.D TXT" fits one DNS
// message, 65535 octets over TCP (RFC 1035 §4.2.2): CoreDNS truncates a
// larger one to an empty answer with TC set, and the web server could not
// serve the policy whose id "_mta-sts.D" publishes. Only a policy of more
// than mxLinesAlwaysFit lines is measured; this runs on every query.
func checkAnswerSize(domain string, p policy.Policy) error {
	if len(p.MX) <= mxLinesAlwaysFit {
		return nil
	}
	if size := policyAnswerSize(domain, p); size > dns.MaxMsgSize {
		return fmt.Errorf("%w: the mta-sts TXT answer would take %d octets, more than a DNS message holds (%d)", errTooLarge, size, dns.MaxMsgSize)
	}
	return nil
}

// mxLinesAlwaysFit is how many mx lines the answer at mta-sts.D holds
// whatever else it carries: a line takes at most 256 octets (a length octet
// and a full character-string), everything else at most answerOverhead.
const mxLinesAlwaysFit = (dns.MaxMsgSize - answerOverhead) / 256

// answerOverhead bounds the octets of the largest answer policyAnswerSize
// measures, besides the mx lines, with every name at most 255 octets: the
// header (12), the question (255+4), the TXT record's owner and fixed fields
// (255+10) and its version, mode and max_age lines (47), the id record
// (255+10+45), the OPT record with the longest proof nonce (11+4+32) and two
// signatures (each 255+10+18+255 and the signature itself).
const answerOverhead = 12 + 255 + 4 + 255 + 10 + 47 + 255 + 10 + 45 + 11 + 4 + policy.ProofNonceMax +
	2*(255+10+18+255+signatureReserveSize)

// policyAnswerSize returns the size, uncompressed, of the largest answer to
// "mta-sts.D TXT" for policy p: the policy lines, the "_mta-sts.D" record in
// the additional section and an OPT record with the longest proof nonce, as
// the web server gets it (see policy.ProofOption), and a signature over
// each of the two RRsets, as dnssec adds them to an answer to a DO query.
func policyAnswerSize(domain string, p policy.Policy) int {
	host, record := "mta-sts."+domain, "_mta-sts."+domain
	msg := new(dns.Msg)
	msg.SetQuestion(host, dns.TypeTXT)
	msg.Answer = []dns.RR{txtRecord(host, p.Lines()), signatureReserve(host, domain)}
	msg.Extra = []dns.RR{
		txtRecord(record, []string{policy.Record{ID: p.ID()}.String()}),
		signatureReserve(record, domain),
		&dns.OPT{
			Hdr:    dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT},
			Option: []dns.EDNS0{&dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: make([]byte, policy.ProofNonceMax)}},
		},
	}
	return msg.Len()
}

func txtRecord(owner string, strs []string) *dns.TXT {
	return &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: strs}
}

// signatureReserveSize is the largest signature dnssec realistically adds
// over an RRset: RSA with a 4096-bit key, 512 octets (ECDSA P-256 and
// Ed25519, the common choices, take 64). dnssec signs each RRset once with
// a single key, and with the ZSK of a KSK/ZSK pair.
const signatureReserveSize = 512

var reservedSignature = base64.StdEncoding.EncodeToString(make([]byte, signatureReserveSize))

// signatureReserve returns an RRSIG as large as the one dnssec adds over the
// TXT RRset at owner: signed by the zone, whose name is no longer than
// domain, since domain is in it.
func signatureReserve(owner, domain string) *dns.RRSIG {
	return &dns.RRSIG{
		Hdr:         dns.RR_Header{Name: owner, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET},
		TypeCovered: dns.TypeTXT, Algorithm: dns.RSASHA256, SignerName: domain, Signature: reservedSignature,
	}
}

// reportUnusable counts a query for domain, whose MX set gives no policy the
// plugin can publish, and logs the domain and why the first time.
func reportUnusable(ctx context.Context, domain string, err error) {
	reason := "invalid_mx"
	if errors.Is(err, errTooLarge) {
		reason = "too_large"
	}
	unusableMXSets.WithLabelValues(metrics.WithServer(ctx), reason).Inc()
	warnOnce(reason+" "+domain, "%s is not managed (%s): %v", domain, reason, err)
}
