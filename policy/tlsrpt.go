package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// TLSRPTRecord returns the "_smtp._tls" TXT record of RFC 8460 §3 that asks
// senders to report to the given URIs: "v=TLSRPTv1; rua=URI[,URI...]". Each
// URI must be an absolute mailto: or https: URI with commas, exclamation
// points and semicolons percent-encoded, as §3 requires.
func TLSRPTRecord(rua []string) (string, error) {
	if len(rua) == 0 {
		return "", errors.New("no rua URI")
	}
	for _, u := range rua {
		if err := checkReportURI(u); err != nil {
			return "", err
		}
	}
	return TLSRPTPrefix + "; rua=" + strings.Join(rua, ","), nil
}

func checkReportURI(uri string) error {
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c >= 0x7f || c == ',' || c == '!' || c == ';' {
			return fmt.Errorf("rua URI %q: character %q must be percent-encoded", uri, c)
		}
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("rua URI %q: %w", uri, err)
	}
	switch {
	case u.Scheme == "mailto" && u.Opaque != "" && strings.Contains(u.Opaque, "@"):
		return nil
	case u.Scheme == "https" && u.Host != "":
		return nil
	}
	return fmt.Errorf("rua URI %q: want mailto:ADDRESS or https://HOST/PATH", uri)
}
