package policy

// ProofOption is the EDNS(0) option code (RFC 6891 §6.1.2, from the range
// 65001-65534 kept for local and experimental use) by which the web server
// asks the DNS plugin to vouch for an answer, and the plugin does.
//
// The web server may serve a policy, and ask for a certificate, only for
// what the plugin synthesized from the zone data at that moment. Neither
// the AA bit nor the answer's content shows that: CoreDNS's cache and
// forward keep AA=1, and zone data can hold anything, a TXT record at
// mta-sts.D that looks like a policy included. So the web server puts a
// fresh random nonce of ProofNonceMin to ProofNonceMax octets into the
// option of each query for "mta-sts.D TXT", and the plugin echoes it in the
// option of its answer:
//   - with the policy lines in the answer section and the "_mta-sts.D" TXT
//     record (the id) in the additional section, when it manages D;
//   - on the answer of the plugins behind it, when it does not.
//
// OPT records are hop-by-hop (RFC 6891 §6.1.1): a cache does not store
// them (CoreDNS's cache drops them), a resolver does not pass an unknown
// option on, and zone data cannot hold one. An echoed nonce therefore means
// that the plugin itself answered this very query.
const ProofOption = 65318

// The bounds of a proof nonce, in octets.
const (
	ProofNonceMin = 8
	ProofNonceMax = 32
)
