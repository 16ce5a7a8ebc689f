package policy

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// NormalizePattern returns an mx pattern in canonical form: lowercase, A-labels,
// no trailing dot. A pattern is a domain name, optionally prefixed by "*."
// standing for exactly one left-most label (RFC 8461 §3.2 sts-policy-mx-value).
func NormalizePattern(pattern string) (string, error) {
	name, wildcard := strings.CutPrefix(pattern, "*.")
	host, err := NormalizeHost(name)
	if err != nil {
		return "", fmt.Errorf("invalid mx pattern %q: %w", pattern, err)
	}
	if wildcard {
		return "*." + host, nil
	}
	return host, nil
}

// NormalizeHost returns a host name in canonical form (lowercase A-labels, no
// trailing dot), or an error if it is not a valid RFC 5321 Domain.
func NormalizeHost(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if !isASCII(name) {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", err
		}
		name = a
	}
	name = strings.ToLower(name)
	if err := checkDomain(name); err != nil {
		return "", err
	}
	return name, nil
}

// CheckWireHost checks that name, a host name as it appears on the wire (an
// MX record's target, in any letter case, with or without the final dot),
// is already an LDH host name in A-label form: the very name an mx line
// would state, only lowercased. NormalizeHost accepts more, and changes the
// name: it turns U-labels into A-labels, a different DNS name, and
// NormalizePattern reads a "*" label as a wildcard that allows more hosts.
// Refused are raw non-ASCII octets, escapes such as "\032" (which is how
// miekg/dns may hold them), "*" and "_" labels, and "xn--" labels that are
// not A-labels.
func CheckWireHost(name string) error {
	name = strings.TrimSuffix(name, ".")
	// Before lowercasing: strings.ToLower maps some non-ASCII runes, such as
	// the Kelvin sign, to ASCII letters.
	if !isASCII(name) {
		return fmt.Errorf("host name %q is not ASCII", name)
	}
	return checkDomain(strings.ToLower(name))
}

// maxDomainLen is the longest domain name in presentation form without the
// final dot: 255 octets in wire form (RFC 1035 §3.1).
const maxDomainLen = 253

// checkDomain enforces RFC 5321's Domain grammar (letters, digits and inner
// hyphens), the DNS length limits, and that "xn--" labels are real A-labels.
func checkDomain(name string) error {
	if name == "" {
		return errors.New("empty domain name")
	}
	if len(name) > maxDomainLen {
		return fmt.Errorf("domain name longer than %d octets", maxDomainLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		if err := checkLabel(label); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(label string) error {
	switch {
	case label == "":
		return errors.New("empty label")
	case len(label) > 63:
		return fmt.Errorf("label %q longer than 63 octets", label)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", label)
	}
	for i := 0; i < len(label); i++ {
		if c := label[i]; !isLetDig(c) && c != '-' {
			return fmt.Errorf("label %q has character %q, not a letter, digit or hyphen", label, c)
		}
	}
	if strings.HasPrefix(label, "xn--") {
		if _, err := idna.Lookup.ToUnicode(label); err != nil {
			return fmt.Errorf("label %q is not a valid A-label: %w", label, err)
		}
	}
	return nil
}

// MatchMX reports whether an MX host name matches an mx pattern (RFC 8461 §4.1):
// case-insensitively, and a leading "*." matches exactly one whole label, so
// "*.example.com" matches "mail.example.com" but neither "example.com" nor
// "foo.bar.example.com".
func MatchMX(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	suffix, wildcard := strings.CutPrefix(pattern, "*.")
	if !wildcard {
		return host == pattern
	}
	label, rest, found := strings.Cut(host, ".")
	return found && label != "" && rest == suffix
}

func isLetDig(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
