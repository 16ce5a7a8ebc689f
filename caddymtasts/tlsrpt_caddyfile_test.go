package caddymtasts

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Mistakes in the receiver's options fail caddy adapt, naming the line.
func TestAdaptRejectsTLSRPTOptions(t *testing.T) {
	for option, want := range map[string]string{
		"servers":                      "wrong argument count",
		"max_body_size lots":           `max_body_size: want a size such as 1048576 or 1MiB, not "lots"`,
		"max_body_size 0":              "max_body_size: want a size",
		"max_report_size -1MB":         "max_report_size: want a size",
		"retention forever":            "retention: ",
		"retention -1d":                "retention: -1d is negative",
		"max_unattributed_per_day 0":   "max_unattributed_per_day: want a whole number of at least 1",
		"max_unattributed_per_day 1 2": "wrong argument count",
		"report_path /v1":              `unrecognized subdirective "report_path"`,
	} {
		_, _, err := adapt(t, "reports.provider.test {\n\ttlsrpt /v1/tlsrpt {\n\t\t"+option+"\n\t}\n}\n")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Caddyfile:3") {
			t.Errorf("%s: got error %v, want one containing %q and Caddyfile:3", option, err, want)
		}
	}
	if _, _, err := adapt(t, "reports.provider.test {\n\ttlsrpt /v1/tlsrpt 192.0.2.53\n}\n"); err == nil {
		t.Error("an argument after the matcher was taken")
	}
}

func TestTLSRPTReceiverValidate(t *testing.T) {
	day := caddy.Duration(24 * 60 * 60 * 1e9)
	for name, h := range map[string]*TLSRPTReceiver{
		"negative max_body_size":            {MaxBodySize: -1, Retention: 90 * day},
		"negative max_report_size":          {MaxReportSize: -1, Retention: 90 * day},
		"retention of a day":                {Retention: day},
		"negative max_unattributed_per_day": {MaxUnattributedPerDay: -1, Retention: 90 * day},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := (&TLSRPTReceiver{Retention: 2 * day}).Validate(); err != nil {
		t.Errorf("retention of two days: %v", err)
	}
}
