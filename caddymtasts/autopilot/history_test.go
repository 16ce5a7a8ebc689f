package autopilot

import (
	"testing"
	"time"

	"github.com/coredns-mtasts/mtasts/policy"
)

func TestStreak(t *testing.T) {
	var h History
	at := func(hours int) time.Time { return day0.Add(time.Duration(hours) * time.Hour) }
	for _, step := range []struct {
		hours  int
		result Result
		want   Streak
	}{
		{0, Pass, Streak{1, at(0), at(0)}},
		{24, Pass, Streak{2, at(0), at(24)}},
		{24, Pass, Streak{2, at(0), at(24)}}, // the same check again
		{96, Pass, Streak{3, at(0), at(96)}}, // 72 hours later: consecutive still
		{169, Pass, Streak{1, at(169), at(169)}},
		{193, Inconclusive, Streak{}},
		{217, Pass, Streak{1, at(217), at(217)}},
		{241, Fail, Streak{}},
	} {
		h.Observe(Check{At: at(step.hours), Result: step.result}, 72*time.Hour)
		if h.Streak != step.want {
			t.Errorf("after a check at +%dh, %s: %+v, want %+v", step.hours, step.result, h.Streak, step.want)
		}
	}
}

// Repeated decisions fold into one entry, changes written never; the
// trail keeps the latest MaxEntries.
func TestRecord(t *testing.T) {
	var h History
	at := func(i int) time.Time { return day0.Add(time.Duration(i) * time.Hour) }
	keep := func(i int, reason string) Entry {
		return Entry{At: at(i), Decision: Decision{Action: Keep, Reason: reason}}
	}
	h.Record(keep(0, "1 of 7"))
	h.Record(keep(1, "2 of 7"))
	h.Record(keep(2, "3 of 7"))
	if len(h.Entries) != 1 || h.Entries[0].Repeated != 2 || !h.Entries[0].At.Equal(at(0)) ||
		!h.Entries[0].Latest.Equal(at(2)) || h.Entries[0].Reason != "3 of 7" {
		t.Fatalf("three keeps: %+v", h.Entries)
	}
	promote := Entry{At: at(3), Decision: Decision{Action: Promote}, Outcome: Written, Record: RecordFor(Promote)}
	h.Record(promote)
	promote.At = at(4)
	h.Record(promote)
	if len(h.Entries) != 3 || !h.LastChange.Equal(at(4)) {
		t.Fatalf("two promotions written: %+v, last change %v", h.Entries, h.LastChange)
	}
	failed := Entry{At: at(5), Decision: Decision{Action: Demote}, Outcome: Failed, Error: "primary unreachable"}
	h.Record(failed)
	failed.At = at(6)
	h.Record(failed)
	if len(h.Entries) != 4 || h.Entries[3].Repeated != 1 || !h.LastChange.Equal(at(4)) {
		t.Fatalf("two failed demotions: %+v, last change %v", h.Entries, h.LastChange)
	}
	h.Streak = Streak{Passes: 3, Since: at(0), Last: at(6)}
	h.Record(Entry{At: at(7), Decision: Decision{Action: Demote}, Outcome: Written})
	if h.Streak != (Streak{}) || !h.LastChange.Equal(at(7)) {
		t.Errorf("a demotion written: streak %+v, last change %v", h.Streak, h.LastChange)
	}
	for i := range 2 * MaxEntries {
		action := Keep
		if i%2 == 1 {
			action = Blocked
		}
		h.Record(Entry{At: at(8 + i), Decision: Decision{Action: action}})
	}
	if len(h.Entries) != MaxEntries || !h.Entries[MaxEntries-1].At.Equal(at(8+2*MaxEntries-1)) {
		t.Errorf("%d entries, the last at %v", len(h.Entries), h.Entries[len(h.Entries)-1].At)
	}
}

func TestSettingsOf(t *testing.T) {
	for _, c := range []struct {
		txts     []string
		settings Settings
		mode     policy.Mode
	}{
		{nil, SettingsNone, ""},
		{[]string{"site-verification=abc"}, SettingsNone, ""},
		{[]string{"v=STSCFG1; mode=enforce; by=autopilot"}, SettingsAutopilot, policy.ModeEnforce},
		{[]string{"v=STSCFG1; mode=testing; by=autopilot", "site-verification=abc"}, SettingsAutopilot, policy.ModeTesting},
		{[]string{"v=STSCFG1; mode=enforce"}, SettingsExplicit, ""},
		{[]string{"v=STSCFG1; off"}, SettingsExplicit, ""},
		// The autopilot's record, edited: someone decided.
		{[]string{"v=STSCFG1; mode=enforce; max_age=86400; by=autopilot"}, SettingsExplicit, ""},
		{[]string{"v=STSCFG1; mode=enforce; mx=mx.new.example; by=autopilot"}, SettingsExplicit, ""},
		{[]string{"v=STSCFG1; mode=none; by=autopilot"}, SettingsExplicit, ""},
		{[]string{"v=STSCFG1; by=autopilot"}, SettingsExplicit, ""},
		{[]string{"v=STSCFG1; mode=enforce; by=autopilot; colour=blue"}, SettingsExplicit, ""},
		{[]string{"v=STSCFG1; mode=enforce; by=autopilot", "v=STSCFG1; mode=testing; by=autopilot"}, SettingsExplicit, ""},
		// The owner runs MTA-STS itself.
		{[]string{"v=STSv1; id=owner1", "v=STSCFG1; mode=enforce; by=autopilot"}, SettingsExplicit, ""},
	} {
		settings, mode := SettingsOf(c.txts)
		if settings != c.settings || mode != c.mode {
			t.Errorf("SettingsOf(%q) = %q, %q; want %q, %q", c.txts, settings, mode, c.settings, c.mode)
		}
	}
	for action, want := range map[Action]string{
		Promote: "v=STSCFG1; mode=enforce; by=autopilot",
		Demote:  "v=STSCFG1; mode=testing; by=autopilot",
	} {
		if got := RecordFor(action); got != want {
			t.Errorf("RecordFor(%s) = %q, want %q", action, got, want)
		}
		if settings, mode := SettingsOf([]string{RecordFor(action)}); settings != SettingsAutopilot || mode != action.Mode() {
			t.Errorf("the record of %s reads as %q, %q", action, settings, mode)
		}
	}
}
