package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

var (
	// ErrTooLarge means a report is over one of the limits: the body, the
	// JSON after gunzip, the number of JSON elements or of policy domains.
	ErrTooLarge = errors.New("TLS report too large")
	// ErrMalformed means a body is no report: not gzip of JSON nor JSON, JSON
	// nested too deeply, or a report without a required field.
	ErrMalformed = errors.New("malformed TLS report")
)

// Default limits. A real report is a few KiB: one policy domain, a handful
// of failure details. A sender with many failing sending IPs lists one
// failure detail each, about 200 bytes, so 16 MiB of JSON still holds some
// 80,000 of them; gzip shrinks such lists about tenfold, hence 1 MiB.
const (
	DefaultMaxBodySize   = 1 << 20
	DefaultMaxReportSize = 16 << 20
)

// Limits bound what ReadBody reads.
type Limits struct {
	MaxBodySize   int64 // the body as sent, gzip or not
	MaxReportSize int64 // the JSON, after gunzip
}

// gzipMagic starts every gzip stream (RFC 1952 §2.3.1).
var gzipMagic = []byte{0x1f, 0x8b}

// ReadBody reads a report as a sender posts it and returns the JSON.
// length is the length the sender declared (Content-Length), or -1: one
// over MaxBodySize fails at once, and otherwise it sizes the buffer.
//
// A body that starts with gzip's magic bytes is gunzipped, whatever its
// media type says: senders label gzip as application/tlsrpt+json,
// application/gzip or application/octet-stream too. Reading stops one byte
// past each limit, so a gzip bomb costs at most MaxReportSize bytes of
// output, never more; it fails with ErrTooLarge. A gzip stream that is cut
// short or corrupt fails with ErrMalformed; an error of r is returned as it
// is.
func ReadBody(r io.Reader, length int64, limits Limits) ([]byte, error) {
	if length > limits.MaxBodySize {
		return nil, fmt.Errorf("%w: a body of %d bytes, more than %d", ErrTooLarge, length, limits.MaxBodySize)
	}
	body, err := readAtMost(r, limits.MaxBodySize, length)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(body, gzipMagic) {
		if int64(len(body)) > limits.MaxReportSize {
			return nil, fmt.Errorf("%w: %d bytes of JSON, more than %d", ErrTooLarge, len(body), limits.MaxReportSize)
		}
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	report, err := readAtMost(zr, limits.MaxReportSize, gzipSizeHint(body))
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	return report, nil
}

// readAtMost reads r to its end, failing with ErrTooLarge once it has
// read more than limit bytes. The buffer starts at hint bytes (clamped to
// the limit) plus one, the byte in which the end of r shows, so a right
// hint costs one allocation; io.ReadAll would start small and double.
func readAtMost(r io.Reader, limit, hint int64) ([]byte, error) {
	r = io.LimitReader(r, limit+1)
	buf := make([]byte, 0, min(max(hint, 512), limit)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // let append pick the next size
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case int64(len(buf)) > limit:
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// gzipSizeHint is the size of the uncompressed data as a one-member gzip
// stream's trailer states it (ISIZE, RFC 1952 §2.3.1). Only a hint: the
// trailer is the sender's word, and readAtMost clamps it to the limit.
func gzipSizeHint(stream []byte) int64 {
	if len(stream) < 18 { // the smallest gzip stream: 10 bytes header, 8 trailer
		return 0
	}
	return int64(binary.LittleEndian.Uint32(stream[len(stream)-4:]))
}
