package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SettingsPrefix starts every settings record: a TXT record at "_mta-sts.D"
// in the zone of a DNS provider that publishes MTA-STS for D, saying how.
// Senders discard it, as every TXT record there that does not begin with
// "v=STSv1" (RFC 8461 §3.1). A later, incompatible grammar gets a new tag.
const SettingsPrefix = "v=STSCFG1"

// Settings are the per-domain settings a settings record holds. The zero
// value changes nothing: a provider's defaults apply to what a record does
// not set.
type Settings struct {
	// Off: D is not managed at all. It stands alone in its record.
	Off bool
	// Mode of the policy, or "" for the default.
	Mode Mode
	// MaxAge of the policy, if HasMaxAge; 0 is a valid max_age.
	MaxAge    uint32
	HasMaxAge bool
	// MX holds extra mx patterns, lowercase, in the order of the record.
	MX []string
	// By names who wrote the record, when it says: "" or ByAutopilot. It
	// changes nothing in the policy; the autopilot changes only the
	// records it wrote, and a record without it wins over the autopilot.
	By string
}

// ByAutopilot marks a settings record the autopilot wrote ("by=autopilot"):
// the one value of by= the grammar knows.
const ByAutopilot = "autopilot"

// IsSettingsRecord reports whether a TXT record (its strings concatenated)
// claims to be a settings record, valid or not: it begins with
// SettingsPrefix and a field delimiter.
func IsSettingsRecord(txt string) bool {
	return hasVersion(txt, SettingsPrefix)
}

// ParseSettings parses a settings record strictly:
//
//	settings = "v=STSCFG1" 1*(delim field) [delim]   ; delim = *WSP ";" *WSP
//	field    = "off" / "mode=" ("testing" / "enforce" / "none")
//	         / "max_age=" 1*10DIGIT / "mx=" ["*."] Domain / "by=autopilot"
//
// mode, max_age and by may appear once each, mx any number of times, and
// off only alone. max_age is at most MaxAgeLimit, as in a policy; an mx pattern
// is what CheckWireHost accepts as an MX target, without the final dot, with
// "*." standing for one whole label (RFC 8461 §4.1). Anything else, an
// unknown field or an empty value, makes the whole record invalid.
func ParseSettings(txt string) (Settings, error) {
	fields, err := splitFields(txt, SettingsPrefix)
	if err != nil {
		return Settings{}, err
	}
	if len(fields) == 1 && fields[0] == "off" {
		return Settings{Off: true}, nil
	}
	var s Settings
	for _, f := range fields {
		if f == "off" {
			return Settings{}, errors.New(`"off" with other fields`)
		}
		t, err := parseTag(f)
		if err != nil {
			return Settings{}, err
		}
		if err := s.set(t); err != nil {
			return Settings{}, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return s, nil
}

// set applies one name=value field to s.
func (s *Settings) set(t tag) (err error) {
	switch t.name {
	case "mode":
		if s.Mode != "" {
			return errors.New("repeated")
		}
		s.Mode, err = ParseMode(t.value)
	case "max_age":
		if s.HasMaxAge {
			return errors.New("repeated")
		}
		s.MaxAge, err = ParseMaxAge(t.value)
		s.HasMaxAge = err == nil
	case "mx":
		var pattern string
		if pattern, err = settingsPattern(t.value); err == nil {
			s.MX = append(s.MX, pattern)
		}
	case "by":
		switch {
		case s.By != "":
			err = errors.New("repeated")
		case t.value != ByAutopilot:
			err = fmt.Errorf("%q: the one value known is %q", t.value, ByAutopilot)
		default:
			s.By = t.value
		}
	default:
		err = errors.New("unknown field")
	}
	return err
}

// String returns the settings record that holds s, its fields in the order
// of the grammar: what ParseSettings reads back as s. The zero Settings
// sets nothing and has no record: its String, the prefix alone, does not
// parse.
func (s Settings) String() string {
	if s.Off {
		return SettingsPrefix + "; off"
	}
	fields := []string{SettingsPrefix}
	if s.Mode != "" {
		fields = append(fields, "mode="+string(s.Mode))
	}
	if s.HasMaxAge {
		fields = append(fields, "max_age="+strconv.FormatUint(uint64(s.MaxAge), 10))
	}
	for _, pattern := range s.MX {
		fields = append(fields, "mx="+pattern)
	}
	if s.By != "" {
		fields = append(fields, "by="+s.By)
	}
	return strings.Join(fields, "; ")
}

// settingsPattern checks an mx value of a settings record as the plugin
// checks an MX target (CheckWireHost), so that the mx line names exactly the
// hosts the record does, and returns it lowercased.
func settingsPattern(value string) (string, error) {
	if strings.HasSuffix(value, ".") {
		return "", fmt.Errorf("%q ends in a dot", value)
	}
	if err := CheckWireHost(strings.TrimPrefix(value, "*.")); err != nil {
		return "", err
	}
	return strings.ToLower(value), nil
}

// SelectSettings returns the settings the TXT records at "_mta-sts.D" hold:
// of those that claim to be settings records there must be at most one, and
// it must parse. None gives the zero Settings.
func SelectSettings(txts []string) (Settings, error) {
	var candidates []string
	for _, t := range txts {
		if IsSettingsRecord(t) {
			candidates = append(candidates, t)
		}
	}
	switch len(candidates) {
	case 0:
		return Settings{}, nil
	case 1:
		return ParseSettings(candidates[0])
	}
	return Settings{}, fmt.Errorf("found %d settings records, want at most one", len(candidates))
}

// Policy returns the policy of a mail domain whose MX hosts are hosts under
// s, with mode and maxAge where s sets none: the MX hosts and s's extra
// patterns merged (New sorts them and drops duplicates). Off is the
// caller's to check: a domain that is off has no policy at all.
func (s Settings) Policy(mode Mode, hosts []string, maxAge uint32) (Policy, error) {
	if s.Mode != "" {
		mode = s.Mode
	}
	if s.HasMaxAge {
		maxAge = s.MaxAge
	}
	if len(s.MX) > 0 {
		hosts = append(hosts[:len(hosts):len(hosts)], s.MX...)
	}
	return New(mode, hosts, maxAge)
}
