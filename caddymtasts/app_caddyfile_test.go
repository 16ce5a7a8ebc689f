package caddymtasts

import (
	"strings"
	"testing"
)

func TestAdaptRejectsAppOptions(t *testing.T) {
	for option, want := range map[string]string{
		"interval":               "wrong argument count",
		"interval -1h":           "interval: -1h is negative",
		"interval daily":         "interval: ",
		"port 0":                 "port: want a whole number of at least 1",
		"port 65536":             "port: want 1 to 65535, not 65536",
		"concurrency none":       "concurrency: want a whole number of at least 1",
		"report_days 0":          "report_days: want a whole number of at least 1",
		"ehlo_name a.example b":  "wrong argument count",
		"ca_file":                "wrong argument count",
		"probe_timeout -1s":      "probe_timeout: -1s is negative",
		"disable_checks yes":     "wrong argument count",
		"check_interval 1h":      `unrecognized subdirective "check_interval"`,
		"servers 192.0.2.53:dns": `servers: DNS server "192.0.2.53:dns"`,
		"events on":              "wrong argument count",
	} {
		_, _, err := adapt(t, "{\n\tmta_sts {\n\t\t"+option+"\n\t}\n}\n")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%s: got error %v, want one containing %q and Caddyfile:3", option, err, want)
		}
	}
	if _, _, err := adapt(t, "{\n\tmta_sts on\n}\n"); err == nil {
		t.Error("mta_sts with an argument: adapted")
	}
}

// TestAdaptRejectsEventOptions checks the app's events block: each error
// names the line of the option.
func TestAdaptRejectsEventOptions(t *testing.T) {
	for block, want := range map[string]string{
		"warn_days 0":                           "warn_days: want a whole number of at least 1, not \"0\", at Caddyfile:4",
		"retention -1d":                         "retention: -1d is negative, at Caddyfile:4",
		"webhook":                               "wrong argument count or unexpected line ending after 'webhook', at Caddyfile:4",
		"webhook https://a.example/ https://b/": "wrong argument count or unexpected line ending after 'https://b/', at Caddyfile:4",
		"webhook https://h.example/ {\n secrets s\n }": `unrecognized subdirective "secrets", at Caddyfile:5`,
		"webhook https://h.example/ {\n timeout\n }":   "wrong argument count or unexpected line ending after 'timeout', at Caddyfile:5",
		"warning_days 3": `unrecognized subdirective "warning_days", at Caddyfile:4`,
	} {
		_, _, err := adapt(t, "{\n\tmta_sts {\n\t\tevents {\n"+block+"\n}\n\t}\n}\n")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got error %v, want one containing %q", block, err, want)
		}
	}
}

func TestAdaptRejectsAutopilotOptions(t *testing.T) {
	for option, want := range map[string]string{
		"primary":                  "wrong argument count",
		"primary 192.0.2.1:domain": `primary: DNS server "192.0.2.1:domain"`,
		"tsig_secret a b":          "wrong argument count",
		"dry_run yes":              "wrong argument count",
		"promote_checks 0":         "promote_checks: want a whole number of at least 1",
		"promote_after soon":       "promote_after: ",
		"report_days 0":            "report_days: want a whole number of at least 1",
		"min_sessions -1":          "min_sessions: want a whole number of at least 0",
		"change_interval -1h":      "change_interval: -1h is negative",
		"mode enforce":             `autopilot: unrecognized subdirective "mode"`,
	} {
		_, _, err := adapt(t, "{\n\tmta_sts {\n\t\tautopilot {\n\t\t\t"+option+"\n\t\t}\n\t}\n}\n")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Caddyfile:4") {
			t.Errorf("%s: got error %v, want one containing %q and Caddyfile:4", option, err, want)
		}
	}
	if _, _, err := adapt(t, "{\n\tmta_sts {\n\t\tautopilot on\n\t}\n}\n"); err == nil {
		t.Error("autopilot with an argument: adapted")
	}
}
