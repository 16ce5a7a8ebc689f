package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// contactTimeout bounds one first contact: CertMagic gives an on-demand
// issuance 180 s, and a contact may queue behind its internal rate limit.
const contactTimeout = 4 * time.Minute

// contact is the Go half of the cluster part of bench/run. It makes the
// first contact with every domain of ids.tsv, once each, as a sender
// fetching a new customer's policy would: a new TLS connection to the
// nodes in turn, at a bounded rate, trusting only the CA's root, and
// checks that the body hashes to the domain's id. Between them it makes
// handshakes for names that are not managed, which must be refused. It
// prints samples (KEY TAB VALUE) for the table.
//
// With -load it makes a handshake for every domain on every node instead,
// so that each node's certificate cache holds them all, and prints nothing
// but failures.
func contact(args []string) error {
	fs := flag.NewFlagSet("contact", flag.ExitOnError)
	idsFile := fs.String("ids", "ids.tsv", "domains and the ids of their policies, from gen")
	nodesFlag := fs.String("nodes", "127.0.0.11:443,127.0.0.12:443", "comma-separated HTTPS addresses of the Caddy nodes")
	rootFile := fs.String("root", "pebble-root.pem", "the root of the certificates the CA issues, the only trust anchor")
	rate := fs.Float64("rate", 2, "first contacts per second, over all nodes")
	others := fs.Int("others", 50, "names that are not managed, contacted among the domains")
	load := fs.Bool("load", false, "handshake for every domain on every node instead")
	fs.Parse(args)
	wants, err := readIDs(*idsFile)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(*rootFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", *rootFile)
	}
	nodes := strings.Split(*nodesFlag, ",")
	if *load {
		return loadAll(wants, nodes, roots)
	}
	return firstContacts(wants, nodes, roots, *rate, *others)
}

// firstContacts contacts every domain once, node after node, one every
// 1/rate seconds, and others names that are not managed spread among them.
func firstContacts(wants []want, nodes []string, roots *x509.CertPool, rate float64, others int) error {
	type result struct {
		took time.Duration
		err  error
	}
	results := make([]result, len(wants))
	refusals := make([]error, others)
	every := len(wants) / max(others, 1)
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i, w := range wants {
		if i > 0 {
			<-tick.C
		}
		node := nodes[i%len(nodes)]
		wg.Go(func() {
			began := time.Now()
			err := fetchPolicy(node, strings.TrimSuffix(w.domain, "."), w.id, roots)
			results[i] = result{time.Since(began), err}
		})
		if o := i / max(every, 1); i%max(every, 1) == 0 && o < others {
			wg.Go(func() { refusals[o] = expectRefusal(node, fmt.Sprintf("mta-sts.x%06d.test", o), roots) })
		}
	}
	wg.Wait()
	issued := time.Since(start)
	var took []float64
	var failures []error
	for i, r := range results {
		if r.err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", wants[i].domain, r.err))
			continue
		}
		took = append(took, r.took.Seconds())
	}
	for _, err := range refusals {
		if err != nil {
			failures = append(failures, err)
		}
	}
	slices.Sort(took)
	fmt.Printf("cluster.domains\t%d\ncluster.valid\t%d\ncluster.others\t%d\ncluster.refused\t%d\n",
		len(wants), len(took), others, others-countErrs(refusals))
	fmt.Printf("cluster.rate\t%g\ncluster.issue_secs\t%.1f\n", rate, issued.Seconds())
	if len(took) > 0 {
		fmt.Printf("cluster.first_p50\t%.2f\ncluster.first_p90\t%.2f\ncluster.first_max\t%.2f\n",
			took[len(took)/2], took[len(took)*9/10], took[len(took)-1])
	}
	return reportFailures(failures)
}

// loadAll makes a handshake for every domain on every node, eight at a
// time per node.
func loadAll(wants []want, nodes []string, roots *x509.CertPool) error {
	var mu sync.Mutex
	var failures []error
	for _, node := range nodes {
		next := make(chan want)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for w := range next {
					host := "mta-sts." + strings.TrimSuffix(w.domain, ".")
					if _, err := handshake(node, host, roots); err != nil {
						mu.Lock()
						failures = append(failures, fmt.Errorf("%s at %s: %w", host, node, err))
						mu.Unlock()
					}
				}
			})
		}
		for _, w := range wants {
			next <- w
		}
		close(next)
		wg.Wait()
	}
	return reportFailures(failures)
}

// fetchPolicy GETs the policy of domain at node on a new connection and
// checks that it hashes to id.
func fetchPolicy(node, domain, id string, roots *x509.CertPool) error {
	client := &http.Client{
		Timeout: contactTimeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, node)
			},
		},
	}
	resp, err := client.Get("https://mta-sts." + domain + "/.well-known/mta-sts.txt")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:])[:32]; got != id {
		return fmt.Errorf("body hashes to %s, want the id %s", got, id)
	}
	return nil
}

// handshake makes a TLS handshake with SNI host at node.
func handshake(node, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{ServerName: host, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), contactTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", node)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// expectRefusal checks that node refuses the handshake for host with an
// alert, as Caddy does for a name it may not have a certificate for.
func expectRefusal(node, host string, roots *x509.CertPool) error {
	_, err := handshake(node, host, roots)
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return nil
	}
	return fmt.Errorf("%s at %s: want the handshake refused, got %v", host, node, err)
}

func countErrs(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

// reportFailures prints the first few failures to stderr and returns an
// error counting them all.
func reportFailures(failures []error) error {
	if len(failures) == 0 {
		return nil
	}
	for _, err := range failures[:min(5, len(failures))] {
		fmt.Fprintln(os.Stderr, err)
	}
	return fmt.Errorf("%d failures", len(failures))
}
