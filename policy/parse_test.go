package policy

import (
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	for name, body := range map[string]string{
		"crlf":                      "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"lf":                        "version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 86400\n",
		"mixed terminators":         "version: STSv1\r\nmode: testing\nmx: mx.example\r\nmax_age: 86400",
		"no final terminator":       "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400",
		"any field order":           "mx: mx.example\r\nmax_age: 86400\r\nmode: testing\r\nversion: STSv1\r\n",
		"no space after colon":      "version:STSv1\r\nmode:testing\r\nmx:mx.example\r\nmax_age:86400\r\n",
		"tabs and trailing spaces":  "version:\tSTSv1  \r\nmode: testing\t\r\nmx: mx.example \r\nmax_age: 86400\r\n",
		"extension field":           "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\nx-note.1: hello wörld\r\n",
		"mode none without mx":      "version: STSv1\r\nmode: none\r\nmax_age: 0\r\n",
		"uppercase mx":              "version: STSv1\r\nmode: enforce\r\nmx: MX.Example\r\nmax_age: 86400\r\n",
		"leading zeros in max_age":  "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 0000086400\r\n",
		"max_age at maximum":        "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 31557600\r\n",
		"punycode mx":               "version: STSv1\r\nmode: testing\r\nmx: *.xn--bcher-kva.example\r\nmax_age: 1\r\n",
		"single-label mx":           "version: STSv1\r\nmode: testing\r\nmx: localhost\r\nmax_age: 1\r\n",
		"extension named like mode": "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 1\r\nmodes: x\r\n",
	} {
		if _, err := Parse([]byte(body)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	ok := "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n"
	for name, body := range map[string]string{
		"empty":                     "",
		"blank line inside":         "version: STSv1\r\n\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"two terminators at end":    ok + "\r\n",
		"space before colon":        "version : STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"leading space":             " version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"missing version":           "mode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"wrong version":             "version: STSv2\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"version case":              "Version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"version value case":        "version: stsv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"repeated version":          "version: STSv1\r\n" + ok,
		"missing mode":              "version: STSv1\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"mode case":                 "version: STSv1\r\nmode: Testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"unknown mode":              "version: STSv1\r\nmode: report\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"repeated mode":             ok + "mode: enforce\r\n",
		"missing mx":                "version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n",
		"missing max_age":           "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\n",
		"repeated max_age":          ok + "max_age: 1\r\n",
		"max_age too large":         "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 31557601\r\n",
		"max_age 11 digits":         "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 00000000001\r\n",
		"max_age negative":          "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: -1\r\n",
		"max_age with sign":         "version: STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: +1\r\n",
		"mx trailing dot":           "version: STSv1\r\nmode: testing\r\nmx: mx.example.\r\nmax_age: 86400\r\n",
		"mx U-label":                "version: STSv1\r\nmode: testing\r\nmx: mail.bücher.example\r\nmax_age: 86400\r\n",
		"mx wildcard inside":        "version: STSv1\r\nmode: testing\r\nmx: mx.*.example\r\nmax_age: 86400\r\n",
		"mx two names":              "version: STSv1\r\nmode: testing\r\nmx: a.example b.example\r\nmax_age: 86400\r\n",
		"mx empty":                  "version: STSv1\r\nmode: testing\r\nmx:\r\nmax_age: 86400\r\n",
		"no colon":                  "version STSv1\r\nmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"bad extension name":        ok + "_x: y\r\n",
		"extension name too long":   ok + strings.Repeat("x", 33) + ": y\r\n",
		"control char in extension": ok + "x: a\x01b\r\n",
		"tab inside extension":      ok + "x: a\tb\r\n",
		"bare CR terminator":        "version: STSv1\rmode: testing\r\nmx: mx.example\r\nmax_age: 86400\r\n",
		"invalid UTF-8":             ok + "x: \xff\r\n",
		"too large":                 ok + strings.Repeat("x: y\r\n", MaxSize/6),
	} {
		if p, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: Parse accepted it as %+v", name, p)
		}
	}
}

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		txt, id string
	}{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z"}, // RFC 8461 §3.1
		{"v=STSv1;id=abc", "abc"},
		{"v=STSv1 ;\tid=abc ; ", "abc"},
		{"v=STSv1; ext=x=y; id=abc", ""},
		{"v=STSv1; ext-1.x=val:ue; id=" + strings.Repeat("A", 32), strings.Repeat("A", 32)},
	} {
		rec, err := ParseRecord(tc.txt)
		if tc.id == "" {
			if err == nil {
				t.Errorf("ParseRecord(%q) accepted %+v", tc.txt, rec)
			}
			continue
		}
		if err != nil || rec.ID != tc.id {
			t.Errorf("ParseRecord(%q) = %+v, %v; want id %q", tc.txt, rec, err, tc.id)
		}
	}
	for _, txt := range []string{
		"",
		"v=STSv1",
		"v=STSv1;",
		"v=STSv1; ",
		"v=STSv1 id=abc",
		"v=STSv1; id=",
		"v=STSv1; id=abc-def",
		"v=STSv1; id=" + strings.Repeat("a", 33),
		"v=STSv1; id=a; id=b",
		"v=STSv1;; id=abc",
		"v=STSv1; id=abc;;",
		"v=STSv2; id=abc",
		"V=STSv1; id=abc",
		"v=STSv1; ID=abc",
		"id=abc; v=STSv1",
		"v=STSv1; id=ab c",
		"v=STSv1; id=abc; ext",
		"v=STSv1; id=abc; _ext=1",
		"v=STSv1; id=abc; ext=a b",
		"v=STSv1; id=abc; ext=é",
		"v=STSv10; id=abc",
	} {
		if rec, err := ParseRecord(txt); err == nil {
			t.Errorf("ParseRecord(%q) accepted %+v", txt, rec)
		}
	}
}

func TestSelectRecord(t *testing.T) {
	rec, err := SelectRecord([]string{"some other text", "v=spf1 -all", "v=STSv1; id=one"})
	if err != nil || rec.ID != "one" {
		t.Fatalf("SelectRecord = %+v, %v", rec, err)
	}
	if rec.String() != "v=STSv1; id=one" {
		t.Fatalf("String = %q", rec.String())
	}
	for _, txts := range [][]string{
		nil,
		{"v=spf1 -all"},
		{"v=STSv1; id=one", "v=STSv1; id=two"},
		{"v=STSv1; id=one", "v=STSv1; broken"},
		{"v=STSv1; id=bad-id"},
	} {
		if rec, err := SelectRecord(txts); err == nil {
			t.Errorf("SelectRecord(%q) accepted %+v", txts, rec)
		}
	}
}

func TestIsRecord(t *testing.T) {
	for txt, want := range map[string]bool{
		"v=STSv1; id=1":   true,
		"v=STSv1;":        true,
		"v=STSv1 ;id=1":   true,
		"v=STSv1":         false,
		"v=STSv10; id=1":  false,
		"v=stsv1; id=1":   false,
		" v=STSv1; id=1":  false,
		"v=TLSRPTv1; x=y": false,
	} {
		if got := IsRecord(txt); got != want {
			t.Errorf("IsRecord(%q) = %v, want %v", txt, got, want)
		}
	}
	if !IsTLSRPTRecord("v=TLSRPTv1;rua=mailto:a@b") || IsTLSRPTRecord("v=TLSRPTv10;rua=mailto:a@b") {
		t.Error("IsTLSRPTRecord is wrong")
	}
}

func TestTLSRPTRecord(t *testing.T) {
	got, err := TLSRPTRecord([]string{"mailto:tlsrpt@example.net", "https://reports.example.net/v1/tlsrpt"})
	if want := "v=TLSRPTv1; rua=mailto:tlsrpt@example.net,https://reports.example.net/v1/tlsrpt"; err != nil || got != want {
		t.Fatalf("TLSRPTRecord = %q, %v; want %q", got, err, want)
	}
	for _, bad := range [][]string{
		nil,
		{"http://reports.example.net/"},
		{"mailto:"},
		{"mailto:no-at-sign"},
		{"https:///path-only"},
		{"ftp://example.net/"},
		{"mailto:a,b@example.net"},
		{"mailto:a;b@example.net"},
		{"mailto:a!b@example.net"},
		{"mailto:a b@example.net"},
		{"reports@example.net"},
	} {
		if rec, err := TLSRPTRecord(bad); err == nil {
			t.Errorf("TLSRPTRecord(%q) accepted: %q", bad, rec)
		}
	}
}
