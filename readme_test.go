package mtasts

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
	coretest "github.com/coredns/coredns/test"
)

// This is a port of CoreDNS's own README check (test/readme_test.go in
// github.com/coredns/coredns): the plugin's README.md has CoreDNS's sections
// in CoreDNS's order, and every example Corefile in it starts a server. The
// Corefiles of docs/overview.md (the deployment guide) are started too.

// readmeSections are the sections of the README, in this order. CoreDNS asks
// for the first four (plugin.md), and for Metrics when the plugin exports
// metrics; See Also is where its in-tree plugins end.
var readmeSections = []string{"Name", "Description", "Syntax", "Examples", "Metrics", "See Also"}

// readmeFixtures are the files the example Corefiles name, keyed by the path
// as the examples spell it; the test writes them to a temporary directory and
// points the Corefile there. A path ending in / is a directory.
var readmeFixtures = map[string]string{
	"db.example.com":                    readmeZone("example.com"),
	"db.example.net":                    readmeZone("example.net"),
	"/etc/coredns/Kprovider.key":        readmeKeyPub,
	"/etc/coredns/Kprovider.private":    readmeKeyPriv,
	"/etc/coredns/zones/db.example.org": readmeZone("example.org"),
}

// The key pair of CoreDNS's readme test, owned by the root: the example
// signs the server block ".", and dnssec refuses a key that can sign none of
// its zones.
const (
	readmeKeyPub = `. IN DNSKEY 256 3 13 eNMYFZYb6e0oJOV47IPo5f/UHy7wY9aBebotvcKakIYLyyGscBmXJQhbKLt/LhrMNDE2Q96hQnI5PdTBeOLzhQ==
`
	readmeKeyPriv = `Private-key-format: v1.3
Algorithm: 13 (ECDSAP256SHA256)
PrivateKey: f03VplaIEA+KHI9uizlemUSbUJH86hPBPjmcUninPoM=
`
)

func readmeZone(origin string) string {
	return fmt.Sprintf(`$ORIGIN %s.
$TTL 3600
@    IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@    IN NS  ns1
@    IN MX  10 mx1
ns1  IN A   192.0.2.53
mx1  IN A   192.0.2.25
`, origin)
}

// readmeCorefile is one ~~~ corefile block of a markdown file.
type readmeCorefile struct {
	file string
	line int // of the opening fence
	body string
}

func TestReadme(t *testing.T) {
	t.Run("sections", func(t *testing.T) {
		if err := readmeSectionsInOrder("README.md"); err != nil {
			t.Error(err)
		}
	})
	t.Run("commands first", func(t *testing.T) {
		if err := readmeCommandsFirst("README.md"); err != nil {
			t.Error(err)
		}
	})

	dir := t.TempDir()
	for name, content := range readmeFixtures {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Like upstream, examples without a port get dnsserver.Port; 0 lets the
	// kernel choose one, so the test needs no free port and no root.
	defaultPort := dnsserver.Port
	dnsserver.Port = "0"
	t.Cleanup(func() { dnsserver.Port = defaultPort })

	for _, file := range []string{"README.md", "docs/overview.md"} {
		examples, err := readmeCorefiles(file)
		if err != nil {
			t.Fatal(err)
		}
		if file == "README.md" && len(examples) == 0 {
			t.Errorf("%s has no ~~~ corefile example", file)
		}
		for _, ex := range examples {
			t.Run(fmt.Sprintf("%s:%d", ex.file, ex.line), func(t *testing.T) {
				startReadmeCorefile(t, ex, dir)
			})
		}
	}
}

// startReadmeCorefile starts CoreDNS from the example, with the fixtures of dir
// in place of the files it names, and stops it.
func startReadmeCorefile(t *testing.T, ex readmeCorefile, dir string) {
	corefile, err := readmeWithFixtures(ex.body, dir)
	if err != nil {
		t.Fatalf("%s:%d: %v", ex.file, ex.line, err)
	}
	i, err := coretest.CoreDNSServer(corefile)
	if err != nil {
		t.Fatalf("%s:%d: the example Corefile does not start: %v\n%s", ex.file, ex.line, err, ex.body)
	}
	defer i.ShutdownCallbacks()
	defer i.Stop()
	if len(i.Servers()) == 0 {
		t.Errorf("%s:%d: the example Corefile starts no server\n%s", ex.file, ex.line, ex.body)
	}
}

// readmeWithFixtures replaces each path the Corefile names by its fixture in
// dir. A path without a fixture is an error: file (which reloads by default)
// and auto only warn about a missing file or directory, and the example would
// start untested.
func readmeWithFixtures(corefile, dir string) (string, error) {
	var b strings.Builder
	for line := range strings.Lines(corefile) {
		if path, ok := readmePath(strings.Fields(line)); ok {
			if !readmeHasFixture(path) {
				return "", fmt.Errorf("the example names %s, which the test has no fixture for", path)
			}
			line = strings.Replace(line, path, filepath.Join(dir, filepath.FromSlash(path)), 1)
		}
		b.WriteString(line)
	}
	return b.String(), nil
}

// readmePath returns the path a Corefile line names, if any: that of
// "file DBFILE", "key file KEY" (dnssec) or "directory DIR" (auto).
func readmePath(fields []string) (string, bool) {
	switch {
	case len(fields) >= 2 && (fields[0] == "file" || fields[0] == "directory"):
		return fields[1], true
	case len(fields) >= 3 && fields[0] == "key" && fields[1] == "file":
		return fields[2], true
	}
	return "", false
}

// readmeHasFixture tells whether path is a fixture, a directory holding one,
// or the base name of a dnssec key pair (Kname for Kname.key and .private).
func readmeHasFixture(path string) bool {
	for name := range readmeFixtures {
		if name == path || name == path+".key" || strings.HasPrefix(name, path+"/") {
			return true
		}
	}
	return false
}

// readmeSectionsInOrder is upstream's sectionsFromReadme, with our list of
// sections: it errs unless the README has each of them, as a ## heading, in
// order, and a first line "# mtasts" (plugin.md: the title is the plugin's
// name).
func readmeSectionsInOrder(readme string) error {
	f, err := os.Open(readme)
	if err != nil {
		return err
	}
	defer f.Close()

	s := bufio.NewScanner(f)
	if !s.Scan() || s.Text() != "# mtasts" {
		return fmt.Errorf("%s: the first line is %q, want %q", readme, s.Text(), "# mtasts")
	}
	found := 0
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "## Also See") {
			return fmt.Errorf("%s: please use %q instead of %q", readme, "See Also", "Also See")
		}
		if found < len(readmeSections) && line == "## "+readmeSections[found] {
			found++
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	if found != len(readmeSections) {
		return fmt.Errorf("%s: sections incomplete or in the wrong order: no ## %s after ## %s; want %s",
			readme, readmeSections[found], strings.Join(readmeSections[:found], ", ## "), strings.Join(readmeSections, ", "))
	}
	return nil
}

// readmeCommandsFirst errs unless the README's first code block, before any
// section, is the product's two commands: run the demo, run the tests.
func readmeCommandsFirst(readme string) error {
	data, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	text := string(data)
	start := strings.Index(text, "\n```")
	if section := strings.Index(text, "\n## "); start < 0 || section < start {
		return fmt.Errorf("%s: no code block before the first section", readme)
	}
	block, _, _ := strings.Cut(text[start+len("\n```"):], "\n```")
	lines := strings.Split(block, "\n")
	want := []string{"sh", "go run ./cmd/mtasts-demo ", "go test github.com/coredns-mtasts/mtasts/... "}
	if len(lines) != len(want) {
		return fmt.Errorf("%s: the first code block has %d lines, want the fence and the two commands:\n%s", readme, len(lines), block)
	}
	for i, prefix := range want {
		if !strings.HasPrefix(lines[i]+" ", prefix) {
			return fmt.Errorf("%s: line %d of the first code block is %q, want it to start %q", readme, i, lines[i], prefix)
		}
	}
	return nil
}

// readmeCorefiles returns the ~~~ corefile (or ``` corefile) blocks of a
// markdown file, like upstream's corefileFromReadme, also when they are
// indented in a list item.
func readmeCorefiles(file string) ([]readmeCorefile, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	var (
		blocks []readmeCorefile
		cur    *readmeCorefile
		indent string
	)
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && (trimmed == "~~~ corefile" || trimmed == "``` corefile"):
			cur = &readmeCorefile{file: file, line: n}
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
		case cur != nil && (trimmed == "~~~" || trimmed == "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: corefile block not closed", file, cur.line)
	}
	return blocks, nil
}
