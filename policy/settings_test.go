package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		txt  string
		want Settings
	}{
		{"v=STSCFG1; off", Settings{Off: true}},
		{"v=STSCFG1;off;", Settings{Off: true}},
		{"v=STSCFG1; mode=enforce", Settings{Mode: ModeEnforce}},
		{"v=STSCFG1; mode=testing", Settings{Mode: ModeTesting}},
		{"v=STSCFG1; mode=none", Settings{Mode: ModeNone}},
		{"v=STSCFG1; max_age=86400", Settings{MaxAge: 86400, HasMaxAge: true}},
		{"v=STSCFG1; max_age=0", Settings{MaxAge: 0, HasMaxAge: true}},
		{"v=STSCFG1; max_age=31557600", Settings{MaxAge: MaxAgeLimit, HasMaxAge: true}},
		{"v=STSCFG1; mx=mail.new.example", Settings{MX: []string{"mail.new.example"}}},
		{"v=STSCFG1; mx=*.Mail.Protection.Outlook.com; mx=MX.xn--bcher-kva.example; mx=a.example; mx=a.example",
			Settings{MX: []string{"*.mail.protection.outlook.com", "mx.xn--bcher-kva.example", "a.example", "a.example"}}},
		{"v=STSCFG1 ;\tmode=enforce ; max_age=1209600 ;mx=mail.new.example;  ",
			Settings{Mode: ModeEnforce, MaxAge: 1209600, HasMaxAge: true, MX: []string{"mail.new.example"}}},
		{"v=STSCFG1; max_age=0000086400", Settings{MaxAge: 86400, HasMaxAge: true}},
		{"v=STSCFG1; mode=enforce; by=autopilot", Settings{Mode: ModeEnforce, By: ByAutopilot}},
		{"v=STSCFG1; by=autopilot; mode=testing;", Settings{Mode: ModeTesting, By: ByAutopilot}},
		{"v=STSCFG1; by=autopilot", Settings{By: ByAutopilot}},
	} {
		got, err := ParseSettings(tc.txt)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSettings(%q) = %+v, %v; want %+v", tc.txt, got, err, tc.want)
		}
	}
}

func TestParseSettingsRejects(t *testing.T) {
	for _, txt := range []string{
		"v=STSCFG1",                          // no field delimiter
		"v=STSCFG1;",                         // no field
		"v=STSCFG1; ;",                       // an empty field
		"v=STSCFG1 mode=enforce",             // no delimiter before the field
		"v=STSCFG1; mode=enforce mx=a.test",  // two fields in one
		"v=STSCFG2; mode=enforce",            // another version
		"v=stscfg1; mode=enforce",            // the tag is case-sensitive
		"v=STSCFG1; OFF",                     // so are the fields
		"v=STSCFG1; off; mode=enforce",       // off with others
		"v=STSCFG1; mx=a.test; off",          //
		"v=STSCFG1; off; off",                //
		"v=STSCFG1; off=1",                   // off takes no value
		"v=STSCFG1; Mode=enforce",            // unknown field
		"v=STSCFG1; id=1",                    //
		"v=STSCFG1; mode=enforce; mode=none", // repeated
		"v=STSCFG1; mode=testing; mode=testing",
		"v=STSCFG1; max_age=1; max_age=1",
		"v=STSCFG1; mode=",            // empty values
		"v=STSCFG1; mx=",              //
		"v=STSCFG1; max_age=",         //
		"v=STSCFG1; mode=Enforce",     // bad values
		"v=STSCFG1; mode=report",      //
		"v=STSCFG1; max_age=31557601", //
		"v=STSCFG1; max_age=-1",       //
		"v=STSCFG1; max_age=+1",       //
		"v=STSCFG1; max_age=1w",       //
		"v=STSCFG1; max_age=00000000001",
		"v=STSCFG1; mx=mail.example.",    // a final dot
		"v=STSCFG1; mx=mx_1.example",     // not LDH
		"v=STSCFG1; mx=*.*.example",      // a wildcard inside
		"v=STSCFG1; mx=mx.*.example",     //
		"v=STSCFG1; mx=*",                //
		"v=STSCFG1; mx=*.",               //
		"v=STSCFG1; mx=xn--a.example",    // not an A-label
		"v=STSCFG1; mx=mail.bücher.test", // a U-label
		"v=STSCFG1; mx=mx\\032a.example", // an escape
		"v=STSCFG1; mx=-mx.example",      //
		"v=STSCFG1; mx=" + strings.Repeat("a", 64) + ".example",
		"v=STSCFG1; mx=" + strings.Repeat(strings.Repeat("a", 63)+".", 4) + "example",
		"v=STSCFG1; mode=enforce; by=",                    // by: empty,
		"v=STSCFG1; mode=enforce; by=Autopilot",           // case-sensitive,
		"v=STSCFG1; mode=enforce; by=operator",            // only the known value,
		"v=STSCFG1; by=autopilot; by=autopilot",           // once,
		"v=STSCFG1; off; by=autopilot",                    // not beside off
		"v=STSCFG1; mode=enforce; by=autopilot mx=a.test", //
	} {
		if s, err := ParseSettings(txt); err == nil {
			t.Errorf("ParseSettings(%q) accepted it as %+v", txt, s)
		}
	}
}

func TestSettingsString(t *testing.T) {
	for _, s := range []Settings{
		{Off: true},
		{Mode: ModeEnforce, By: ByAutopilot},
		{Mode: ModeTesting, MaxAge: 0, HasMaxAge: true},
		{MX: []string{"*.mail.example.net", "mx.example.com"}},
		{Mode: ModeNone, MaxAge: 86400, HasMaxAge: true, MX: []string{"mx.example.com"}, By: ByAutopilot},
	} {
		got, err := ParseSettings(s.String())
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("ParseSettings(%q) = %+v, %v; want %+v", s.String(), got, err, s)
		}
	}
	if got, want := (Settings{Mode: ModeEnforce, By: ByAutopilot}).String(), "v=STSCFG1; mode=enforce; by=autopilot"; got != want {
		t.Errorf("the autopilot's record: %q, want %q", got, want)
	}
}

func TestIsSettingsRecord(t *testing.T) {
	for txt, want := range map[string]bool{
		"v=STSCFG1; off":       true,
		"v=STSCFG1 ; bad":      true,
		"v=STSCFG1\toff":       true,
		"v=STSCFG1":            false,
		"v=STSCFG10; off":      false,
		"v=STSv1; id=1":        false,
		"site-verification=ab": false,
	} {
		if got := IsSettingsRecord(txt); got != want {
			t.Errorf("IsSettingsRecord(%q) = %t, want %t", txt, got, want)
		}
	}
}

func TestSelectSettings(t *testing.T) {
	for _, tc := range []struct {
		txts    []string
		want    Settings
		invalid bool
	}{
		{nil, Settings{}, false},
		{[]string{"site-verification=ab", "v=STSv1; id=1"}, Settings{}, false},
		{[]string{"site-verification=ab", "v=STSCFG1; mode=none"}, Settings{Mode: ModeNone}, false},
		{[]string{"v=STSCFG1; mode=none", "v=STSCFG1; mode=none"}, Settings{}, true},
		{[]string{"v=STSCFG1; mode=none", "v=STSCFG1; max_age=1"}, Settings{}, true},
		{[]string{"v=STSCFG1; mode=bad"}, Settings{}, true},
	} {
		got, err := SelectSettings(tc.txts)
		if (err != nil) != tc.invalid || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SelectSettings(%q) = %+v, %v; want %+v, invalid %t", tc.txts, got, err, tc.want, tc.invalid)
		}
	}
}

func TestSettingsPolicy(t *testing.T) {
	hosts := []string{"MX2.example.com.", "mx1.example.com"}
	for _, tc := range []struct {
		settings string
		want     Policy
	}{
		{"", Policy{ModeTesting, []string{"mx1.example.com", "mx2.example.com"}, 604800}},
		{"v=STSCFG1; mode=testing; max_age=604800", Policy{ModeTesting, []string{"mx1.example.com", "mx2.example.com"}, 604800}},
		{"v=STSCFG1; mode=enforce", Policy{ModeEnforce, []string{"mx1.example.com", "mx2.example.com"}, 604800}},
		{"v=STSCFG1; mode=none; max_age=86400", Policy{ModeNone, []string{"mx1.example.com", "mx2.example.com"}, 86400}},
		{"v=STSCFG1; mx=mx2.example.com; mx=*.mail.example.net; mx=MX0.example.com",
			Policy{ModeTesting, []string{"*.mail.example.net", "mx0.example.com", "mx1.example.com", "mx2.example.com"}, 604800}},
	} {
		var s Settings
		if tc.settings != "" {
			var err error
			if s, err = ParseSettings(tc.settings); err != nil {
				t.Fatal(err)
			}
		}
		in := slices.Clone(hosts)
		p, err := s.Policy(ModeTesting, in, 604800)
		if err != nil || !reflect.DeepEqual(p, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.settings, p, err, tc.want)
		}
		if !slices.Equal(in, hosts) {
			t.Errorf("%q: the hosts passed in changed to %q", tc.settings, in)
		}
	}
	// Settings that state the defaults publish the same id as none.
	plain, _ := Settings{}.Policy(ModeTesting, hosts, 604800)
	same, _ := Settings{Mode: ModeTesting, MaxAge: 604800, HasMaxAge: true, MX: []string{"mx1.example.com"}}.Policy(ModeTesting, hosts, 604800)
	if plain.ID() != same.ID() {
		t.Errorf("settings stating the defaults changed the id")
	}
}
