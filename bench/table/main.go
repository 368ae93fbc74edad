// Command table reads the output of make bench (Go benchmark lines and the
// peer comparison) on standard input and prints one table: each of issue
// #5's targets with logtk's figure, its baseline from the same run, the
// ratio and whether the target is met. Repeated runs (-count) are reduced
// to their median.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// metrics[benchmark name][unit] = values seen.
var metrics = map[string]map[string][]float64{}

var peerLine = regexp.MustCompile(`^(rsyslog imtcp->omfile|logtk serve), (no sync|synced)(, acked)?\s+(\d+)\s+(\d+)`)

func main() {
	peer := map[string]float64{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := peerLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[5], 64)
			peer[m[1]+"/"+m[2]+"/"+m[4]] = v
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			if metrics[name] == nil {
				metrics[name] = map[string][]float64{}
			}
			metrics[name][f[i+1]] = append(metrics[name][f[i+1]], v)
		}
	}

	fmt.Println("| target | logtk | baseline (same run) | ratio | goal | met |")
	fmt.Println("|---|---:|---:|---:|---:|:---:|")
	row := func(what string, v float64, unit string, base float64, baseName string, ratio float64, goal string, met bool) {
		if v == 0 {
			fmt.Printf("| %s | not measured | | | %s | |\n", what, goal)
			return
		}
		b, r := "", ""
		if base > 0 {
			b = fmt.Sprintf("%s %s", num(base), baseName)
			r = fmt.Sprintf("%.2fx", ratio)
		}
		fmt.Printf("| %s | %s %s | %s | %s | %s | %s |\n", what, num(v), unit, b, r, goal, map[bool]string{true: "yes", false: "**no**"}[met])
	}

	ring, zero := get("BenchmarkLogger/logtk/ring", "ns/op"), get("BenchmarkLogger/zerolog", "ns/op")
	row("SDK log call, crash-safe (ring), 4 attrs", ring, "ns", zero, "ns zerolog→io.Discard", ring/zero, "≤ 1x", ring > 0 && ring <= zero)
	enc := get("BenchmarkLogger/logtk/discard", "ns/op")
	row("SDK encode only (io.Discard)", enc, "ns", zero, "ns zerolog", enc/zero, "(info)", true)
	if _, ok := metrics["BenchmarkLogger/logtk/ring"]["allocs/op"]; ok {
		allocs := get("BenchmarkLogger/logtk/ring", "allocs/op")
		fmt.Printf("| SDK allocations per call (ring) | %g | | | 0 | %s |\n", allocs, map[bool]string{true: "yes", false: "**no**"}[allocs == 0])
	}

	blast := get("BenchmarkIngest/blast/workers=4", "records/s")
	row("Host ingest, 4 workers, pre-encoded records via the ring", blast, "rec/s", 0, "", 0, "≥ 5M rec/s", blast >= 5e6)
	sdk4 := get("BenchmarkIngest/sdk/workers=4", "records/s")
	sock := get("BenchmarkIngest/socket/workers=4", "records/s")
	row("Host ingest, 4 SDK workers (their encoding on the same 2 cores)", sdk4, "rec/s", sock, "rec/s over the socket", sdk4/sock, "(info)", true)

	// The built-in formatters are C modules (text-c, json-c,
	// protobuf-c); their Go packages built for Wasm are shown beside them.
	for _, f := range []struct {
		name, label string
		goal        float64 // 0: for information
	}{{"protobuf-c", "protobuf (built in, C)", 1.2}, {"protobuf-user-schema-c", "protobuf-user-schema (built in, C)", 2},
		{"text-c", "text (built in, C)", 2}, {"json-c", "json (built in, C)", 2},
		{"protobuf", "protobuf as a Go plugin", 0}, {"protobuf-user-schema", "protobuf-user-schema as a Go plugin", 0},
		{"text", "text as a Go plugin", 0}, {"json", "json as a Go plugin", 0}} {
		nat := get("BenchmarkFormat/"+f.name+"/batch=512/native", "ns/record")
		w := get("BenchmarkFormat/"+f.name+"/batch=512/wasm", "ns/record")
		goal, met := "(info)", true
		if f.goal > 0 {
			goal, met = fmt.Sprintf("≤ %gx", f.goal), w > 0 && w/nat <= f.goal
		}
		row(fmt.Sprintf("%s formatter in Wasm, batch 512", f.label), w, "ns/rec", nat, "ns/rec native", w/nat, goal, met)
		if f.goal > 0 {
			nb := get("BenchmarkFormat/"+f.name+"/batch=512/wasm-no-time-budget", "ns/record")
			row(fmt.Sprintf("%s formatter in Wasm, call_timeout off", f.label), nb, "ns/rec", nat, "ns/rec native", nb/nat, "(info)", true)
		}
	}
	pj := get("BenchmarkPipeline/json/batch=512", "records/s")
	row("Pipeline: built-in JSON formatter → Wasm file transport, batch 512", pj, "rec/s", 0, "", 0, "≥ 1.5M rec/s", pj >= 1.5e6)
	// Calls made inside the sandbox: Go's Wasm code passes a call's
	// arguments and results through memory (BENCHMARKS.md).
	if c := get("BenchmarkFormatCalls/text", "calls/record"); c > 0 {
		fmt.Printf("| Calls per record inside the Wasm formatters: text, JSON, user schema | %s, %s, %s | | | (info) | |\n",
			num(c), num(get("BenchmarkFormatCalls/json", "calls/record")), num(get("BenchmarkFormatCalls/protobuf-user-schema", "calls/record")))
	}
	// What one call costs, whatever the batch: the host's copies, the
	// time budget and the calls into the sandbox.
	one, nat1 := get("BenchmarkFormat/protobuf/batch=1/wasm", "ns/record"), get("BenchmarkFormat/protobuf/batch=1/native", "ns/record")
	row("protobuf formatter in Wasm, batch 1 (the cost of a call)", one, "ns/call", nat1, "ns native", one/nat1, "(info)", true)

	for _, fs := range []string{"none", "batch"} {
		name := "BenchmarkNetworkEndToEnd/fsync=" + fs
		e := get(name, "records/s")
		row("End to end, 4 workers → Wasm protobuf → Wasm network → server, acked, fsync "+fs, e, "rec/s", 0, "", 0, "≥ 1M rec/s", e >= 1e6)
		fmt.Printf("| &nbsp;&nbsp;same run: MB/s, CPU per record, host peak RSS | %s MB/s, %s ns CPU/rec, %s MB | | | | |\n",
			num(get(name, "MB/s")), num(get(name, "cpu-ns/record")), num(get(name, "host-peak-MB")))
	}

	if rss := get("BenchmarkNetworkEndToEnd/slow-server", "host-peak-MB"); rss > 0 {
		fmt.Printf("| Host peak RSS under overload (server taking %s rec/s, workers logging flat out) | %s MB | %s MB at full speed | | bounded | yes |\n",
			num(get("BenchmarkNetworkEndToEnd/slow-server", "records/s")), num(rss), num(get("BenchmarkNetworkEndToEnd/fsync=none", "host-peak-MB")))
	}

	// make run's main job, one host process a run (BenchmarkMakeRun).
	if c := get("BenchmarkMakeRun", "cold-first-record-ms"); c > 0 {
		row("make run: host start to first record, empty compilation cache", c, "ms", 0, "", 0, "≤ 200 ms", c <= 200)
		row("&nbsp;&nbsp;the same, cache warm", get("BenchmarkMakeRun", "warm-first-record-ms"), "ms", 0, "", 0, "(info)", true)
		m := get("BenchmarkMakeRun", "cold-host-peak-MB")
		row("make run: host peak RSS (cache empty: the compiles' peak)", m, "MB", 0, "", 0, "≤ 40 MB", m <= 40)
		row("&nbsp;&nbsp;the same, cache warm", get("BenchmarkMakeRun", "warm-host-peak-MB"), "MB", 0, "", 0, "(info)", true)
	}
	if m := get("BenchmarkServerIdle", "server-idle-peak-MB"); m > 0 {
		row("Log server idle, peak RSS", m, "MB", 0, "", 0, "≤ 30 MB", m <= 30)
	}

	for _, sync := range []string{"no sync", "synced"} {
		goal := map[string]float64{"no sync": 2, "synced": 10}[sync]
		for _, conns := range []string{"1", "4"} {
			lt, rs := peer["logtk serve/"+sync+"/"+conns], peer["rsyslog imtcp->omfile/"+sync+"/"+conns]
			if rs == 0 {
				row(fmt.Sprintf("Server ingest, %s, %s conn (rsyslog not installed)", sync, conns), lt, "rec/s", 0, "", 0, fmt.Sprintf("≥ %gx rsyslog", goal), false)
				continue
			}
			row(fmt.Sprintf("Server ingest, %s, %s conn", sync, conns), lt, "rec/s", rs, "rec/s rsyslog", lt/rs, fmt.Sprintf("≥ %gx", goal), lt/rs >= goal)
		}
	}
}

// get returns the median of a metric over the runs of a benchmark.
func get(name, unit string) float64 {
	vs := append([]float64(nil), metrics[name][unit]...)
	if len(vs) == 0 {
		return 0
	}
	sort.Float64s(vs)
	return vs[len(vs)/2]
}

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
