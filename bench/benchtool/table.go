package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// table prints the result of bench/run: for each comparison the median of
// each side over the rounds, the ratio of the medians, the range of the
// per-round ratios (each round ran both sides back to back), and the
// target. It asserts nothing: a missed target is reported, not an error.
func table(args []string) error {
	fs := flag.NewFlagSet("table", flag.ExitOnError)
	samplesFile := fs.String("samples", "samples.tsv", "samples written by bench/run")
	permFile := fs.String("permission", "", "output of go test -bench BenchmarkPermission")
	rounds := fs.Int("rounds", 0, "rounds per comparison")
	secs := fs.Int("secs", 0, "seconds per load run")
	domains := fs.Int("domains", 0, "domains in the DNS comparison zone")
	scales := fs.String("scales", "", "domain counts of the scale runs")
	elapsed := fs.Int("elapsed", 0, "seconds bench/run took")
	baseline := fs.String("baseline", "", "revision of the baseline (BENCH_BASELINE), if one ran")
	permBaseFile := fs.String("permission-baseline", "", "output of the permission benchmarks of the baseline")
	fs.Parse(args)

	s, err := readSamples(*samplesFile)
	if err != nil {
		return err
	}
	t := &tab{}
	t.section(fmt.Sprintf("DNS  %d domains in one zone; CoreDNS GOMAXPROCS=1 on cpu 1, dnsperf -T1 -c4 -q50 on cpu 0; %d rounds x %ds, interleaved; qps (server CPU us/query)", *domains, *rounds, *secs))
	t.compare(s, "b/a  _mta-sts TXT synthesized / static", "dns.b", "dns.a", "qps", ">= 0.85", 0.85)
	t.compare(s, "c    A with mtasts / without", "dns.c_with", "dns.c_without", "qps", ">= 0.97", 0.97)
	t.compare(s, "d/a  cache+mtasts / static", "dns.d", "dns.a", "qps", ">= 0.95", 0.95)

	if *baseline == "" {
		t.section(fmt.Sprintf("HTTPS  one Caddy (GOMAXPROCS=1) and the CoreDNS it asks share cpu 1, wrk -t1 -c10 on cpu 0; %d rounds x %ds; req/s (server CPU us/request, wrk CPU%%)", *rounds, *secs))
		t.compare(s, "keep-alive   mta_sts / respond", "https.ka.mtasts", "https.ka.respond", "rps", "-", 0)
		t.compare(s, "new TLS conn mta_sts / respond", "https.new.mtasts", "https.new.respond", "rps", ">= 0.9", 0.9)
	} else {
		t.section(fmt.Sprintf("HTTPS  current and baseline %s: two pairs of one Caddy (GOMAXPROCS=1) and the CoreDNS it asks, all on cpu 1, wrk -t1 -c10 on cpu 0; %d rounds x %ds, both pairs in every round; req/s (server CPU us/request, wrk CPU%%)", *baseline, *rounds, *secs))
		t.compare(s, "current  keep-alive   mta_sts / respond", "https.ka.mtasts", "https.ka.respond", "rps", "-", 0)
		t.compare(s, "baseline keep-alive   mta_sts / respond", "https.base.ka.mtasts", "https.base.ka.respond", "rps", "-", 0)
		t.compare(s, "current  new TLS conn mta_sts / respond", "https.new.mtasts", "https.new.respond", "rps", ">= 0.9", 0.9)
		t.compare(s, "baseline new TLS conn mta_sts / respond", "https.base.new.mtasts", "https.base.new.respond", "rps", ">= 0.9", 0.9)
		t.ratios(s, "keep-alive   ratio, current / baseline", "https.ka", "https.base.ka")
		t.ratios(s, "new TLS conn ratio, current / baseline", "https.new", "https.base.new")
		t.compare(s, "keep-alive   mta_sts, current / baseline", "https.ka.mtasts", "https.base.ka.mtasts", "rps", "-", 0)
		t.compare(s, "new TLS conn mta_sts, current / baseline", "https.new.mtasts", "https.base.new.mtasts", "rps", "-", 0)
		t.compare(s, "new TLS conn respond, current / baseline", "https.new.respond", "https.base.new.respond", "rps", "control", 0)
	}

	if _, err := os.Stat(*permFile); err == nil {
		t.section("Permission check  go test -bench 'BenchmarkPermission|BenchmarkPolicyLookup' ./caddymtasts (our CoreDNS, a separate process, over TCP); medians over -count runs")
		if err := t.permission(*permFile); err != nil {
			return err
		}
		if _, err := os.Stat(*permBaseFile); err == nil && *baseline != "" {
			t.section(fmt.Sprintf("Permission check, current / baseline %s  the same benchmarks from each tree, one -count each per round, interleaved; medians over %d rounds", *baseline, *rounds))
			if err := t.permissionCompare(*permFile, *permBaseFile); err != nil {
				return err
			}
		}
	}

	for _, n := range strings.Fields(*scales) {
		t.section(fmt.Sprintf("Scale  %s domains in one zone (%d rounds x %ds)", n, (*rounds+1)/2, *secs))
		k := "scale." + n
		t.compare(s, "synthesized / static, random domains", k+".synth", k+".static", "qps", "-", 0)
		t.memory(s, "RSS after load, with / without mtasts", k+".rss.with", k+".rss.without", 1024, "<= 1.05", 1.05)
		t.memory(s, "RSS peak (VmHWM), with / without", k+".hwm.with", k+".hwm.without", 1024, "-", 0)
		t.memory(s, "RSS zone loaded, with / without", k+".rss_loaded.with", k+".rss_loaded.without", 1024, "-", 0)
		t.memory(s, "Go heap live after GC, with / without", k+".heap.with", k+".heap.without", 1, "<= 1.05", 1.05)
		ids := "missing"
		if v := s.raw[k+".ids"]; len(v) > 0 {
			ids = v[0]
		}
		t.row("ids identical on two instances", ids, "", "", "", "all", boolMark(ids != "" && idsAll(ids)))
	}
	if len(s.raw["cluster.domains"]) > 0 {
		t.cluster(s)
	}
	t.print()
	var notes []string
	for _, k := range s.order {
		if strings.HasSuffix(k, ".nomtasts.rcodes") {
			continue // without mtasts, _mta-sts names do not exist
		}
		if strings.HasSuffix(k, ".idle") {
			if xs := s.nums(k); len(xs) > 0 && slices.Max(xs) > 1 {
				notes = append(notes, fmt.Sprintf("%s (%% of a core the other pair used): %s", k, strings.Join(s.raw[k], " ")))
			}
			continue
		}
		if strings.HasSuffix(k, ".rcodes") || strings.HasSuffix(k, ".errors") || (strings.HasSuffix(k, ".lost") && !allZero(s.raw[k])) {
			notes = append(notes, fmt.Sprintf("%s: %s", k, strings.Join(s.raw[k], " ")))
		}
	}
	if len(notes) > 0 {
		fmt.Println("\nnotes (DNS answers other than NOERROR, lost queries, HTTP errors):")
		for _, n := range notes {
			fmt.Println("  " + n)
		}
	}
	if *elapsed > 0 {
		fmt.Printf("\nbench/run took %dm%02ds\n", *elapsed/60, *elapsed%60)
	}
	return nil
}

type samples struct {
	raw   map[string][]string
	order []string
}

func readSamples(name string) (*samples, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &samples{raw: map[string][]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if !ok || strings.HasPrefix(k, "warmup") {
			continue
		}
		if _, seen := s.raw[k]; !seen {
			s.order = append(s.order, k)
		}
		s.raw[k] = append(s.raw[k], v)
	}
	return s, sc.Err()
}

func (s *samples) nums(k string) []float64 {
	var xs []float64
	for _, v := range s.raw[k] {
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			xs = append(xs, x)
		}
	}
	return xs
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	ys := slices.Clone(xs)
	slices.Sort(ys)
	if n := len(ys); n%2 == 1 {
		return ys[n/2]
	} else {
		return (ys[n/2-1] + ys[n/2]) / 2
	}
}

type tab struct{ rows [][]string }

func (t *tab) section(title string) { t.rows = append(t.rows, []string{"#", title}) }

func (t *tab) row(cells ...string) { t.rows = append(t.rows, cells) }

// compare adds a row for B/A of metric (qps or rps) with the servers' CPU
// per query and, for HTTPS, the load generator's CPU use.
func (t *tab) compare(s *samples, name, b, a, metric, target string, min float64) {
	bs, as := s.nums(b+"."+metric), s.nums(a+"."+metric)
	if len(as) == 0 || len(bs) == 0 {
		t.row(name, "no data", "", "", "", target, "")
		return
	}
	side := func(k string, xs []float64) string {
		out := fmt.Sprintf("%.0f", median(xs))
		if cpu := s.nums(k + ".cpu"); len(cpu) > 0 {
			out += fmt.Sprintf(" (%.1f us", median(cpu))
			if cl := s.nums(k + ".client"); len(cl) > 0 {
				out += fmt.Sprintf(", %.0f%%", median(cl))
			}
			out += ")"
		}
		return out
	}
	ratio := median(bs) / median(as)
	var per []float64
	for i := range min2(len(as), len(bs)) {
		per = append(per, bs[i]/as[i])
	}
	spread := fmt.Sprintf("%.2f-%.2f", slices.Min(per), slices.Max(per))
	verdict := ""
	if min > 0 {
		verdict = boolMark(ratio >= min)
	}
	t.row(name, side(b, bs), side(a, as), fmt.Sprintf("%.2f", ratio), spread, target, verdict)
}

// ratios adds a row comparing the mta_sts/respond ratio of two pairs (key
// prefixes b and a, as "https.new"): the ratio of each by throughput, and in
// parentheses by server CPU per request (respond's over mta_sts', so that
// both read as "mta_sts relative to respond"); then their ratio, and its
// range over the rounds (each round ran all four).
func (t *tab) ratios(s *samples, name, b, a string) {
	per := func(p string) ([]float64, string, bool) {
		m, r := s.nums(p+".mtasts.rps"), s.nums(p+".respond.rps")
		if len(m) == 0 || len(r) == 0 {
			return nil, "", false
		}
		var xs []float64
		for i := range min2(len(m), len(r)) {
			xs = append(xs, m[i]/r[i])
		}
		cell := fmt.Sprintf("%.2f", median(m)/median(r))
		if mc, rc := median(s.nums(p+".mtasts.cpu")), median(s.nums(p+".respond.cpu")); mc > 0 && rc > 0 {
			cell += fmt.Sprintf(" (CPU %.2f)", rc/mc)
		}
		return xs, cell, true
	}
	bs, bcell, okb := per(b)
	as, acell, oka := per(a)
	if !okb || !oka {
		t.row(name, "no data", "", "", "", "-", "")
		return
	}
	var rr []float64
	for i := range min2(len(as), len(bs)) {
		rr = append(rr, bs[i]/as[i])
	}
	ratio := (median(s.nums(b+".mtasts.rps")) / median(s.nums(b+".respond.rps"))) /
		(median(s.nums(a+".mtasts.rps")) / median(s.nums(a+".respond.rps")))
	t.row(name, bcell, acell, fmt.Sprintf("%.2f", ratio), fmt.Sprintf("%.2f-%.2f", slices.Min(rr), slices.Max(rr)), "-", "")
}

// memory adds a row for with/without, in MiB; unit is the bytes per sample unit.
func (t *tab) memory(s *samples, name, with, without string, unit float64, target string, max float64) {
	w, wo := median(s.nums(with)), median(s.nums(without))
	if w == 0 || wo == 0 {
		t.row(name, "no data", "", "", "", target, "")
		return
	}
	mib := func(x float64) string { return fmt.Sprintf("%.1f MiB", x*unit/(1<<20)) }
	verdict := ""
	if max > 0 {
		verdict = boolMark(w/wo <= max)
	}
	t.row(name, mib(w), mib(wo), fmt.Sprintf("%.3f", w/wo), "", target, verdict)
}

// cluster adds the section of the cluster part: each domain contacted
// once through two Caddy nodes on one storage, one ACME order each.
func (t *tab) cluster(s *samples) {
	v := func(k string) float64 { return median(s.nums(k)) }
	n, rate := v("cluster.domains"), v("cluster.rate")
	t.section(fmt.Sprintf("Cluster  %.0f domains, each a registered domain, contacted once each through two Caddy nodes on one file_system storage, %g per second; Pebble without delays", n, rate))
	count := func(name, k, target string, want float64) {
		t.row(name, fmt.Sprintf("%.0f", v(k)), "", "", "", target, boolMark(v(k) == want))
	}
	count("ACME orders (Pebble's log)", "cluster.orders", "= domains", n)
	count("certificates issued (Pebble's log)", "cluster.issued", "= domains", n)
	count("domains the nodes obtained (their logs)", "cluster.obtained", "= domains", n)
	count("other names, and domains again, obtained", "cluster.obtained_other", "0", 0)
	count("certificates in the storage", "cluster.stored", "= domains", n)
	count("first contacts with a valid policy", "cluster.valid", "= domains", n)
	count("names not managed: handshakes refused", "cluster.refused", fmt.Sprintf("= %.0f", v("cluster.others")), v("cluster.others"))
	issue := v("cluster.issue_secs")
	t.row("time to issue all (first to last contact done)", fmt.Sprintf("%.0f s", issue), fmt.Sprintf("%.2f/s", n/issue), "", "", "-", "")
	t.row("first contact to policy, p50 / p90", fmt.Sprintf("%.2f s", v("cluster.first_p50")), fmt.Sprintf("%.2f s", v("cluster.first_p90")), "", "", "-", "")
	t.row("first contact to policy, max", fmt.Sprintf("%.2f s", v("cluster.first_max")), "", "", "", "-", "")
	kb := v("cluster.storage_kb")
	t.row("storage: size, files", fmt.Sprintf("%.1f MiB", kb/1024), fmt.Sprintf("%.0f files", v("cluster.storage_files")), "", "", "-", "")
	t.row("storage per certificate", fmt.Sprintf("%.1f KiB", kb/n), "", "", "", "-", "")
	for _, node := range []string{"caddy1", "caddy2"} {
		rss := v("cluster.rss_loaded."+node) - v("cluster.rss_idle."+node)
		heap := v("cluster.heap_loaded."+node) - v("cluster.heap_idle."+node)
		t.row(node+": RSS, Go heap per certificate held", fmt.Sprintf("%.1f KiB", rss/n), fmt.Sprintf("%.1f KiB", heap/1024/n), "", "", "-", "")
	}
}

var benchLine = regexp.MustCompile(`^Benchmark(?:Permission/|(PolicyLookup/))(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// permResults are the permission benchmarks' results: for each benchmark,
// in the order of the file, each metric's values in the order of the runs.
type permResults struct {
	metrics map[string]map[string][]float64
	order   []string
}

func readPermission(name string) (*permResults, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	metrics := map[string]map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name := m[2]
		if m[1] != "" {
			name = "DNS lookup, " + strings.ReplaceAll(name, "_", " ")
		}
		if metrics[name] == nil {
			metrics[name] = map[string][]float64{}
			order = append(order, name)
		}
		fields := strings.Fields(m[4])
		for i := 0; i+1 < len(fields); i += 2 {
			if x, err := strconv.ParseFloat(fields[i], 64); err == nil {
				metrics[name][fields[i+1]] = append(metrics[name][fields[i+1]], x)
			}
		}
	}
	return &permResults{metrics, order}, sc.Err()
}

// permission adds the rows of the permission benchmarks: mean and
// percentiles of single calls.
func (t *tab) permission(name string) error {
	r, err := readPermission(name)
	if err != nil {
		return err
	}
	metrics, order := r.metrics, r.order
	if len(order) == 0 {
		t.row("permission benchmarks", "no data")
		return nil
	}
	for _, name := range order {
		m := metrics[name]
		p99 := median(m["p99-ns"])
		target, verdict := permTarget(name, p99)
		if _, ok := m["p99-ns"]; !ok {
			t.row(name, "mean "+us(median(m["ns/op"])), "", "", "", target, verdict)
			continue
		}
		t.row(name, "mean "+us(median(m["ns/op"])), "p50 "+us(median(m["p50-ns"])),
			"p99 "+us(p99), "p99.9 "+us(median(m["p99.9-ns"])), target, verdict)
	}
	return nil
}

func (t *tab) print() {
	header := []string{"", "B", "A", "B/A", "per round", "target", "holds"}
	width := make([]int, len(header))
	for _, r := range append([][]string{header}, t.rows...) {
		if r[0] == "#" {
			continue
		}
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			fmt.Fprintf(&b, "%-*s  ", width[i], c)
		}
		fmt.Println(strings.TrimRight(b.String(), " "))
	}
	line(header)
	for _, r := range t.rows {
		if r[0] == "#" {
			fmt.Println("\n" + r[1])
			continue
		}
		line(r)
	}
}

func boolMark(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func min2(a, b int) int { return min(a, b) }

func allZero(vs []string) bool {
	for _, v := range vs {
		if v != "0" {
			return false
		}
	}
	return true
}

// idsAll reports whether "same/total" has same == total.
func idsAll(v string) bool {
	same, total, ok := strings.Cut(v, "/")
	return ok && same == total
}

func us(ns float64) string { return fmt.Sprintf("%.1f us", ns/1000) }

// permTarget is the target of a permission benchmark and whether p99 meets it.
func permTarget(name string, p99 float64) (target, verdict string) {
	if strings.HasPrefix(name, "cached") {
		return "p99 < 100 us", boolMark(p99 < 100000)
	}
	return "-", ""
}

// permissionCompare adds a row for each benchmark that both files hold:
// the p99 of the current tree's (B) and the baseline's (A) single calls
// where the benchmark reports percentiles, the mean (ns/op) otherwise; the
// ratio of the medians, and the range of the per-round ratios (the files
// hold one run per round, in the order of the rounds).
func (t *tab) permissionCompare(curFile, baseFile string) error {
	cur, err := readPermission(curFile)
	if err != nil {
		return err
	}
	base, err := readPermission(baseFile)
	if err != nil {
		return err
	}
	for _, name := range cur.order {
		c, b := cur.metrics[name], base.metrics[name]
		if b == nil {
			t.row(name, "current only", "", "", "", "-", "")
			continue
		}
		metric, label := "ns/op", "mean "
		if _, ok := c["p99-ns"]; ok {
			if _, ok := b["p99-ns"]; ok {
				metric, label = "p99-ns", "p99 "
			}
		}
		cs, bs := c[metric], b[metric]
		if len(cs) == 0 || len(bs) == 0 {
			t.row(name, "no data", "", "", "", "-", "")
			continue
		}
		var per []float64
		for i := range min2(len(cs), len(bs)) {
			per = append(per, cs[i]/bs[i])
		}
		target, verdict := "-", ""
		if metric == "p99-ns" {
			target, verdict = permTarget(name, median(cs))
		}
		t.row(name+", "+strings.TrimSuffix(label, " "), label+us(median(cs)), label+us(median(bs)),
			fmt.Sprintf("%.2f", median(cs)/median(bs)), fmt.Sprintf("%.2f-%.2f", slices.Min(per), slices.Max(per)), target, verdict)
	}
	for _, name := range base.order {
		if cur.metrics[name] == nil {
			t.row(name, "", "baseline only", "", "", "-", "")
		}
	}
	return nil
}
