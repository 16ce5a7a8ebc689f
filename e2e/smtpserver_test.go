//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// mxServer is an MX host on port 25: it greets, offers STARTTLS, presents
// its certificate and says goodbye, and notes the names given in EHLO.
type mxServer struct {
	listener net.Listener
	tls      *tls.Config
	running  sync.WaitGroup

	mu   sync.Mutex
	ehlo []string
}

// startMXServer serves SMTP on ip:25 until the step ends.
func startMXServer(t *testing.T, ip string, cert tls.Certificate) *mxServer {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "25"))
	if err != nil {
		t.Fatal(err)
	}
	m := &mxServer{listener: l, tls: &tls.Config{Certificates: []tls.Certificate{cert}}}
	t.Cleanup(m.stop)
	m.running.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			m.running.Go(func() { m.serve(conn) })
		}
	})
	return m
}

// stop closes the listener and waits for the connections to end; a
// second stop does nothing more.
func (m *mxServer) stop() {
	m.listener.Close()
	m.running.Wait()
}

func (m *mxServer) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	text := textproto.NewConn(conn)
	text.PrintfLine("220 e2e ESMTP")
	for {
		line, err := text.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			m.mu.Lock()
			m.ehlo = append(m.ehlo, arg)
			m.mu.Unlock()
			text.PrintfLine("250-e2e\r\n250 STARTTLS")
		case "STARTTLS":
			text.PrintfLine("220 2.0.0 go ahead")
			tlsConn := tls.Server(conn, m.tls)
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

// ehloNames are the names clients gave in EHLO, sorted, without repeats.
func (m *mxServer) ehloNames() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := slices.Clone(m.ehlo)
	slices.Sort(names)
	return strings.Join(slices.Compact(names), " ")
}

// mxCA is the CA of the MX hosts' certificates: the checks are given its
// root as their CA file, as a provider with a private CA would.
type mxCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newMXCA makes the CA and writes its root to file.
func newMXCA(t *testing.T, file string) *mxCA {
	ca := &mxCA{}
	der := ca.sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "e2e MX CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	})
	cert, err := x509.ParseCertificate(der.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	ca.cert, ca.key = cert, der.PrivateKey.(*ecdsa.PrivateKey)
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue returns a server certificate for name, valid from notBefore to
// notAfter.
func (ca *mxCA) issue(t *testing.T, name string, notBefore, notAfter time.Time) tls.Certificate {
	return ca.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		DNSNames:    []string{name},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// sign signs template, with a new key, by the CA, or by itself while the
// CA has no certificate yet.
func (ca *mxCA) sign(t *testing.T, template *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if template.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(1<<62)); err != nil {
		t.Fatal(err)
	}
	parent, parentKey := ca.cert, ca.key
	if parent == nil {
		parent, parentKey = template, key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
