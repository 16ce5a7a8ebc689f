package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

// The example policy of RFC 8461 §3.2.
const rfcExample = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"

func TestParseRFCExample(t *testing.T) {
	p, err := Parse([]byte(rfcExample))
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{Mode: ModeEnforce, MX: []string{"*.example.net", "backupmx.example.com", "mail.example.com"}, MaxAge: 604800}
	if !slices.Equal(p.MX, want.MX) || p.Mode != want.Mode || p.MaxAge != want.MaxAge {
		t.Fatalf("Parse = %+v, want %+v", p, want)
	}
	canonical := "version: STSv1\r\nmode: enforce\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"
	if got := string(p.Encode()); got != canonical {
		t.Fatalf("Encode = %q, want %q", got, canonical)
	}
}

func TestIDIsSHA256OfCanonicalEncoding(t *testing.T) {
	p, err := New(ModeTesting, []string{"MX2.Example.COM.", "mx1.example.com", "mx1.example.com."}, 86400)
	if err != nil {
		t.Fatal(err)
	}
	body := "version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmx: mx2.example.com\r\nmax_age: 86400\r\n"
	if got := string(p.Encode()); got != body {
		t.Fatalf("Encode = %q, want %q", got, body)
	}
	sum := sha256.Sum256([]byte(body))
	if want := hex.EncodeToString(sum[:])[:32]; p.ID() != want {
		t.Fatalf("ID = %s, want %s", p.ID(), want)
	}
	if len(p.ID()) != 32 || !isID(p.ID()) {
		t.Fatalf("ID %q is not a valid sts-id", p.ID())
	}
}

func TestIDIgnoresOrderCaseAndDuplicates(t *testing.T) {
	a, _ := New(ModeTesting, []string{"b.example.", "a.example"}, 600)
	b, _ := New(ModeTesting, []string{"A.EXAMPLE", "a.example.", "B.example"}, 600)
	if a.ID() != b.ID() {
		t.Fatalf("ids differ: %s %s", a.ID(), b.ID())
	}
	for _, other := range []Policy{
		must(New(ModeEnforce, []string{"a.example", "b.example"}, 600)),
		must(New(ModeTesting, []string{"a.example"}, 600)),
		must(New(ModeTesting, []string{"a.example", "c.example"}, 600)),
		must(New(ModeTesting, []string{"a.example", "b.example"}, 601)),
	} {
		if other.ID() == a.ID() {
			t.Errorf("policy %v has the id of %v", other, a)
		}
	}
}

func TestNewConvertsULabels(t *testing.T) {
	p, err := New(ModeTesting, []string{"mail.bücher.example", "*.Bücher.example."}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"*.xn--bcher-kva.example", "mail.xn--bcher-kva.example"}; !slices.Equal(p.MX, want) {
		t.Fatalf("MX = %v, want %v", p.MX, want)
	}
}

func TestNewRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		mode   Mode
		mx     []string
		maxAge uint32
	}{
		"bad mode":             {"Enforce", []string{"a.example"}, 1},
		"max_age too large":    {ModeTesting, []string{"a.example"}, MaxAgeLimit + 1},
		"no mx in testing":     {ModeTesting, nil, 1},
		"null mx target":       {ModeTesting, []string{"."}, 1},
		"wildcard inside":      {ModeTesting, []string{"mail.*.example"}, 1},
		"bare wildcard":        {ModeTesting, []string{"*"}, 1},
		"double wildcard":      {ModeTesting, []string{"*.*.example"}, 1},
		"underscore":           {ModeTesting, []string{"_mx.example"}, 1},
		"leading hyphen":       {ModeTesting, []string{"-mx.example"}, 1},
		"empty label":          {ModeTesting, []string{"mx..example"}, 1},
		"escaped byte":         {ModeTesting, []string{`mx\200.example`}, 1},
		"bad punycode":         {ModeTesting, []string{"xn--a.example"}, 1},
		"label too long":       {ModeTesting, []string{strings.Repeat("a", 64) + ".example"}, 1},
		"name too long":        {ModeTesting, []string{strings.Repeat("a.", 127) + "ab"}, 1},
		"space in name":        {ModeTesting, []string{"mx example"}, 1},
		"empty pattern":        {ModeTesting, []string{""}, 1},
		"wildcard of nothing":  {ModeTesting, []string{"*."}, 1},
		"trailing hyphen":      {ModeTesting, []string{"mx-.example"}, 1},
		"ip address literal":   {ModeTesting, []string{"[192.0.2.1]"}, 1},
		"mode none, bad entry": {ModeNone, []string{"a..b"}, 1},
	} {
		if p, err := New(tc.mode, tc.mx, tc.maxAge); err == nil {
			t.Errorf("%s: New accepted %+v", name, p)
		}
	}
}

func TestModeNoneNeedsNoMX(t *testing.T) {
	p, err := New(ModeNone, nil, 86400)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(p.Encode()), "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n"; got != want {
		t.Fatalf("Encode = %q, want %q", got, want)
	}
	if _, err := Parse(p.Encode()); err != nil {
		t.Fatal(err)
	}
}

// RFC 8461 §4.1: "*.example.com" matches "mail.example.com" but not
// "example.com" or "foo.bar.example.com".
func TestMatchMX(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"*.example.com", "mail.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "foo.bar.example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "MAIL.Example.Com.", true},
		{"mail.example.com", "mail.example.com.", true},
		{"mail.example.com", "Mail.Example.com", true},
		{"mail.example.com", "mail2.example.com", false},
		{"mail.example.com", "x.mail.example.com", false},
		{"*.example.net", "mail.example.com", false},
	} {
		if got := MatchMX(tc.pattern, tc.host); got != tc.want {
			t.Errorf("MatchMX(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
	p := must(Parse([]byte(rfcExample)))
	if !p.Matches("mx1.example.net") || !p.Matches("backupmx.example.com.") || p.Matches("example.net") {
		t.Error("Policy.Matches disagrees with RFC 8461 §3.2's example")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
