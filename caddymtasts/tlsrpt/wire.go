package tlsrpt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// wireReport is a report as senders send it: the schema of RFC 8460 §4.4,
// with the types loosened where real senders deviate from it. Keys the
// schema does not have, misspelled optional ones included, are ignored
// (encoding/json skips them, and matches the others case-insensitively).
// Pointers tell a required field that is missing from an empty one.
type wireReport struct {
	OrganizationName *string       `json:"organization-name"`
	DateRange        wireDateRange `json:"date-range"`
	ContactInfo      stringList    `json:"contact-info"` // an address; null, or several, from some senders
	ReportID         *string       `json:"report-id"`
	Policies         *[]wirePolicy `json:"policies"`
}

type wireDateRange struct {
	Start *string `json:"start-datetime"`
	End   *string `json:"end-datetime"`
}

type wirePolicy struct {
	Policy         wirePolicyFields `json:"policy"`
	Summary        wireSummary      `json:"summary"`
	FailureDetails []wireFailure    `json:"failure-details"`
}

type wirePolicyFields struct {
	Type   string     `json:"policy-type"`
	String stringList `json:"policy-string"`
	Domain string     `json:"policy-domain"`
	MXHost stringList `json:"mx-host"`
}

type wireSummary struct {
	Successful sessionCount `json:"total-successful-session-count"`
	Failed     sessionCount `json:"total-failure-session-count"`
}

type wireFailure struct {
	ResultType          string       `json:"result-type"`
	SendingMTAIP        string       `json:"sending-mta-ip"`
	ReceivingMXHostname string       `json:"receiving-mx-hostname"`
	ReceivingMXHelo     string       `json:"receiving-mx-helo"`
	ReceivingIP         string       `json:"receiving-ip"`
	FailedSessionCount  sessionCount `json:"failed-session-count"`
	AdditionalInfo      string       `json:"additional-information"`
	FailureReasonCode   string       `json:"failure-reason-code"`
}

// stringList is a field RFC 8460 §4.4 makes an array of strings
// (policy-string, mx-host) in whatever form senders put it: missing, null,
// an empty string, one string, an array of strings, or, from some senders'
// DANE policies, one string that holds a JSON array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(data []byte) error {
	switch {
	case bytes.Equal(data, []byte("null")):
		*l = nil
		return nil
	case data[0] == '[':
		var list []string
		if err := json.Unmarshal(data, &list); err != nil {
			return err
		}
		*l = nonEmpty(list)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	var inner []string
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "[") && json.Unmarshal([]byte(t), &inner) == nil {
		*l = nonEmpty(inner)
		return nil
	}
	*l = nonEmpty([]string{s})
	return nil
}

// nonEmpty returns the strings of list that are not blank, trimmed.
func nonEmpty(list []string) []string {
	var kept []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			kept = append(kept, s)
		}
	}
	return kept
}

// maxSessionCount is the largest session count taken: 2^53, the largest
// integer every JSON parser reads exactly (RFC 7493 §2.2, I-JSON, which
// RFC 8460 §4 names). Summaries add counts with saturation, so no sum
// overflows either.
const maxSessionCount = 1 << 53

// sessionCount is a number of sessions: a whole number from 0 to
// maxSessionCount. Null counts as 0, as a missing count does.
type sessionCount int64

func (c *sessionCount) UnmarshalJSON(data []byte) error {
	if bytes.Equal(data, []byte("null")) {
		*c = 0
		return nil
	}
	// data is a JSON value: a number literal parses, a string does not.
	f, err := strconv.ParseFloat(string(data), 64)
	if err != nil || f < 0 || f > maxSessionCount || f != math.Trunc(f) {
		return fmt.Errorf("session count %s is not a whole number from 0 to 2^53", data)
	}
	*c = sessionCount(f)
	return nil
}
