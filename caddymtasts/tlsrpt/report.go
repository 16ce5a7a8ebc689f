// Package tlsrpt reads SMTP TLS reports (RFC 8460) as real senders send
// them, and sums them up per policy domain and day. It is strict where
// safety is at stake (sizes, nesting, element counts, required fields) and
// lenient where the large senders deviate from RFC 8460 §4: a receiver that
// refused their reports would lose most of its data. Parse says in one
// place what it accepts and how it normalises it.
//
// The package has no Caddy import: the Caddy module http.handlers.tlsrpt
// receives the reports and keeps them and the summaries in Caddy's storage.
package tlsrpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coredns-mtasts/mtasts/policy"
)

// Report is a TLS report, normalised.
type Report struct {
	Organization string // organization-name, as sent
	ID           string // report-id, as sent
	Contact      string // contact-info; several addresses joined with ", "
	Start, End   time.Time
	Policies     []Policy
}

// A PolicyType is the kind of policy a sender applied (RFC 8460 §4.4).
type PolicyType string

// The policy types of RFC 8460 §4.4, and PolicyOther for any other value.
const (
	PolicySTS   PolicyType = "sts"
	PolicyTLSA  PolicyType = "tlsa"
	PolicyNone  PolicyType = "no-policy-found"
	PolicyOther PolicyType = "other"
)

// Policy is one entry of a report's policies: a policy a sender applied to
// a domain's MX hosts, and the sessions it counted under it.
type Policy struct {
	Type    PolicyType
	RawType string   // policy-type as sent, trimmed, when Type is PolicyOther
	Strings []string // policy-string: the policy lines, or the TLSA records
	Domain  string   // policy-domain in lowercase A-labels; "" when the report names none
	MXHosts []string // mx-host

	Successful, Failed int64 // the summary's total session counts
	Failures           []Failure
}

// Failure is one of a policy's failure details.
type Failure struct {
	ResultType    string // one of ResultTypes, or "other"
	RawResultType string // result-type as sent, trimmed, when ResultType is "other"
	Sessions      int64  // failed-session-count

	SendingIP, ReceivingMX, ReceivingHELO, ReceivingIP string
	ReasonCode, AdditionalInfo                         string
}

// ResultTypes are the result types of RFC 8460 §4.3. A failure detail with
// another result-type counts as ResultOther.
var ResultTypes = []string{
	"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
	"certificate-not-trusted", "validation-failure",
	"tlsa-invalid", "dnssec-invalid", "dane-required",
	"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}

// ResultOther stands for a result type that is not one of ResultTypes.
const ResultOther = "other"

// maxRawTypeLen bounds the unknown policy and result types kept as sent:
// they end up as keys of summaries, and come from anyone.
const maxRawTypeLen = 64

// maxDomains is the most distinct policy domains one report may name. A
// report is about one policy domain (RFC 8460 §4.1 generates one per
// domain); each domain named costs the receiver a DNS lookup.
const maxDomains = 16

// utf8BOM starts JSON written by some Windows software; encoding/json
// refuses it.
var utf8BOM = []byte("\xef\xbb\xbf")

// Parse parses a report's JSON (RFC 8460 §4.4) and normalises it:
//
//   - organization-name, report-id, date-range with a start-datetime, and
//     policies (an array, maybe empty) are required; without one the report
//     is ErrMalformed.
//   - date-times are RFC 3339; without a time zone they are UTC; a space
//     may stand for the "T", and a date alone for its midnight. The end is
//     optional and kept only if it parses.
//   - policy-domain is put in lowercase A-labels; one that is no domain
//     name makes the report ErrMalformed, since it can be neither checked
//     nor attributed. A missing or empty one leaves the policy unattributed.
//   - policy-string, mx-host and contact-info may be missing, null, empty,
//     a string or an array of strings, and a policy-string one string that
//     holds a JSON array of strings. A TLSA policy-string that is one string
//     of records separated by semicolons (RFC 8460 §4) is split there.
//   - unknown policy and result types become PolicyOther and ResultOther,
//     with the value as sent kept (up to 64 bytes).
//   - failure details may lack every field but their count, and need not
//     add up to the summary (see Report.Sessions); a missing summary or
//     count is 0. Counts are whole numbers from 0 to 2^53.
//   - keys of no field above are ignored, misspelled optional ones too.
//
// Before decoding, a report whose JSON nests deeper than 16 levels is
// ErrMalformed; one with more than 200,000 elements or 16 policy domains is
// ErrTooLarge.
func Parse(data []byte) (*Report, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if err := checkShape(data); err != nil {
		return nil, err
	}
	var w wireReport
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	r, err := w.normalise()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if n := len(r.Domains()); n > maxDomains {
		return nil, fmt.Errorf("%w: %d policy domains, more than %d", ErrTooLarge, n, maxDomains)
	}
	return r, nil
}

func (w *wireReport) normalise() (*Report, error) {
	r := &Report{Contact: strings.Join(w.ContactInfo, ", ")}
	switch {
	case w.OrganizationName == nil || strings.TrimSpace(*w.OrganizationName) == "":
		return nil, fmt.Errorf("no organization-name")
	case w.ReportID == nil || strings.TrimSpace(*w.ReportID) == "":
		return nil, fmt.Errorf("no report-id")
	case w.DateRange.Start == nil:
		return nil, fmt.Errorf("no date-range start-datetime")
	case w.Policies == nil:
		return nil, fmt.Errorf("no policies")
	}
	r.Organization, r.ID = *w.OrganizationName, *w.ReportID
	var err error
	if r.Start, err = parseDateTime(*w.DateRange.Start); err != nil {
		return nil, fmt.Errorf("start-datetime: %w", err)
	}
	if w.DateRange.End != nil {
		r.End, _ = parseDateTime(*w.DateRange.End)
	}
	r.Policies = make([]Policy, len(*w.Policies))
	for i, wp := range *w.Policies {
		if r.Policies[i], err = wp.normalise(); err != nil {
			return nil, fmt.Errorf("policies[%d]: %w", i, err)
		}
	}
	return r, nil
}

func (wp *wirePolicy) normalise() (Policy, error) {
	p := Policy{
		Strings:    wp.Policy.String,
		MXHosts:    wp.Policy.MXHost,
		Successful: int64(wp.Summary.Successful),
		Failed:     int64(wp.Summary.Failed),
		Failures:   make([]Failure, len(wp.FailureDetails)),
	}
	p.Type, p.RawType = policyType(wp.Policy.Type)
	if p.Type == PolicyTLSA && len(p.Strings) == 1 && strings.Contains(p.Strings[0], ";") {
		p.Strings = nonEmpty(strings.Split(p.Strings[0], ";"))
	}
	if d := strings.TrimSpace(wp.Policy.Domain); d != "" {
		domain, err := policy.NormalizeHost(d)
		if err != nil {
			return Policy{}, fmt.Errorf("policy-domain %q: %w", truncate(d, maxRawTypeLen), err)
		}
		p.Domain = domain
	}
	for i, wf := range wp.FailureDetails {
		p.Failures[i] = wf.normalise()
	}
	return p, nil
}

func (wf *wireFailure) normalise() Failure {
	f := Failure{
		Sessions:       int64(wf.FailedSessionCount),
		SendingIP:      strings.TrimSpace(wf.SendingMTAIP),
		ReceivingMX:    strings.TrimSpace(wf.ReceivingMXHostname),
		ReceivingHELO:  strings.TrimSpace(wf.ReceivingMXHelo),
		ReceivingIP:    strings.TrimSpace(wf.ReceivingIP),
		ReasonCode:     strings.TrimSpace(wf.FailureReasonCode),
		AdditionalInfo: strings.TrimSpace(wf.AdditionalInfo),
	}
	raw := strings.TrimSpace(wf.ResultType)
	if t := strings.ToLower(raw); slices.Contains(ResultTypes, t) {
		f.ResultType = t
	} else {
		f.ResultType, f.RawResultType = ResultOther, truncate(raw, maxRawTypeLen)
	}
	return f
}

func policyType(raw string) (PolicyType, string) {
	raw = strings.TrimSpace(raw)
	switch t := PolicyType(strings.ToLower(raw)); t {
	case PolicySTS, PolicyTLSA, PolicyNone:
		return t, ""
	}
	return PolicyOther, truncate(raw, maxRawTypeLen)
}

// dateTimeLayouts are the forms of date-time Parse reads, tried in order,
// after a space between date and time became a "T". The fraction of a
// second is optional in each. A layout without a zone gives UTC.
var dateTimeLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00", // RFC 3339
	"2006-01-02T15:04:05.999999999Z0700",  // an offset without the colon
	"2006-01-02T15:04:05.999999999",       // no zone (Microsoft): UTC
	"2006-01-02",
}

// parseDateTime reads a date-time as senders write it and returns it in UTC.
func parseDateTime(s string) (time.Time, error) {
	// RFC 3339 §5.6 allows a lowercase "t" and "z", and a space for "T".
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	for _, layout := range dateTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time", truncate(s, maxRawTypeLen))
}

// Day is the UTC date of the start of the report's date range, "YYYY-MM-DD":
// the day the report counts for. Reports cover a UTC day (RFC 8460 §4.1),
// ending at 23:59:59Z or at the next day's 00:00Z, so the start names it.
func (r *Report) Day() string {
	return r.Start.Format(time.DateOnly)
}

// Hash identifies the report among all reports: report ids are unique per
// sender only (RFC 8460 §4.4), so it is the SHA-256 of the organization
// name and the id, separated by a NUL, in 32 hex digits (128 bits).
func (r *Report) Hash() string {
	h := sha256.New()
	h.Write([]byte(r.Organization))
	h.Write([]byte{0})
	h.Write([]byte(r.ID))
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Domains returns the distinct policy domains the report names, sorted.
func (r *Report) Domains() []string {
	var domains []string
	for _, p := range r.Policies {
		if p.Domain != "" {
			domains = append(domains, p.Domain)
		}
	}
	slices.Sort(domains)
	return slices.Compact(domains)
}

// truncate cuts s to at most n bytes, dropping a rune cut in two.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
