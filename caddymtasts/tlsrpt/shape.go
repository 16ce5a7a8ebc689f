package tlsrpt

import "fmt"

// Bounds of a report's JSON, checked before it is decoded. A report nests
// five deep (report, policies, policy, failure-details, detail); senders'
// extensions may add a few levels. The element count (array elements and
// object members, all levels together) bounds the work and memory of
// decoding: what a body within the size limits could otherwise pack into
// millions of tiny values. A real report has tens to a few thousand.
const (
	maxDepth    = 16
	maxElements = 200_000
)

// checkShape fails with ErrMalformed if data nests arrays and objects
// deeper than maxDepth, and with ErrTooLarge if they hold more than
// maxElements elements. It only counts brackets and commas outside strings;
// whether data is JSON at all is for the decoder to find out.
func checkShape(data []byte) error {
	depth, elements := 0, 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped character, '"' included
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > maxDepth {
				return fmt.Errorf("%w: JSON nested deeper than %d", ErrMalformed, maxDepth)
			}
			elements++
		case '}', ']':
			depth--
		case ',':
			elements++
		}
		if elements > maxElements {
			return fmt.Errorf("%w: more than %d JSON elements", ErrTooLarge, maxElements)
		}
	}
	return nil
}
