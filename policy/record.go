package policy

import (
	"errors"
	"fmt"
	"strings"
)

// RecordPrefix starts every "_mta-sts" TXT record (RFC 8461 §3.1).
const RecordPrefix = "v=" + Version

// TLSRPTPrefix starts every "_smtp._tls" TXT record (RFC 8460 §3).
const TLSRPTPrefix = "v=TLSRPTv1"

// Record is a parsed "_mta-sts" TXT record.
type Record struct {
	// ID identifies the policy instance; it changes whenever the policy does.
	ID string
}

// String returns the record as published: "v=STSv1; id=<ID>".
func (r Record) String() string {
	return RecordPrefix + "; id=" + r.ID
}

// IsRecord reports whether a TXT record (its strings concatenated) claims to be
// an MTA-STS record, valid or not: it begins with "v=STSv1" and a field
// delimiter. Senders discard the other TXT records at "_mta-sts".
func IsRecord(txt string) bool {
	return hasVersion(txt, RecordPrefix)
}

// IsTLSRPTRecord reports whether a TXT record claims to be a TLS-RPT record.
func IsTLSRPTRecord(txt string) bool {
	return hasVersion(txt, TLSRPTPrefix)
}

func hasVersion(txt, prefix string) bool {
	rest, ok := strings.CutPrefix(txt, prefix)
	return ok && rest != "" && (rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t')
}

// ParseRecord parses an "_mta-sts" TXT record strictly by RFC 8461 §3.1: the
// version first, then ";"-delimited fields, exactly one of them an id of 1 to
// 32 letters and digits; extension fields are checked and ignored.
func ParseRecord(txt string) (Record, error) {
	fields, err := parseTagList(txt, RecordPrefix)
	if err != nil {
		return Record{}, err
	}
	var rec Record
	for _, f := range fields {
		if f.name != "id" {
			continue
		}
		if rec.ID != "" {
			return Record{}, errors.New("id repeated")
		}
		if !isID(f.value) {
			return Record{}, fmt.Errorf("id %q is not 1 to 32 letters and digits", f.value)
		}
		rec.ID = f.value
	}
	if rec.ID == "" {
		return Record{}, errors.New("id missing")
	}
	return rec, nil
}

// SelectRecord applies the sender's rule of RFC 8461 §3.1 to the TXT records
// found at "_mta-sts": of those that claim to be MTA-STS records there must be
// exactly one, and it must parse.
func SelectRecord(txts []string) (Record, error) {
	var candidates []string
	for _, t := range txts {
		if IsRecord(t) {
			candidates = append(candidates, t)
		}
	}
	if len(candidates) != 1 {
		return Record{}, fmt.Errorf("found %d MTA-STS records, want exactly one", len(candidates))
	}
	return ParseRecord(candidates[0])
}

type tag struct{ name, value string }

// parseTagList parses "version 1*(delim name=value) [delim]" with
// delim = *WSP ";" *WSP, the shape RFC 8461 §3.1 and RFC 8460 §3 share.
// Values are 1*(%x21-3A / %x3C / %x3E-7E).
func parseTagList(txt, version string) ([]tag, error) {
	fields, err := splitFields(txt, version)
	if err != nil {
		return nil, err
	}
	tags := make([]tag, 0, len(fields))
	for _, f := range fields {
		t, err := parseTag(f)
		if err != nil {
			return nil, err
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// splitFields returns the fields of "version 1*(delim field) [delim]",
// without the delimiters and the white space around them.
func splitFields(txt, version string) ([]string, error) {
	if !isASCII(txt) {
		return nil, errors.New("record is not US-ASCII")
	}
	rest, ok := strings.CutPrefix(txt, version)
	if !ok {
		return nil, fmt.Errorf("record does not begin with %q", version)
	}
	parts := strings.Split(rest, ";")
	if len(parts) < 2 || strings.Trim(parts[0], " \t") != "" {
		return nil, fmt.Errorf("%q is not followed by a field delimiter", version)
	}
	parts = parts[1:]
	if last := len(parts) - 1; last > 0 && strings.Trim(parts[last], " \t") == "" {
		parts = parts[:last] // the optional trailing delimiter
	}
	for i, p := range parts {
		parts[i] = strings.Trim(p, " \t")
	}
	return parts, nil
}

func parseTag(field string) (tag, error) {
	name, value, found := strings.Cut(field, "=")
	if !found || !isFieldName(name) {
		return tag{}, fmt.Errorf("field %q is not name=value", field)
	}
	if value == "" {
		return tag{}, fmt.Errorf("field %q has an empty value", name)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c <= ' ' || c == '=' || c == ';' || c >= 0x7f {
			return tag{}, fmt.Errorf("field %q has invalid character %q", name, c)
		}
	}
	return tag{name, value}, nil
}

func isID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLetDig(s[i]) {
			return false
		}
	}
	return true
}
