package caddymtasts

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// The geometry of the sessions chart, in SVG user units: one column per
// day of the report window, successful sessions drawn up from the axis,
// failed ones down from it, each half with its own scale, so a handful of
// failures among a million sessions still shows.
const (
	chartLeft      = 64  // room for the scale's labels
	chartRight     = 16  // room for the last day's label
	chartColumn    = 22  // width of a day
	chartBar       = 16  // width of a bar
	chartHalf      = 100 // height of each half
	chartTop       = 12  // above the upper half
	chartAxisGap   = 4   // between the halves
	chartDayLabels = 7   // a day label every this many days
)

// failureColors are the colors of the failure types of RFC 8460 §4.3, and
// of the rest (others). Fixed, so one type has one color on every page.
var failureColors = map[string]string{
	"starttls-not-supported":    "#d62728",
	"certificate-host-mismatch": "#ff7f0e",
	"certificate-expired":       "#8c564b",
	"certificate-not-trusted":   "#e377c2",
	"validation-failure":        "#9467bd",
	"tlsa-invalid":              "#bcbd22",
	"dnssec-invalid":            "#17becf",
	"dane-required":             "#7f7f7f",
	"sts-policy-fetch-error":    "#1f77b4",
	"sts-policy-invalid":        "#aec7e8",
	"sts-webpki-invalid":        "#ffbb78",
	tlsrpt.ResultUnspecified:    "#c7c7c7",
}

const otherFailureColor = "#525252"

// sessionChart is the chart of a domain's sessions per day, laid out for
// the template: every number is a coordinate or a count.
type sessionChart struct {
	Width, Height int
	Left, Bar     int // where the columns start; the width of a bar
	Axis          int // y of the axis between the halves
	Top, Bottom   int // y of the labels of the scales
	MaxSuccessful int64
	MaxFailed     int64
	Days          []chartDay
	Legend        []chartSegment // the failure types that occur, with their colors
}

// chartDay is one day's column.
type chartDay struct {
	Day        string
	Label      string // MM-DD on today and every chartDayLabels-th day before, else ""
	X, LabelX  int
	Successful chartSegment
	Failures   []chartSegment // stacked down from the axis, by type name
}

// chartSegment is one bar, or one part of the stacked failures bar.
type chartSegment struct {
	Series   string // "successful", or the failure type
	Sessions int64
	Y        int
	Height   int
	Color    string
}

// newSessionChart lays out the summaries (of any days) over the window of
// reportWindowDays days ending today; days without summaries are empty.
func newSessionChart(summaries []*tlsrpt.Summary, today time.Time) sessionChart {
	byDay := map[string]*tlsrpt.Summary{}
	c := sessionChart{Width: chartLeft + reportWindowDays*chartColumn + chartRight, Height: chartTop + 2*chartHalf + chartAxisGap + 20}
	c.Left, c.Bar = chartLeft, chartBar
	c.Axis = chartTop + chartHalf + chartAxisGap/2
	c.Top, c.Bottom = chartTop+8, c.Axis+chartHalf
	first := today.UTC().AddDate(0, 0, 1-reportWindowDays)
	firstDay, lastDay := first.Format(time.DateOnly), today.UTC().Format(time.DateOnly)
	for _, s := range summaries {
		if s.Day < firstDay || s.Day > lastDay {
			continue
		}
		byDay[s.Day] = s
		c.MaxSuccessful = max(c.MaxSuccessful, s.SuccessfulSessions)
		c.MaxFailed = max(c.MaxFailed, s.FailedSessions, sumValues(s.FailuresByResultType))
	}
	types := map[string]bool{}
	for i := range reportWindowDays {
		day := first.AddDate(0, 0, i)
		col := chartDay{Day: day.Format(time.DateOnly), X: chartLeft + i*chartColumn + (chartColumn-chartBar)/2}
		col.LabelX = col.X + chartBar/2
		if (reportWindowDays-1-i)%chartDayLabels == 0 { // today, and back a week at a time
			col.Label = day.Format("01-02")
		}
		s := byDay[col.Day]
		if s == nil {
			s = tlsrpt.NewSummary("", col.Day)
		}
		h := barHeight(s.SuccessfulSessions, c.MaxSuccessful)
		col.Successful = chartSegment{Series: "successful", Sessions: s.SuccessfulSessions, Y: c.Axis - chartAxisGap/2 - h, Height: h, Color: "#2ca02c"}
		y := c.Axis + chartAxisGap/2
		for _, t := range slices.Sorted(maps.Keys(s.FailuresByResultType)) {
			n := s.FailuresByResultType[t]
			h := barHeight(n, c.MaxFailed)
			col.Failures = append(col.Failures, chartSegment{Series: t, Sessions: n, Y: y, Height: h, Color: failureColor(t)})
			types[t] = true
			y += h
		}
		c.Days = append(c.Days, col)
	}
	for _, t := range slices.Sorted(maps.Keys(types)) {
		c.Legend = append(c.Legend, chartSegment{Series: t, Color: failureColor(t)})
	}
	return c
}

// barHeight scales n to the half's height; any session gets a pixel at
// least, so that one failure is not drawn as none.
func barHeight(n, maxN int64) int {
	if n <= 0 || maxN <= 0 {
		return 0
	}
	return max(1, int(float64(n)/float64(maxN)*chartHalf))
}

func failureColor(resultType string) string {
	return cmp.Or(failureColors[resultType], otherFailureColor)
}

// sumValues adds up the failures of all types: they may overlap (RFC 8460
// §4), so their sum can exceed the failed sessions, and the stack must
// fit the scale.
func sumValues(m map[string]int64) int64 {
	var sum int64
	for _, n := range m {
		sum += n
	}
	return sum
}
