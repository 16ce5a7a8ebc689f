package caddymtasts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// smtpServer is an MX host for tests: it greets, answers EHLO (offering
// STARTTLS when it has a TLS config), STARTTLS and QUIT, and counts the
// connections it accepted. A silent one accepts connections and never
// says a word.
type smtpServer struct {
	addr      string
	tls       *tls.Config // nil: no STARTTLS
	refuseTLS bool        // offers STARTTLS, then refuses it
	silent    bool
	conns     atomic.Int64

	mu   sync.Mutex
	ehlo []string // the names given in EHLO
}

// startSMTP runs s on addr until the test ends.
func startSMTP(t *testing.T, addr string, s *smtpServer) *smtpServer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			wg.Go(func() { s.serve(conn) })
		}
	})
	return s
}

// serve talks SMTP on conn until the client says QUIT or leaves.
func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	// Ends a connection whose client never leaves, so the test can end.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if s.silent {
		io.Copy(io.Discard, conn)
		return
	}
	text := textproto.NewConn(conn)
	text.PrintfLine("220 mx.test ESMTP")
	for {
		line, err := text.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			s.mu.Lock()
			s.ehlo = append(s.ehlo, arg)
			s.mu.Unlock()
			if s.tls == nil {
				text.PrintfLine("250-mx.test\r\n250 PIPELINING")
			} else {
				text.PrintfLine("250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS")
			}
		case "STARTTLS":
			if s.tls == nil {
				text.PrintfLine("502 5.5.1 no STARTTLS here")
				continue
			}
			if s.refuseTLS {
				text.PrintfLine("454 4.7.0 TLS not available")
				continue
			}
			text.PrintfLine("220 2.0.0 go ahead")
			tlsConn := tls.Server(conn, s.tls)
			if tlsConn.Handshake() != nil {
				return
			}
			text = textproto.NewConn(tlsConn)
		case "QUIT":
			text.PrintfLine("221 2.0.0 bye")
			return
		default:
			text.PrintfLine("502 5.5.2 not here")
		}
	}
}

// ehloNames returns the names clients gave in EHLO.
func (s *smtpServer) ehloNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ehlo...)
}

// testCA is a certificate authority made for one test, its root in a PEM
// file for the checker's CA file.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key := newKey(t)
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "readiness test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(t.TempDir(), "ca.pem")}
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// serverTLS returns the TLS config of a server whose certificate the CA
// issued for names, valid from notBefore to notAfter.
func (ca *testCA) serverTLS(t *testing.T, names []string, notBefore, notAfter time.Time) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{newLeaf(t, names, notBefore, notAfter, ca.cert, ca.key)}}
}

// validTLS is serverTLS for a certificate valid for a year from an hour ago.
func (ca *testCA) validTLS(t *testing.T, names ...string) *tls.Config {
	t.Helper()
	return ca.serverTLS(t, names, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
}

// selfSignedTLS returns the TLS config of a server whose certificate for
// names signed itself.
func selfSignedTLS(t *testing.T, names ...string) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{newLeaf(t, names, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), nil, nil)}}
}

// newLeaf makes a server certificate for names, signed by parent with
// parentKey, or by itself when parent is nil.
func newLeaf(t *testing.T, names []string, notBefore, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key := newKey(t)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if parent == nil {
		parent, parentKey = template, key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
