package caddymtasts

import (
	"fmt"
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// TestSessionChart checks the layout: the window ends today, each half
// has its own scale, a single failure among many is still a pixel, and
// failure types stack below the axis in the order of their names.
func TestSessionChart(t *testing.T) {
	today := time.Date(2030, 3, 31, 15, 0, 0, 0, time.UTC)
	big := tlsrpt.NewSummary("example.com", "2030-03-30")
	big.SuccessfulSessions, big.FailedSessions = 1_000_000, 1000
	big.FailuresByResultType = map[string]int64{"starttls-not-supported": 999, "certificate-expired": 1}
	small := tlsrpt.NewSummary("example.com", "2030-03-02")
	small.SuccessfulSessions = 500_000
	old := tlsrpt.NewSummary("example.com", "2030-03-01") // before the window
	old.SuccessfulSessions = 9_000_000

	c := newSessionChart([]*tlsrpt.Summary{old, small, big}, today)
	if len(c.Days) != reportWindowDays || c.Days[0].Day != "2030-03-02" || c.Days[29].Day != "2030-03-31" {
		t.Fatalf("days %s to %s", c.Days[0].Day, c.Days[len(c.Days)-1].Day)
	}
	if c.MaxSuccessful != 1_000_000 || c.MaxFailed != 1000 {
		t.Errorf("scales %d, %d; want 1000000, 1000: the day before the window counts for nothing", c.MaxSuccessful, c.MaxFailed)
	}
	if h := c.Days[0].Successful.Height; h != chartHalf/2 {
		t.Errorf("half the largest day: %d px, want %d", h, chartHalf/2)
	}
	bar := c.Days[28]
	if bar.Successful.Height != chartHalf || bar.Successful.Y+bar.Successful.Height != c.Axis-chartAxisGap/2 {
		t.Errorf("the largest day: %+v, axis at %d", bar.Successful, c.Axis)
	}
	if len(bar.Failures) != 2 || bar.Failures[0].Series != "certificate-expired" || bar.Failures[0].Height != 1 ||
		bar.Failures[1].Y != bar.Failures[0].Y+1 || bar.Failures[1].Height != 99 {
		t.Errorf("the failures: %+v", bar.Failures)
	}
	var labels []string
	for _, d := range c.Days {
		if d.Label != "" {
			labels = append(labels, d.Label)
		}
	}
	if want := "[03-03 03-10 03-17 03-24 03-31]"; fmt.Sprint(labels) != want {
		t.Errorf("labels %v, want %s", labels, want)
	}
}
