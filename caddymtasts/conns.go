package caddymtasts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bounds of the idle connections kept per DNS server.
const (
	maxIdleConns = 16
	// Shorter than the idle timeout of DNS servers (CoreDNS and miekg/dns
	// close idle TCP connections after 8s), so that a reused connection is
	// rarely one the server is closing.
	maxIdleTime = 5 * time.Second
)

// connPool keeps TCP connections to one DNS server open between lookups:
// dialing and closing a connection for every policy request costs several
// times the lookup itself. RFC 7766 §6.2.1 lets a client send many queries
// over one connection. The pool holds connections, never answers: every
// lookup still sends its own query after its request arrived.
type connPool struct {
	addr string

	mu     sync.Mutex
	idle   []idleConn // most recently used last
	closed bool
}

type idleConn struct {
	conn  *dns.Conn
	since time.Time
}

// exchange sends q over an idle connection, or a new one, and reads the
// answer by deadline. A reused connection the server has meanwhile closed
// fails at once; the query is then sent once more over a new connection.
func (p *connPool) exchange(ctx context.Context, deadline time.Time, q *dns.Msg) (*dns.Msg, error) {
	if conn := p.get(); conn != nil {
		resp, err := p.exchangeOn(conn, deadline, q)
		if err == nil || ctx.Err() != nil || !time.Now().Before(deadline) {
			return resp, err
		}
	}
	conn, err := p.dial(ctx, deadline)
	if err != nil {
		return nil, err
	}
	return p.exchangeOn(conn, deadline, q)
}

// exchangeOn does one exchange on conn, returning conn to the pool only if
// the exchange completed, so no connection with a late answer in flight is
// ever reused.
func (p *connPool) exchangeOn(conn *dns.Conn, deadline time.Time, q *dns.Msg) (*dns.Msg, error) {
	conn.SetDeadline(deadline)
	resp, err := exchangeConn(conn, q)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p.put(conn)
	return resp, nil
}

func exchangeConn(conn *dns.Conn, q *dns.Msg) (*dns.Msg, error) {
	if err := conn.WriteMsg(q); err != nil {
		return nil, err
	}
	resp, err := conn.ReadMsg()
	if err != nil {
		return nil, err
	}
	if resp.Id != q.Id {
		return nil, fmt.Errorf("answer with id %d to query %d", resp.Id, q.Id)
	}
	return resp, nil
}

func (p *connPool) dial(ctx context.Context, deadline time.Time) (*dns.Conn, error) {
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &dns.Conn{Conn: c}, nil
}

// get returns the most recently used idle connection, closing those idle
// too long, or nil.
func (p *connPool) get() *dns.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		last := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(last.since) < maxIdleTime {
			return last.conn
		}
		last.conn.Close()
	}
	return nil
}

func (p *connPool) put(conn *dns.Conn) {
	conn.SetDeadline(time.Time{})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdleConns {
		conn.Close()
		return
	}
	p.idle = append(p.idle, idleConn{conn, time.Now()})
}

// close closes the idle connections; connections in use close when their
// exchange ends.
func (p *connPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for _, ic := range p.idle {
		errs = append(errs, ic.conn.Close())
	}
	p.idle = nil
	return errors.Join(errs...)
}
