//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// ask sends one query to server (UDP, one try, 2 s), as a stub resolver
// would: recursion desired, and with dnssec the DO bit.
func ask(server, name string, qtype uint16, dnssec bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if dnssec {
		m.SetEdns0(dns.DefaultMsgSize, true)
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, net.JoinHostPort(server, "53"))
	if err != nil {
		return nil, fmt.Errorf("%s %s @%s: %w", name, dns.TypeToString[qtype], server, err)
	}
	return resp, nil
}

// mustAsk is ask in a check: no answer fails it.
func mustAsk(t *testing.T, server, name string, qtype uint16, dnssec bool) *dns.Msg {
	t.Helper()
	resp, err := ask(server, name, qtype, dnssec)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// short is the answer's data as `dig +short` prints it: one line per record,
// signatures only with dnssec.
func short(t *testing.T, server, name string, qtype uint16, dnssec bool) string {
	t.Helper()
	var lines []string
	for _, rr := range mustAsk(t, server, name, qtype, dnssec).Answer {
		if _, sig := rr.(*dns.RRSIG); sig && !dnssec {
			continue
		}
		lines = append(lines, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return strings.Join(lines, "\n")
}

// status is the answer's rcode from our CoreDNS.
func status(t *testing.T, name string, qtype uint16) string {
	t.Helper()
	return dns.RcodeToString[mustAsk(t, dnsAddr, name, qtype, false).Rcode]
}

var stsRecord = regexp.MustCompile(`^"v=STSv1; id=([A-Za-z0-9]+)"$`)

// stsID is the id published at _mta-sts.DOMAIN, "" if none.
func stsID(t *testing.T, domain string) string {
	t.Helper()
	return stsIDAt(t, dnsAddr, domain)
}

// stsIDAt is the id server publishes at _mta-sts.DOMAIN, "" if none.
func stsIDAt(t *testing.T, server, domain string) string {
	t.Helper()
	m := stsRecord.FindStringSubmatch(short(t, server, "_mta-sts."+domain, dns.TypeTXT, false))
	if m == nil {
		return ""
	}
	return m[1]
}

// policyLines are the strings of mta-sts.DOMAIN TXT, one per line.
func policyLines(t *testing.T, domain string) string {
	t.Helper()
	var lines []string
	for _, rr := range mustAsk(t, dnsAddr, "mta-sts."+domain, dns.TypeTXT, false).Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			lines = append(lines, txt.Txt...)
		}
	}
	return strings.Join(lines, "\n")
}

// policyBody is the policy file we expect, CRLF line ends, written here
// independently of the policy package.
func policyBody(mode string, mx ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: STSv1\r\nmode: %s\r\n", mode)
	for _, host := range mx {
		fmt.Fprintf(&b, "mx: %s\r\n", host)
	}
	fmt.Fprintf(&b, "max_age: %d\r\n", maxAge)
	return b.String()
}

// idOf is the id of a policy file (invariant 2, docs/design.md).
func idOf(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])[:32]
}

// waitForNewID waits for the file plugin to reload a zone (reload 1s) and
// returns the new id of DOMAIN.
func waitForNewID(t *testing.T, domain, old string) string {
	t.Helper()
	var id string
	eventually(t, 15*time.Second, "_mta-sts."+domain+" id still "+old+" after the zone change", func() bool {
		id = stsID(t, domain)
		return id != "" && id != old
	})
	return id
}
