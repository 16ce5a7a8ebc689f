package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// ids asks every server for the _mta-sts record of every domain in ids.tsv
// and checks that all servers publish the same id for each domain, and that
// it is the id the generator computed from the zone data. It prints one
// line, "ids: N/N identical on K servers", and fails on any difference.
func ids(args []string) error {
	fs := flag.NewFlagSet("ids", flag.ExitOnError)
	file := fs.String("file", "ids.tsv", "domains and expected ids")
	servers := fs.String("servers", "127.0.0.1:53", "comma-separated servers to compare")
	workers := fs.Int("workers", 16, "queries in flight per server")
	fs.Parse(args)
	wants, err := readIDs(*file)
	if err != nil {
		return err
	}
	addrs := strings.Split(*servers, ",")
	got := make([][]string, len(addrs)) // got[server][domain]
	var errs []error
	var mu sync.Mutex
	start := time.Now()
	for s, addr := range addrs {
		got[s] = make([]string, len(wants))
		next := make(chan int)
		var wg sync.WaitGroup
		for range *workers {
			wg.Go(func() {
				conn, err := dns.Dial("udp", addr)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					for range next {
					}
					return
				}
				defer conn.Close()
				for i := range next {
					id, err := askID(conn, wants[i].domain)
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: %w", addr, err))
						mu.Unlock()
					}
					got[s][i] = id
				}
			})
		}
		for i := range wants {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	same := 0
	var diffs []string
	for i, w := range wants {
		ok := true
		for s := range addrs {
			ok = ok && got[s][i] == w.id
		}
		if ok {
			same++
		} else if len(diffs) < 5 {
			var g []string
			for s := range addrs {
				g = append(g, got[s][i])
			}
			diffs = append(diffs, fmt.Sprintf("%s: want %s, got %v", w.domain, w.id, g))
		}
	}
	fmt.Printf("ids: %d/%d identical on %d servers and as computed from the zone (%.1fs)\n",
		same, len(wants), len(addrs), time.Since(start).Seconds())
	if len(errs) > 0 {
		return fmt.Errorf("%d lookups failed, first: %w", len(errs), errs[0])
	}
	if same != len(wants) {
		return errors.New("ids differ: " + strings.Join(diffs, "; "))
	}
	return nil
}

// want is a line of ids.tsv: a generated domain (a fully qualified name)
// and the id of its policy.
type want struct{ domain, id string }

// readIDs reads ids.tsv, which gen wrote.
func readIDs(name string) ([]want, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var wants []want
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		domain, id, _ := strings.Cut(sc.Text(), "\t")
		wants = append(wants, want{domain, id})
	}
	return wants, sc.Err()
}

// askID returns the id in the one v=STSv1 record at _mta-sts.domain.
func askID(conn *dns.Conn, domain string) (string, error) {
	q := new(dns.Msg)
	q.SetQuestion("_mta-sts."+domain, dns.TypeTXT)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMsg(q); err != nil {
		return "", err
	}
	for {
		resp, err := conn.ReadMsg()
		if err != nil {
			return "", err
		}
		if resp.Id != q.Id {
			continue // a late answer to an earlier, timed-out question
		}
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
			return "", fmt.Errorf("%s: rcode %s, %d answers", domain, dns.RcodeToString[resp.Rcode], len(resp.Answer))
		}
		txt, ok := resp.Answer[0].(*dns.TXT)
		if !ok {
			return "", fmt.Errorf("%s: answer is no TXT record", domain)
		}
		rec, err := policy.ParseRecord(strings.Join(txt.Txt, ""))
		return rec.ID, err
	}
}
