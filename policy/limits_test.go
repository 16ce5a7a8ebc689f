package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckWireHost(t *testing.T) {
	for _, host := range []string{
		"mx1.example.com.", "mx1.example.com", "MX1.Example.COM.", "xn--bcher-kva.example.",
		"XN--BCHER-KVA.example.", "a-b.c9.example.", hostOfLength(0, maxDomainLen),
	} {
		if err := CheckWireHost(host); err != nil {
			t.Errorf("CheckWireHost(%q): %v", host, err)
		}
	}
	for name, host := range map[string]string{
		"U-label":                 "bücher.example.test.",
		"U-label, escaped":        `b\195\188cher.example.test.`,
		"Kelvin sign":             "\u212Aelvin.example.", // lowercases to ASCII "k"
		"wildcard":                "*.mx.example.test.",
		"escaped space":           `mx\032a.example.`,
		"escaped dot":             `a\.b.example.`,
		"escaped letter":          `\109x.example.`, // "mx", but not as the zone says it
		"underscore":              "_mx.example.",
		"invalid A-label":         "xn--a.example.",
		"invalid A-label, upper":  "XN--A.example.",
		"root":                    ".",
		"empty label":             "mx..example.",
		"label too long":          strings.Repeat("a", 64) + ".example.",
		"name too long":           hostOfLength(0, maxDomainLen+1),
		"leading hyphen":          "-mx.example.",
		"address literal":         "[192.0.2.1]",
		"raw octet, invalid UTF8": "mx\xff.example.",
	} {
		if err := CheckWireHost(host); err == nil {
			t.Errorf("%s: CheckWireHost(%q) accepted it", name, host)
		}
	}
}

// The fixed lines of a testing-mode policy with a max_age of a week.
const weekPolicyLines = "version: STSv1\r\nmode: testing\r\nmax_age: 604800\r\n"

func TestNewRefusesPoliciesOverMaxSize(t *testing.T) {
	atLimit := must(New(ModeTesting, hostsFilling(MaxSize-len(weekPolicyLines)), 604800))
	if size := len(atLimit.Encode()); size != MaxSize {
		t.Fatalf("test policy is %d bytes, want %d", size, MaxSize)
	}
	checkRoundTrip(t, atLimit)

	p, err := New(ModeTesting, hostsFilling(MaxSize+1-len(weekPolicyLines)), 604800)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("New of a %d-byte policy = %v, %v; want ErrTooLarge", MaxSize+1, p, err)
	}
	if _, err := Parse(append(atLimit.Encode(), '\n')); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Parse of %d bytes: %v, want ErrTooLarge", MaxSize+1, err)
	}
}

// New measures only policies of more than mxLinesAlwaysFit lines: so that
// many of the longest lines must fit.
func TestMXLinesAlwaysFit(t *testing.T) {
	patterns := make([]string, mxLinesAlwaysFit)
	for i := range patterns {
		patterns[i] = "*." + hostOfLength(i, maxDomainLen)
	}
	p := must(New(ModeTesting, patterns, MaxAgeLimit))
	if size := len(p.Encode()); size > MaxSize {
		t.Fatalf("%d of the longest mx lines take %d bytes, more than %d", mxLinesAlwaysFit, size, MaxSize)
	}
}

// hostsFilling returns distinct host names whose mx lines ("mx: ", the
// host, CRLF) take exactly octets, at least 512.
func hostsFilling(octets int) []string {
	const line = 256 // the mx line of a 250-octet host
	n := octets/line - 1
	rest := octets - n*line // 256 to 511 octets, for two more lines
	hosts := make([]string, 0, n+2)
	for i := range n {
		hosts = append(hosts, hostOfLength(i, line-len("mx: \r\n")))
	}
	return append(hosts, hostOfLength(n, rest/2-len("mx: \r\n")), hostOfLength(n+1, rest-rest/2-len("mx: \r\n")))
}

// hostOfLength returns a host name of n octets, 10 or more, distinct for
// each i: a first label that holds i, then labels of 50 letters.
func hostOfLength(i, n int) string {
	k := (n - 10) / 51
	return fmt.Sprintf("h%0*d", n-51*k-1, i) + strings.Repeat("."+strings.Repeat("a", 50), k)
}
