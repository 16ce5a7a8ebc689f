package caddymtasts

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards TCP connections to a DNS server and keeps count, so
// tests can see how the lookups use connections.
type tcpProxy struct {
	addr string

	mu       sync.Mutex
	accepted int
	open     map[net.Conn]bool
}

func startProxy(t *testing.T, upstream string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: l.Addr().String(), open: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(c, upstream)
		}
	}()
	t.Cleanup(func() { l.Close(); p.dropAll() })
	return p
}

func (p *tcpProxy) forward(c net.Conn, upstream string) {
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.accepted++
	p.open[c] = true
	p.mu.Unlock()
	go func() {
		io.Copy(u, c) // until the client closes
		u.Close()
	}()
	io.Copy(c, u) // until either side closes
	c.Close()
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

// counts returns how many connections were accepted and how many are open.
func (p *tcpProxy) counts() (accepted, open int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted, len(p.open)
}

// dropAll closes every open connection, as a server does with idle ones.
func (p *tcpProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		c.Close()
	}
}

func TestLookupsShareAConnectionButNoAnswers(t *testing.T) {
	d := startDNS(t)
	proxy := startProxy(t, d.addr)
	s := newSource(t, 2*time.Second, proxy.addr)
	ctx := context.Background()
	for i := range 10 {
		mx := []string{"mx1", "mx2"}[i%2]
		d.setMX(t, i+2, mx)
		body, err := s.lookup(ctx, "example.com")
		if want := expectedPolicy(t, mx+".example.com").Encode(); err != nil || !bytes.Equal(body, want) {
			t.Fatalf("lookup %d, right after the MX became %s: %q, %v", i, mx, body, err)
		}
	}
	if accepted, open := proxy.counts(); accepted != 1 || open != 1 {
		t.Errorf("10 lookups used %d connections, %d open; want 1, kept open", accepted, open)
	}

	proxy.dropAll() // the server closes the idle connection
	if _, err := s.lookup(ctx, "example.com"); err != nil {
		t.Fatalf("lookup after the server closed the connection: %v", err)
	}
	if accepted, _ := proxy.counts(); accepted != 2 {
		t.Errorf("%d connections accepted, want a second one after the first was closed", accepted)
	}

	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	proxy.waitOpen(t, 0)
}

// waitOpen waits until at most max connections are open: the proxy sees a
// close a moment after the client made it.
func (p *tcpProxy) waitOpen(t *testing.T, max int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, open := p.counts(); open > max; _, open = p.counts() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want at most %d", open, max)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentLookupsKeepABoundedPool(t *testing.T) {
	d := startDNS(t)
	proxy := startProxy(t, d.addr)
	s := newSource(t, 5*time.Second, proxy.addr)
	want := expectedPolicy(t, "mx1.example.com").Encode()
	var wg sync.WaitGroup
	for range 4 * maxIdleConns {
		wg.Go(func() {
			if body, err := s.lookup(context.Background(), "example.com"); err != nil || !bytes.Equal(body, want) {
				t.Errorf("concurrent lookup: %q, %v", body, err)
			}
		})
	}
	wg.Wait()
	if idle := len(s.pools[0].idle); idle > maxIdleConns {
		t.Errorf("%d idle connections kept, want at most %d", idle, maxIdleConns)
	}
	proxy.waitOpen(t, maxIdleConns)
}
