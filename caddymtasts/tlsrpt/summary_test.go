package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestSummaryCountsEachReportOnce(t *testing.T) {
	s := NewSummary("example.com", "2025-03-01")
	for _, file := range []string{"several-policies.json", "dane-and-sts.json", "unknown-types.json", "several-policies.json"} {
		r := readReport(t, file)
		if _, err := s.Add(r, r.Sessions()[0]); err != nil {
			t.Fatal(err)
		}
	}
	// The same report again, from the file: not counted.
	r := readReport(t, "dane-and-sts.json")
	if added, err := s.Add(r, r.Sessions()[0]); added || err != nil {
		t.Errorf("the same report added again: %v, %v", added, err)
	}
	want := &Summary{
		Domain: "example.com", Day: "2025-03-01",
		Reports: 3, SuccessfulSessions: 40 + 100 + 20, FailedSessions: 3 + 0 + 6,
		FailuresByResultType: map[string]int64{"certificate-expired": 2 + 1, "starttls-not-supported": 1, ResultOther: 5},
		OtherResultTypes:     map[string]int64{"tls-version-too-old": 5},
		Organizations: map[string]OrganizationSessions{
			"Mail Sender AG":        {Reports: 2, SuccessfulSessions: 60, FailedSessions: 9},
			"Microsoft Corporation": {Reports: 1, SuccessfulSessions: 100},
		},
		CountedPolicyTypes: map[PolicyType]int{PolicySTS: 2, PolicyOther: 1},
		ReportHashes: []string{readReport(t, "several-policies.json").Hash(), r.Hash(),
			readReport(t, "unknown-types.json").Hash()},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	// What storage holds reads back the same.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back := NewSummary("", "")
	if err := json.Unmarshal(data, back); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("read back: %+v, %v", back, err)
	}
}

func TestSummaryBounds(t *testing.T) {
	s := NewSummary("example.com", "2025-03-01")
	for i := range maxSummaryReports {
		r := &Report{Organization: fmt.Sprintf("org %d", i%(2*maxSummaryOrganizations)), ID: fmt.Sprint(i)}
		d := DomainSessions{Successful: 1, OtherResultTypes: map[string]int64{fmt.Sprintf("type %d", i): 1}}
		if _, err := s.Add(r, d); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	if _, err := s.Add(&Report{Organization: "o", ID: "one more"}, DomainSessions{}); !errors.Is(err, ErrSummaryFull) {
		t.Errorf("report %d: got %v, want %v", maxSummaryReports+1, err, ErrSummaryFull)
	}
	if n := len(s.Organizations); n != maxSummaryOrganizations {
		t.Errorf("%d organizations named, want %d", n, maxSummaryOrganizations)
	}
	// Each of 2*maxSummaryOrganizations organizations sent as many reports;
	// all but the first maxSummaryOrganizations-1 count under (others).
	perOrganization := maxSummaryReports / (2 * maxSummaryOrganizations)
	if others, want := s.Organizations[OtherOrganizations], maxSummaryReports-(maxSummaryOrganizations-1)*perOrganization; others.Reports != want {
		t.Errorf("%d reports under %s, want %d", others.Reports, OtherOrganizations, want)
	}
	if n := len(s.OtherResultTypes); n != maxSummaryOtherTypes {
		t.Errorf("%d other result types kept, want %d", n, maxSummaryOtherTypes)
	}
	if s.SuccessfulSessions != maxSummaryReports {
		t.Errorf("%d successful sessions, want %d", s.SuccessfulSessions, maxSummaryReports)
	}
}
