package autopilot

import (
	"slices"

	"github.com/coredns-mtasts/mtasts/policy"
)

// Settings says who wrote a domain's settings record (policy.Settings, at
// _mta-sts.D in the zone), which decides whether the autopilot may change
// it.
type Settings string

// Who wrote the settings.
const (
	SettingsUnread Settings = ""     // not read: no change may be made
	SettingsNone   Settings = "none" // no settings record: the Corefile's defaults apply
	// The autopilot's own record, as it writes it: a mode, testing or
	// enforce, and by=autopilot, nothing else.
	SettingsAutopilot Settings = "autopilot"
	// Anything else: a customer's or operator's settings, valid or not,
	// several settings records, or the owner's own MTA-STS record. Never
	// changed.
	SettingsExplicit Settings = "explicit"
)

// SettingsOf tells who wrote the settings of a domain whose TXT records at
// _mta-sts are txts (each one's strings joined) and, for the autopilot's
// record, the mode it sets. A record that carries by=autopilot but was
// edited (another field added, another mode) is explicit: whoever edited
// it decided, and the autopilot leaves it to them.
func SettingsOf(txts []string) (Settings, policy.Mode) {
	if slices.ContainsFunc(txts, policy.IsRecord) {
		return SettingsExplicit, ""
	}
	var records []string
	for _, t := range txts {
		if policy.IsSettingsRecord(t) {
			records = append(records, t)
		}
	}
	if len(records) == 0 {
		return SettingsNone, ""
	}
	s, err := policy.SelectSettings(records)
	if err != nil || !isAutopilots(s) {
		return SettingsExplicit, ""
	}
	return SettingsAutopilot, s.Mode
}

// isAutopilots reports whether s is a record the autopilot writes.
func isAutopilots(s policy.Settings) bool {
	return s.By == policy.ByAutopilot && (s.Mode == policy.ModeTesting || s.Mode == policy.ModeEnforce) &&
		!s.Off && !s.HasMaxAge && len(s.MX) == 0
}

// RecordFor returns the settings record the autopilot writes for a
// change.
func RecordFor(a Action) string {
	return policy.Settings{Mode: a.Mode(), By: policy.ByAutopilot}.String()
}
