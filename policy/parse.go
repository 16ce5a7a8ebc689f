package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parse parses a policy file strictly by the grammar of RFC 8461 §3.2: lines
// end in CRLF or LF (the last terminator is optional), version, mode and
// max_age appear exactly once, mx is required unless the mode is none, and
// every value has the syntax its field demands. Extension fields are checked
// and ignored, so Encode of the result drops them. Parse rejects input larger
// than MaxSize.
func Parse(body []byte) (Policy, error) {
	if len(body) > MaxSize {
		return Policy{}, fmt.Errorf("%d bytes: %w", len(body), ErrTooLarge)
	}
	if !utf8.Valid(body) {
		return Policy{}, errors.New("policy is not valid UTF-8")
	}
	var (
		version, mode, maxAge string
		mx                    []string
	)
	seen := map[string]*string{"version": &version, "mode": &mode, "max_age": &maxAge}
	for i, line := range splitLines(string(body)) {
		name, value, err := parsePolicyField(line)
		if err != nil {
			return Policy{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		if name == "mx" {
			mx = append(mx, value)
			continue
		}
		if dst, known := seen[name]; known {
			if *dst != "" {
				return Policy{}, fmt.Errorf("line %d: field %q repeated", i+1, name)
			}
			*dst = value
		}
	}
	return fromFields(version, mode, maxAge, mx)
}

// splitLines splits a policy body at its terminators: LF, or CRLF.
func splitLines(body string) []string {
	body = strings.TrimSuffix(body, "\n")
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// parsePolicyField splits one line into a field name and its value, checking
// the generic syntax every field shares (sts-policy-extension).
func parsePolicyField(line string) (name, value string, err error) {
	name, value, found := strings.Cut(line, ":")
	if !found {
		return "", "", fmt.Errorf("%q is not a name: value field", line)
	}
	if !isFieldName(name) {
		return "", "", fmt.Errorf("invalid field name %q", name)
	}
	value = strings.TrimRight(strings.TrimLeft(value, " \t"), " \t")
	if value == "" {
		return "", "", fmt.Errorf("field %q has no value", name)
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f || r == '\t' {
			return "", "", fmt.Errorf("field %q has control character %q", name, r)
		}
	}
	return name, value, nil
}

func fromFields(version, mode, maxAge string, mx []string) (Policy, error) {
	if version != Version {
		return Policy{}, fmt.Errorf("version is %q, want %q", version, Version)
	}
	m, err := ParseMode(mode)
	if err != nil {
		return Policy{}, err
	}
	if maxAge == "" {
		return Policy{}, errors.New("max_age missing")
	}
	age, err := ParseMaxAge(maxAge)
	if err != nil {
		return Policy{}, fmt.Errorf("max_age: %w", err)
	}
	for _, pattern := range mx {
		if !isASCII(pattern) || strings.HasSuffix(pattern, ".") {
			return Policy{}, fmt.Errorf("invalid mx pattern %q: want an A-label domain without trailing dot", pattern)
		}
	}
	return New(m, mx, age)
}

// ParseMaxAge parses a max_age value as RFC 8461 §3.2 defines it: 1 to 10
// digits (sts-policy-max-age-value) for at most MaxAgeLimit seconds. Policy
// files, the plugin's Corefile and settings records all take it, so that
// every max_age the plugin publishes is one a policy parser accepts.
func ParseMaxAge(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if s == "" || len(s) > 10 || strings.Trim(s, "0123456789") != "" || err != nil || n > MaxAgeLimit {
		return 0, fmt.Errorf("%q is not a number of seconds from 0 to %d", s, MaxAgeLimit)
	}
	return uint32(n), nil
}

// isFieldName reports whether s is (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" /
// "-" / "."), the name syntax of both policy fields and record fields.
func isFieldName(s string) bool {
	if s == "" || len(s) > 32 || !isLetDig(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetDig(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
