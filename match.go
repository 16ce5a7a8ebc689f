package mtasts

import (
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// nameKind says which of the names the plugin synthesizes a query is for.
type nameKind int

const (
	nameRecord     nameKind = iota // _mta-sts.D: the MTA-STS TXT record
	namePolicyHost                 // mta-sts.D: the policy host, and the policy lines
	nameTLSRPT                     // _smtp._tls.D: the TLS-RPT record
	nameTLSParent                  // _tls.D: the empty non-terminal above _smtp._tls.D
)

// ownedPrefixes are the labels that, put in front of a mail domain, make the
// names the plugin answers for.
var ownedPrefixes = []struct {
	prefix string
	kind   nameKind
}{
	{"_mta-sts.", nameRecord},
	{"mta-sts.", namePolicyHost},
	{"_smtp._tls.", nameTLSRPT},
	{"_tls.", nameTLSParent},
}

// ownedName is a question for one of the names the plugin synthesizes.
type ownedName struct {
	kind   nameKind
	domain string // the mail domain D: lowercase, fully qualified
	zone   string // the plugin zone D is in
	proof  []byte // the nonce of the question's policy.ProofOption, if any
}

// match tells whether the plugin owns the question in state, and for which
// mail domain. Everything else passes through untouched.
func (m *MTASTS) match(state request.Request) (ownedName, bool) {
	r := state.Req
	if r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 || state.QClass() != dns.ClassINET {
		return ownedName{}, false
	}
	if t := state.QType(); t == dns.TypeAXFR || t == dns.TypeIXFR {
		return ownedName{}, false
	}
	// The prefixes come first: they are cheaper to check than the zones, and
	// rule out nearly all of the queries that pass through. Every owned name
	// starts with "_" or "m", which spares most of them even lowercasing the
	// name.
	if name := r.Question[0].Name; name == "" || name[0] != '_' && name[0]|0x20 != 'm' {
		return ownedName{}, false
	}
	qname := state.Name()
	for _, o := range ownedPrefixes {
		domain, found := strings.CutPrefix(qname, o.prefix)
		if !found {
			continue
		}
		if (o.kind == nameTLSRPT || o.kind == nameTLSParent) && len(m.TLSRPT) == 0 {
			return ownedName{}, false
		}
		zone := plugin.Zones(m.Zones).Matches(qname)
		if zone == "" || !dns.IsSubDomain(zone, domain) || !isMailDomain(domain) {
			return ownedName{}, false
		}
		return ownedName{kind: o.kind, domain: domain, zone: zone, proof: proofNonce(r)}, true
	}
	return ownedName{}, false
}

// isMailDomain reports whether domain can have a policy of ours: a host name
// senders can address mail to, and not itself a policy host.
func isMailDomain(domain string) bool {
	_, err := policy.NormalizeHost(domain)
	return err == nil && !strings.HasPrefix(domain, "mta-sts.")
}
