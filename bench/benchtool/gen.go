package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/coredns-mtasts/mtasts/policy"
)

// The policy every generated domain gets from mtasts with its defaults.
const (
	genMode   = policy.ModeTesting
	genMaxAge = 604800
)

// gen writes the zone files and query files of one benchmark data set:
//
//	base.zone    the zone: n mail domains, each with an A record, two MX
//	             records and the A records of its MX hosts
//	static.zone  base.zone plus a static "_mta-sts.D TXT" for every domain,
//	             with the id mtasts computes: the ceiling without mtasts
//	ids.tsv      each domain and its expected id
//	q-txt.txt    dnsperf queries: _mta-sts.D TXT for random domains
//	q-a.txt      dnsperf queries: D A for random domains
func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	dir := fs.String("dir", ".", "output directory")
	origin := fs.String("zone", "bench.test.", "zone origin")
	n := fs.Int("n", 1000, "mail domains in the zone")
	q := fs.Int("queries", 100000, "lines in each query file")
	seed := fs.Uint64("seed", 1, "random seed of the query files")
	fs.Parse(args)
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	base, err := create(filepath.Join(*dir, "base.zone"))
	if err != nil {
		return err
	}
	static, err := create(filepath.Join(*dir, "static.zone"))
	if err != nil {
		return err
	}
	ids, err := create(filepath.Join(*dir, "ids.tsv"))
	if err != nil {
		return err
	}
	header := fmt.Sprintf("$ORIGIN %s\n$TTL 3600\n@ IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n", *origin)
	base.WriteString(header)
	static.WriteString(header)
	for i := range *n {
		d := domainLabel(i)
		fqdn := d + "." + *origin
		p, err := generatedPolicy(fqdn)
		if err != nil {
			return err
		}
		id := p.ID()
		rrs := fmt.Sprintf("%[1]s IN A 192.0.2.%[2]d\n%[1]s IN MX 10 mx1.%[1]s\n%[1]s IN MX 20 mx2.%[1]s\nmx1.%[1]s IN A 198.51.100.%[2]d\nmx2.%[1]s IN A 203.0.113.%[2]d\n", d, i%250+1)
		base.WriteString(rrs)
		static.WriteString(rrs)
		fmt.Fprintf(static, "_mta-sts.%s IN TXT \"%s\"\n", d, policy.Record{ID: id}.String())
		fmt.Fprintf(ids, "%s\t%s\n", fqdn, id)
	}
	rng := rand.New(rand.NewPCG(*seed, 0))
	qtxt, err := create(filepath.Join(*dir, "q-txt.txt"))
	if err != nil {
		return err
	}
	qa, err := create(filepath.Join(*dir, "q-a.txt"))
	if err != nil {
		return err
	}
	for range *q {
		fmt.Fprintf(qtxt, "_mta-sts.%s.%s TXT\n", domainLabel(rng.IntN(*n)), *origin)
		fmt.Fprintf(qa, "%s.%s A\n", domainLabel(rng.IntN(*n)), *origin)
	}
	for _, f := range []*file{base, static, ids, qtxt, qa} {
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// domainLabel names the i-th generated mail domain.
func domainLabel(i int) string { return fmt.Sprintf("c%06d", i) }

type file struct {
	*bufio.Writer
	f *os.File
}

func create(name string) (*file, error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	return &file{bufio.NewWriterSize(f, 1<<16), f}, nil
}

func (f *file) Close() error {
	if err := f.Flush(); err != nil {
		f.f.Close()
		return err
	}
	return f.f.Close()
}

// generatedPolicy is the policy mtasts publishes for a generated mail domain:
// the one gen writes into the zone, with MX hosts mx1 and mx2 below it.
func generatedPolicy(domain string) (policy.Policy, error) {
	return policy.New(genMode, []string{"mx1." + domain, "mx2." + domain}, genMaxAge)
}
