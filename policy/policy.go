// Package policy is the MTA-STS policy model of RFC 8461: the policy a mail
// domain publishes, its canonical encoding, the id derived from it, strict
// parsers for policy files and "_mta-sts" TXT records, and the mx pattern
// matching senders apply.
//
// The package imports neither CoreDNS nor Caddy: the DNS plugin that
// publishes policies, the web server that serves them and any checker or
// sender-side client can share it, so all of them agree on the bytes.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
)

// Version is the only policy and record version RFC 8461 defines.
const Version = "STSv1"

// MaxAgeLimit is the largest max_age RFC 8461 §3.2 allows: one year, in seconds.
const MaxAgeLimit = 31557600

// MaxSize is the policy size RFC 8461 §3.3 suggests senders accept at most;
// Parse rejects larger input and New larger policies, so that a policy we
// serve is never cut off.
const MaxSize = 64 * 1024

// ErrTooLarge says a policy file is larger than MaxSize.
var ErrTooLarge = fmt.Errorf("policy larger than %d bytes", MaxSize)

// mxLinesAlwaysFit is how many mx lines a policy can have with its encoding
// certainly within MaxSize, so that New encodes only larger policies to
// measure them: an mx line holds at most "*." and a maxDomainLen-octet name,
// and the other three lines are at their longest in the string below.
const mxLinesAlwaysFit = (MaxSize - len("version: STSv1\r\nmode: testing\r\nmax_age: 31557600\r\n")) /
	(len("mx: *.\r\n") + maxDomainLen)

// Mode says what a sender does when a policy fails to validate.
type Mode string

// The modes of RFC 8461 §5.
const (
	ModeEnforce Mode = "enforce"
	ModeTesting Mode = "testing"
	ModeNone    Mode = "none"
)

// ParseMode returns the mode named s, which is case-sensitive as in the RFC grammar.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeEnforce, ModeTesting, ModeNone:
		return m, nil
	}
	return "", fmt.Errorf("invalid mode %q: want testing, enforce or none", s)
}

// Policy is an MTA-STS policy in canonical form: MX holds normalized
// patterns (lowercase A-labels without a trailing dot), sorted and without
// duplicates. Build one with New or Parse; the zero value is not valid.
type Policy struct {
	Mode   Mode
	MX     []string
	MaxAge uint32
}

// New returns the canonical policy for the given mode, mx patterns and max_age.
// Patterns may be in any case, carry a trailing dot, repeat, or be U-labels;
// "*." may only stand for the whole left-most label. Mode none needs no mx.
func New(mode Mode, mx []string, maxAge uint32) (Policy, error) {
	if _, err := ParseMode(string(mode)); err != nil {
		return Policy{}, err
	}
	if maxAge > MaxAgeLimit {
		return Policy{}, fmt.Errorf("max_age %d exceeds %d", maxAge, MaxAgeLimit)
	}
	patterns := make([]string, 0, len(mx))
	for _, m := range mx {
		p, err := NormalizePattern(m)
		if err != nil {
			return Policy{}, err
		}
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	patterns = slices.Compact(patterns)
	if len(patterns) == 0 && mode != ModeNone {
		return Policy{}, fmt.Errorf("mode %s needs at least one mx pattern", mode)
	}
	p := Policy{Mode: mode, MX: patterns, MaxAge: maxAge}
	if err := checkSize(p); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// checkSize refuses a policy whose encoding exceeds MaxSize: no sender need
// accept it (RFC 8461 §3.3), and Parse would not.
func checkSize(p Policy) error {
	if len(p.MX) <= mxLinesAlwaysFit {
		return nil
	}
	if size := len(p.Encode()); size > MaxSize {
		return fmt.Errorf("%d bytes with %d mx lines: %w", size, len(p.MX), ErrTooLarge)
	}
	return nil
}

// Lines returns the policy's lines in canonical order, without terminators:
// version first, then mode, the mx patterns and max_age.
func (p Policy) Lines() []string {
	lines := make([]string, 0, len(p.MX)+3)
	lines = append(lines, "version: "+Version, "mode: "+string(p.Mode))
	for _, mx := range p.MX {
		lines = append(lines, "mx: "+mx)
	}
	return append(lines, "max_age: "+strconv.FormatUint(uint64(p.MaxAge), 10))
}

// Encode returns the canonical policy file: Lines, each ending in CRLF.
func (p Policy) Encode() []byte {
	return JoinLines(p.Lines())
}

// JoinLines terminates each line with CRLF and concatenates them: the
// policy file whose lines were published one per DNS character-string.
func JoinLines(lines []string) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// ID returns the policy id published in the "_mta-sts" TXT record: the first
// 32 hex digits of the SHA-256 of the canonical encoding. It depends on
// nothing but the policy, so every server computes the same id.
func (p Policy) ID() string {
	return IDOf(p.Encode())
}

// IDOf returns the id of an encoded policy file, see Policy.ID.
func IDOf(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// Matches reports whether host, an MX host name, is allowed by one of the
// policy's mx patterns (RFC 8461 §4.1).
func (p Policy) Matches(host string) bool {
	return slices.ContainsFunc(p.MX, func(pattern string) bool { return MatchMX(pattern, host) })
}
