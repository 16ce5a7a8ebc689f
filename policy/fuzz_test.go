package policy

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives an encode/parse round trip unchanged, with a stable id.
func FuzzParse(f *testing.F) {
	f.Add([]byte(rfcExample))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0"))
	f.Add([]byte("version: STSv1\r\nmode: testing\r\nmx: *.xn--bcher-kva.example\r\nmax_age: 1\r\nx: é\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Parse(body)
		if err != nil {
			return
		}
		checkRoundTrip(t, p)
	})
}

// FuzzNew checks that every policy New accepts encodes to a body that Parse
// accepts and maps back to the same policy and id.
func FuzzNew(f *testing.F) {
	f.Add("testing", "mx1.example.com\nMX2.example.com.\n*.example.net", uint32(604800))
	f.Add("none", "", uint32(0))
	f.Add("enforce", "bücher.example", uint32(MaxAgeLimit))
	f.Fuzz(func(t *testing.T, mode, mx string, maxAge uint32) {
		p, err := New(Mode(mode), strings.Split(mx, "\n"), maxAge)
		if err != nil {
			return
		}
		checkRoundTrip(t, p)
	})
}

// FuzzCheckWireHost checks that a host name CheckWireHost accepts is the
// name its mx line states, only lowercased: NormalizeHost changes nothing
// else in it, not even into a wildcard or another name.
func FuzzCheckWireHost(f *testing.F) {
	for _, host := range []string{"MX1.example.com.", "bücher.example.", `b\195\188cher.example.`, "*.mx.example.",
		`mx\032.example.`, "_mx.example.", "xn--a.example.", "XN--BCHER-KVA.example", "\u212Aelvin.example."} {
		f.Add(host)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if CheckWireHost(host) != nil {
			return
		}
		want := strings.ToLower(strings.TrimSuffix(host, "."))
		if got, err := NormalizePattern(host); err != nil || got != want {
			t.Fatalf("NormalizePattern(%q) = %q, %v; want %q", host, got, err, want)
		}
	})
}

// FuzzParseRecord checks that an accepted record's id is a valid sts-id and
// that the record we would publish for it parses back to it.
func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1 ;\tid=abc ; ext=1")
	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParseRecord(txt)
		if err != nil {
			return
		}
		if !isID(rec.ID) {
			t.Fatalf("ParseRecord(%q) accepted id %q", txt, rec.ID)
		}
		again, err := ParseRecord(rec.String())
		if err != nil || again != rec {
			t.Fatalf("ParseRecord(%q) = %+v, %v; want %+v", rec.String(), again, err, rec)
		}
	})
}

func checkRoundTrip(t *testing.T, p Policy) {
	t.Helper()
	body := p.Encode()
	again, err := Parse(body)
	if err != nil {
		t.Fatalf("Parse(%q) of an encoded policy: %v", body, err)
	}
	if again.Mode != p.Mode || again.MaxAge != p.MaxAge || !slices.Equal(again.MX, p.MX) {
		t.Fatalf("round trip changed %+v into %+v", p, again)
	}
	if !bytes.Equal(again.Encode(), body) || again.ID() != p.ID() {
		t.Fatalf("round trip changed the encoding or id of %+v", p)
	}
	if !bytes.Equal(JoinLines(p.Lines()), body) {
		t.Fatalf("Lines of %+v do not join to its encoding", p)
	}
}

// FuzzParseSettings checks that an accepted settings record holds what the
// grammar allows: off alone, a valid mode, max_age within bounds, by only
// the autopilot, and mx patterns in canonical form that make a valid policy
// with any MX hosts; and that the record String writes for it reads back
// as the same settings.
func FuzzParseSettings(f *testing.F) {
	f.Add("v=STSCFG1; off")
	f.Add("v=STSCFG1 ;\tmode=enforce ; max_age=1209600 ;mx=mail.new.example;")
	f.Add("v=STSCFG1; mode=none; mx=*.Mail.Protection.Outlook.com; mx=xn--bcher-kva.example")
	f.Add("v=STSCFG1; off; mode=enforce")
	f.Add("v=STSCFG1; mode=enforce; by=autopilot")
	f.Fuzz(func(t *testing.T, txt string) {
		s, err := ParseSettings(txt)
		if err != nil {
			return
		}
		if again, err := ParseSettings(s.String()); err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("ParseSettings(%q) = %+v; its String %q reads back as %+v, %v", txt, s, s.String(), again, err)
		}
		if !IsSettingsRecord(txt) {
			t.Fatalf("ParseSettings accepted %q, which IsSettingsRecord does not claim", txt)
		}
		if s.Off && (s.Mode != "" || s.HasMaxAge || len(s.MX) > 0 || s.By != "") {
			t.Fatalf("ParseSettings(%q) = %+v: off with other fields", txt, s)
		}
		if _, err := ParseMode(string(s.Mode)); s.Mode != "" && err != nil || s.MaxAge > MaxAgeLimit || s.By != "" && s.By != ByAutopilot {
			t.Fatalf("ParseSettings(%q) = %+v", txt, s)
		}
		for _, mx := range s.MX {
			if got, err := NormalizePattern(mx); err != nil || got != mx {
				t.Fatalf("ParseSettings(%q): mx %q is not canonical (%q, %v)", txt, mx, got, err)
			}
		}
		p, err := s.Policy(ModeTesting, []string{"mx1.example.com"}, 604800)
		if err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("ParseSettings(%q) = %+v, which gives no policy: %v", txt, s, err)
		}
		if err == nil {
			checkRoundTrip(t, p)
		}
	})
}
