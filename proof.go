package mtasts

import (
	"github.com/miekg/dns"

	"github.com/coredns-mtasts/mtasts/policy"
)

// proofNonce returns the nonce of the policy.ProofOption in r's OPT record,
// or nil if r carries none or one of a length outside the bounds.
func proofNonce(r *dns.Msg) []byte {
	opt := r.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		local, ok := o.(*dns.EDNS0_LOCAL)
		if !ok || local.Code != policy.ProofOption {
			continue
		}
		if n := len(local.Data); n < policy.ProofNonceMin || n > policy.ProofNonceMax {
			return nil
		}
		return local.Data
	}
	return nil
}

// vouchingWriter echoes a query's proof nonce in the OPT record of the
// answer written through it, whether the plugin synthesized that answer or
// passed the query on: either way the answer is the plugin's verdict on
// this very query (see policy.ProofOption).
type vouchingWriter struct {
	dns.ResponseWriter
	nonce []byte
}

// WriteMsg implements dns.ResponseWriter. The server sizes the OPT record
// and sets its DO bit from the query before the answer goes out; an OPT
// record the answer already holds keeps its options there.
func (w vouchingWriter) WriteMsg(m *dns.Msg) error {
	opt := m.IsEdns0()
	if opt == nil {
		opt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		m.Extra = append(m.Extra, opt)
	}
	opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: policy.ProofOption, Data: w.nonce})
	return w.ResponseWriter.WriteMsg(m)
}
