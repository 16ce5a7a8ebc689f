// Package reporttest makes TLS report bodies for the tests and benchmarks
// of caddymtasts and its package tlsrpt.
package reporttest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
)

// Gzip returns data gzipped, as senders post reports.
func Gzip(data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data) // writes to a bytes.Buffer do not fail
	zw.Close()
	return b.Bytes()
}

// Bomb returns mib MiB of zeros, gzipped: about a thousandth of that.
func Bomb(mib int) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range mib {
		zw.Write(zeros)
	}
	zw.Close()
	return b.Bytes()
}

// Report returns the JSON of a report from organization with id about
// domain on day (YYYY-MM-DD), with one sts policy and details failure
// details, as a large sender's report about a domain whose MX hosts fail
// for many of its sending IPs looks. The IPs and counts vary as in real
// reports, so the JSON compresses about as well as theirs, eight- to
// tenfold.
func Report(organization, id, domain, day string, details int) []byte {
	var failures []string
	x := uint32(2463534242) // xorshift32: the same report every time
	for i := range details {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		failures = append(failures, fmt.Sprintf(`{
      "result-type": %q,
      "sending-mta-ip": "2001:db8:%x:%x::%x",
      "receiving-mx-hostname": "mx%d.%s",
      "receiving-ip": "203.0.113.%d",
      "failed-session-count": %d
    }`, resultTypes[x%uint32(len(resultTypes))], x>>16, x&0xffff, i, x%3+1, domain, x%256, x%97+1))
	}
	return fmt.Appendf(nil, `{
  "organization-name": %q,
  "date-range": {"start-datetime": "%sT00:00:00Z", "end-datetime": "%sT23:59:59Z"},
  "contact-info": "tlsrpt@sender.example",
  "report-id": %q,
  "policies": [{
    "policy": {
      "policy-type": "sts",
      "policy-string": ["version: STSv1", "mode: testing", "mx: mx1.%s", "max_age: 604800"],
      "policy-domain": %q,
      "mx-host": ["mx1.%s"]
    },
    "summary": {"total-successful-session-count": 100000, "total-failure-session-count": %d},
    "failure-details": [%s]
  }]
}
`, organization, day, day, id, domain, domain, domain, 100*details, strings.Join(failures, ", "))
}

var resultTypes = []string{"certificate-expired", "starttls-not-supported", "certificate-host-mismatch", "validation-failure"}

// GzipOfSize returns the smallest Report with the given fields whose gzip
// is at least size bytes, gzipped.
func GzipOfSize(organization, id, domain, day string, size int) []byte {
	for details := 1; ; details++ {
		if z := Gzip(Report(organization, id, domain, day, details)); len(z) >= size {
			return z
		}
	}
}
