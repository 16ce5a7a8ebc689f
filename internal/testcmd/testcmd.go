// Package testcmd helps tests run this module's commands as a user would:
// built into a binary, as a separate process, on loopback ports.
package testcmd

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Run builds the command in the current directory, sets *binary to it, runs
// the tests and exits; call it from TestMain.
func Run(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "testcmd-")
	if err != nil {
		panic(err)
	}
	*binary = filepath.Join(dir, filepath.Base(mustGetwd()))
	if out, err := exec.Command("go", "build", "-o", *binary, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return wd
}

// FreePort returns a loopback port that was free for both UDP and TCP.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", u.LocalAddr().String())
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// QueryUntilUp asks the DNS server at addr, retrying until it answers.
func QueryUntilUp(t testing.TB, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, _, err := c.Exchange(m, addr)
		if err == nil {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no answer from %s: %v", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
