package tlsrpt

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/coredns-mtasts/mtasts/caddymtasts/internal/reporttest"
)

var testLimits = Limits{MaxBodySize: DefaultMaxBodySize, MaxReportSize: DefaultMaxReportSize}

func TestReadBodyGzipOrJSON(t *testing.T) {
	report, err := os.ReadFile(filepath.Join("testdata", "rfc8460-appendix-b.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"JSON": report, "gzip": reporttest.Gzip(report)} {
		for _, length := range []int64{-1, int64(len(body))} {
			got, err := ReadBody(bytes.NewReader(body), length, testLimits)
			if err != nil || !bytes.Equal(got, report) {
				t.Errorf("%s, length %d: got %d bytes, %v", name, length, len(got), err)
			}
		}
		// A reader that returns one byte at a time, and the data with EOF.
		got, err := ReadBody(iotest.DataErrReader(iotest.OneByteReader(bytes.NewReader(body))), -1, testLimits)
		if err != nil || !bytes.Equal(got, report) {
			t.Errorf("%s, byte by byte: got %d bytes, %v", name, len(got), err)
		}
	}
}

// A gzip bomb: 1 MiB of zeros compresses to about 1 KiB, so 64 KiB of body
// stand for 64 MiB of JSON, four times the limit. Reading stops one byte
// past the limit.
func TestReadBodyStopsAGzipBomb(t *testing.T) {
	bomb := reporttest.Bomb(64)
	if len(bomb) > DefaultMaxBodySize {
		t.Fatalf("the bomb is %d bytes compressed, over the body limit", len(bomb))
	}
	allocs := testing.AllocsPerRun(1, func() {
		if _, err := ReadBody(bytes.NewReader(bomb), int64(len(bomb)), testLimits); !errors.Is(err, ErrTooLarge) {
			t.Errorf("got %v, want %v", err, ErrTooLarge)
		}
	})
	// The trailer claims 64 MiB, clamped to the limit: one buffer of 16 MiB
	// and the decompressor's state.
	if allocs > 20 {
		t.Errorf("%v allocations", allocs)
	}
}

func TestReadBodyLimits(t *testing.T) {
	small := Limits{MaxBodySize: 100, MaxReportSize: 1000}
	json := bytes.Repeat([]byte(" "), 1001)
	for _, tc := range []struct {
		name   string
		body   []byte
		length int64
		limits Limits
		err    error
	}{
		{"declared length over the body limit", []byte("{}"), 101, small, ErrTooLarge},
		{"body over the limit, no length declared", bytes.Repeat([]byte(" "), 101), -1, small, ErrTooLarge},
		{"body over the limit, a shorter length declared", bytes.Repeat([]byte(" "), 101), 50, small, ErrTooLarge},
		{"JSON over the report limit", json, -1, Limits{MaxBodySize: 2000, MaxReportSize: 1000}, ErrTooLarge},
		{"gzip over the report limit", reporttest.Gzip(json), -1, small, ErrTooLarge},
		{"gzip header only", []byte{0x1f, 0x8b}, -1, small, ErrMalformed},
		{"truncated gzip", reporttest.Gzip([]byte(`{"organization-name": "o"}`))[:20], -1, small, ErrMalformed},
	} {
		if _, err := ReadBody(bytes.NewReader(tc.body), tc.length, tc.limits); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
	if got, err := ReadBody(bytes.NewReader(json[:1000]), -1, Limits{MaxBodySize: 1000, MaxReportSize: 1000}); err != nil || len(got) != 1000 {
		t.Errorf("at the limits: got %d bytes, %v", len(got), err)
	}
}

func TestReadBodyCorruptGzip(t *testing.T) {
	z := reporttest.Gzip([]byte(`{"organization-name": "o"}`))
	z[len(z)-8] ^= 0xff // the CRC-32
	if _, err := ReadBody(bytes.NewReader(z), -1, testLimits); !errors.Is(err, ErrMalformed) {
		t.Errorf("got %v, want %v", err, ErrMalformed)
	}
	failing := io.MultiReader(bytes.NewReader([]byte("{")), iotest.ErrReader(io.ErrClosedPipe))
	if _, err := ReadBody(failing, -1, testLimits); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("a failing reader: got %v", err)
	}
}
