package mtasts

import clog "github.com/coredns/coredns/plugin/pkg/log"

// The tests run quiet; a test that reads the log sets its own output
// (captureLog).
func init() { clog.Discard() }
