package tlsrpt

import (
	"errors"
	"slices"
)

// Bounds of a summary. Anyone can send a report about any domain, so the
// keys that come from reports are bounded, and so is the list of reports,
// which a summary keeps to count each report once.
const (
	// Reports per domain and day; real senders send one each, so a domain
	// gets a few tens.
	maxSummaryReports = 10_000
	// Organizations named, and result types kept as sent; the rest count
	// under OtherOrganizations and only as ResultOther.
	maxSummaryOrganizations = 100
	maxSummaryOtherTypes    = 32
	// How much of an organization's name is kept.
	maxOrganizationLen = 128
)

// OtherOrganizations counts the reports of the organizations a summary has
// no room left to name.
const OtherOrganizations = "(others)"

// ErrSummaryFull means a summary counts maxSummaryReports reports already.
var ErrSummaryFull = errors.New("the summary counts as many reports as it may")

// Summary is what the reports say about one policy domain on one day:
// sessions, failures by result type and by reporting organization.
type Summary struct {
	Domain             string `json:"domain"`
	Day                string `json:"day"` // YYYY-MM-DD, the UTC day the reports cover
	Reports            int    `json:"reports"`
	SuccessfulSessions int64  `json:"successful_sessions"`
	FailedSessions     int64  `json:"failed_sessions"`
	// Failed sessions by result type: one of ResultTypes, ResultOther or
	// ResultUnspecified (failed sessions no failure detail accounts for).
	FailuresByResultType map[string]int64 `json:"failures_by_result_type"`
	// The result types counted as ResultOther, as sent.
	OtherResultTypes map[string]int64 `json:"other_result_types"`
	// Reports and sessions by organization-name.
	Organizations map[string]OrganizationSessions `json:"organizations"`
	// How many reports were counted under each policy type (see
	// Report.Sessions).
	CountedPolicyTypes map[PolicyType]int `json:"counted_policy_types"`
	// Report.Hash of each report counted, in the order they came.
	ReportHashes []string `json:"report_hashes"`
}

// OrganizationSessions is what one organization reported in a summary.
type OrganizationSessions struct {
	Reports            int   `json:"reports"`
	SuccessfulSessions int64 `json:"successful_sessions"`
	FailedSessions     int64 `json:"failed_sessions"`
}

// NewSummary returns the empty summary of domain on day.
func NewSummary(domain, day string) *Summary {
	return &Summary{
		Domain:               domain,
		Day:                  day,
		FailuresByResultType: map[string]int64{},
		OtherResultTypes:     map[string]int64{},
		Organizations:        map[string]OrganizationSessions{},
		CountedPolicyTypes:   map[PolicyType]int{},
		ReportHashes:         []string{},
	}
}

// Add counts the sessions d of the report r in the summary and reports
// true, unless the summary counts r already: then it reports false and
// changes nothing, so a report sent twice, or received by two nodes, counts
// once. A summary that counts maxSummaryReports reports already takes no
// more: ErrSummaryFull.
func (s *Summary) Add(r *Report, d DomainSessions) (bool, error) {
	hash := r.Hash()
	if slices.Contains(s.ReportHashes, hash) {
		return false, nil
	}
	if len(s.ReportHashes) >= maxSummaryReports {
		return false, ErrSummaryFull
	}
	s.ReportHashes = append(s.ReportHashes, hash)
	s.Reports++
	s.SuccessfulSessions = saturatingAdd(s.SuccessfulSessions, d.Successful)
	s.FailedSessions = saturatingAdd(s.FailedSessions, d.Failed)
	for t, n := range d.Failures {
		s.FailuresByResultType[t] = saturatingAdd(s.FailuresByResultType[t], n)
	}
	for t, n := range d.OtherResultTypes {
		if _, named := s.OtherResultTypes[t]; named || len(s.OtherResultTypes) < maxSummaryOtherTypes {
			s.OtherResultTypes[t] = saturatingAdd(s.OtherResultTypes[t], n)
		}
	}
	s.CountedPolicyTypes[d.PolicyType]++
	org := s.organizationKey(r.Organization)
	o := s.Organizations[org]
	o.Reports++
	o.SuccessfulSessions = saturatingAdd(o.SuccessfulSessions, d.Successful)
	o.FailedSessions = saturatingAdd(o.FailedSessions, d.Failed)
	s.Organizations[org] = o
	return true, nil
}

// organizationKey is the key under which the summary counts the reports of
// organization.
func (s *Summary) organizationKey(organization string) string {
	name := truncate(organization, maxOrganizationLen)
	if _, named := s.Organizations[name]; named || len(s.Organizations) < maxSummaryOrganizations-1 {
		return name
	}
	return OtherOrganizations
}
