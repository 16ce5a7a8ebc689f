package caddymtasts

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/coredns-mtasts/mtasts/policy"
)

// pageFiles are the HTML templates of the dashboard and the public page,
// and their style sheet, which every page carries inline: a page loads
// nothing else, so it works without internet access and leaks no visit.
//
//go:embed pages
var pageFiles embed.FS

var styleSheet = mustRead("pages/style.css")

// pageCSP lets a page use its own inline style sheet and nothing else: no
// script, no image, font or frame from anywhere, no form sent elsewhere. A
// browser then enforces what the pages promise.
var pageCSP = contentSecurityPolicy(styleSheet)

func contentSecurityPolicy(css string) string {
	sum := sha256.Sum256([]byte(css))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}

var (
	tableTemplate  = parsePage("table.html")
	domainTemplate = parsePage("domain.html")
	publicTemplate = parsePage("public.html")
)

func mustRead(name string) string {
	data, err := pageFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(data)
}

// parsePage returns the page pages/name in the layout.
func parsePage(name string) *template.Template {
	return template.Must(template.New("layout.html").Funcs(pageFuncs).ParseFS(pageFiles, "pages/layout.html", "pages/"+name))
}

var pageFuncs = template.FuncMap{
	"styleSheet": func() template.CSS { return template.CSS(styleSheet) },
	"comma":      comma,
	"date":       func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"datetime":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"minusOne":   func(n int) int { return n - 1 },
	"certClass":  certificateClass,
	"modeMeaning": func(m policy.Mode) string {
		switch m {
		case policy.ModeEnforce:
			return "sending servers deliver mail for this domain only to the listed hosts, over TLS with a valid certificate, or not at all."
		case policy.ModeTesting:
			return "sending servers report problems with TLS to the domain, and deliver anyway."
		}
		return "the policy is being withdrawn: sending servers may forget it."
	},
}

// comma writes a count with thousands separators.
func comma(n any) string {
	switch n := n.(type) {
	case int:
		return humanize.Comma(int64(n))
	case int64:
		return humanize.Comma(n)
	case uint32:
		return humanize.Comma(int64(n))
	}
	return fmt.Sprint(n)
}

// certificateClass marks a certificate that has expired, or that CertMagic
// should have renewed by now (it renews in the last third of a 90-day
// certificate's life, so a few weeks left means renewals fail).
func certificateClass(daysLeft int) string {
	switch {
	case daysLeft < 0:
		return "bad"
	case daysLeft < 14:
		return "warn"
	}
	return ""
}

// wantsJSON reports whether the request asks for JSON: ?format=json, or
// an Accept header that names application/json before text/html.
func wantsJSON(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "json"
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		switch mediaType, _, _ := mime.ParseMediaType(strings.TrimSpace(part)); mediaType {
		case "application/json":
			return true
		case "text/html":
			return false
		}
	}
	return false
}

// writePage answers 200 with the page t makes of data, or with data as
// JSON; rendered in full first, so that an error is a 500, not half a page.
func writePage(w http.ResponseWriter, r *http.Request, t *template.Template, data any, asJSON bool) error {
	var b bytes.Buffer
	contentType := "text/html; charset=utf-8"
	var err error
	if asJSON {
		contentType = "application/json"
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		err = enc.Encode(data)
	} else {
		err = t.Execute(&b, data)
	}
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Length", strconv.Itoa(b.Len()))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", pageCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		// The status is out: a failed write has no one left to tell.
		_, _ = w.Write(b.Bytes())
	}
	return nil
}
