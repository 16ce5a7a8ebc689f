package tlsrpt

import "math"

// ResultUnspecified counts the failed sessions of a summary that its
// failure details do not account for.
const ResultUnspecified = "unspecified"

// DomainSessions are the sessions one report counts for one policy domain.
type DomainSessions struct {
	Domain string
	// The policy type whose counts these are: see Report.Sessions.
	PolicyType PolicyType
	Successful int64
	Failed     int64
	// Failed sessions by result type: one of ResultTypes, ResultOther or
	// ResultUnspecified.
	Failures map[string]int64
	// The result types counted as ResultOther, as sent.
	OtherResultTypes map[string]int64
}

// policyTypeRank orders policy types for Report.Sessions: where two types
// count as many sessions, the first in this order is taken. STS first: it
// is the policy the provider publishes.
var policyTypeRank = map[PolicyType]int{PolicySTS: 0, PolicyTLSA: 1, PolicyNone: 2, PolicyOther: 3}

// Sessions sums up the report for each policy domain it names, sorted by
// domain. Policies without a domain count for none.
//
// One sender may report the same sessions under several policies of one
// domain: under its DANE (tlsa) and its MTA-STS (sts) policy when it
// applied both, and RFC 8460 §4 allows that. Summing those would count the
// sessions twice. So the policies of a domain are grouped by type; the
// policies within a type count distinct sessions and are summed (one per MX
// host, or a policy that changed during the day), and of the types the one
// with the most sessions (successful plus failed) is taken, sts before tlsa
// on a tie. This undercounts a sender that reports some MX hosts only under
// DANE and the others only under MTA-STS; counting the same sessions twice
// would be worse, since every real sender that applies both reports them
// twice.
//
// Successful and failed session counts are the summaries' totals. Failures
// by result type are the failure details' counts; where they add up to
// less than the summary's failed count, the rest is ResultUnspecified.
// Where they add up to more, they stay as sent: failure types may overlap
// (RFC 8460 §4).
func (r *Report) Sessions() []DomainSessions {
	var all []DomainSessions
	for _, domain := range r.Domains() {
		byType := map[PolicyType]*DomainSessions{}
		for i := range r.Policies {
			p := &r.Policies[i]
			if p.Domain != domain {
				continue
			}
			d := byType[p.Type]
			if d == nil {
				d = &DomainSessions{Domain: domain, PolicyType: p.Type, Failures: map[string]int64{}, OtherResultTypes: map[string]int64{}}
				byType[p.Type] = d
			}
			d.add(p)
		}
		all = append(all, *mostSessions(byType))
	}
	return all
}

// add counts the sessions of p.
func (d *DomainSessions) add(p *Policy) {
	d.Successful = saturatingAdd(d.Successful, p.Successful)
	d.Failed = saturatingAdd(d.Failed, p.Failed)
	var detailed int64
	for _, f := range p.Failures {
		d.Failures[f.ResultType] = saturatingAdd(d.Failures[f.ResultType], f.Sessions)
		if f.ResultType == ResultOther {
			d.OtherResultTypes[f.RawResultType] = saturatingAdd(d.OtherResultTypes[f.RawResultType], f.Sessions)
		}
		detailed = saturatingAdd(detailed, f.Sessions)
	}
	if detailed < p.Failed {
		d.Failures[ResultUnspecified] = saturatingAdd(d.Failures[ResultUnspecified], p.Failed-detailed)
	}
}

// mostSessions returns the sessions of the policy type that counted the
// most, ranked by policyTypeRank on a tie.
func mostSessions(byType map[PolicyType]*DomainSessions) *DomainSessions {
	var best *DomainSessions
	for _, d := range byType {
		if best == nil || d.total() > best.total() ||
			d.total() == best.total() && policyTypeRank[d.PolicyType] < policyTypeRank[best.PolicyType] {
			best = d
		}
	}
	return best
}

func (d *DomainSessions) total() int64 {
	return saturatingAdd(d.Successful, d.Failed)
}

// saturatingAdd returns a+b for counts a and b (not negative), or the
// largest int64 where that would overflow: counts come from anyone, and a
// sum that wrapped around would turn failures into a negative number.
func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
