package caddymtasts

import (
	"fmt"
	"net"
	"strings"

	"github.com/coredns-mtasts/mtasts/policy"
)

// policyHostPrefix is the label RFC 8461 §3.3 puts in front of the Policy
// Domain to name the Policy Host.
const policyHostPrefix = "mta-sts."

// policyDomain returns the Policy Domain D named by a Policy Host
// "mta-sts.D", in canonical form (lowercase A-labels, no trailing dot).
// The host may carry a port, be in any case, end in a dot or use U-labels,
// as an HTTP Host header or a TLS server name may. Anything else, such as an
// IP address, a wildcard, another host of D or the policy host of a policy
// host, is an error.
func policyDomain(host string) (string, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	name, err := policy.NormalizeHost(host)
	if err != nil {
		return "", err
	}
	domain, ok := strings.CutPrefix(name, policyHostPrefix)
	if !ok {
		return "", fmt.Errorf("%q is not an MTA-STS policy host", name)
	}
	// A policy host is no mail domain: the plugin publishes no policy for
	// it, nor vouches for what the zone holds at its own policy host.
	if strings.HasPrefix(domain, policyHostPrefix) {
		return "", fmt.Errorf("%q is the policy host of a policy host", name)
	}
	return domain, nil
}
