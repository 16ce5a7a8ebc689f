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
