package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// wait polls a DNS server until it answers the zone's SOA query
// authoritatively: CoreDNS has loaded the zone.
func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	server := fs.String("server", "127.0.0.1:53", "DNS server")
	zone := fs.String("zone", "bench.test.", "zone that must be loaded")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait")
	fs.Parse(args)
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(*zone), dns.TypeSOA)
	c := &dns.Client{Timeout: time.Second}
	for deadline := time.Now().Add(*timeout); ; {
		resp, _, err := c.Exchange(q, *server)
		if err == nil && resp.Rcode == dns.RcodeSuccess && resp.Authoritative && len(resp.Answer) == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not serve %s within %s (last: %v)", *server, *zone, *timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
