// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
)

// fieldAfter finds the first line of @out for which @match is true and
// returns its field @i (from 0) as a number.
func fieldAfter(out string, i int, match func(f []string) bool) (float64, bool) {
	f := findRow(out, i+1, match)
	if f == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[i], 64)
	return v, err == nil
}

// findRow is the fields of @out's first line with at least @n of them that
// @match accepts; nil if none.
func findRow(out string, n int, match func(f []string) bool) []string {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) >= n && match(f) {
			return f
		}
	}
	return nil
}

// hackbenchTime is the seconds in hackbench's "Time: 1.234" line.
func hackbenchTime(out string) (float64, bool) {
	return fieldAfter(out, 1, func(f []string) bool { return f[0] == "Time:" })
}

// perfTotal is the seconds in perf bench's " Total time: 1.234 [sec]" line.
func perfTotal(out string) (float64, bool) {
	return fieldAfter(out, 2, func(f []string) bool { return f[0] == "Total" && f[1] == "time:" })
}

// stressBogoOps is the cpu stressor's bogo ops/s (real time) in
// stress-ng's --metrics-brief table:
// "stress-ng: metrc: [pid] cpu <ops> <real> <usr> <sys> <ops/s real> ...".
func stressBogoOps(out string) (float64, bool) {
	return fieldAfter(out, 8, isStressCPURow)
}

// stressCPUShare is, from the same row, the share of @ncpu CPUs that the
// workers ran, in percent: (usr + sys) / (real × ncpu). The emulator's
// speed, which sets bogo-ops, cancels out of it; what the rest of the
// system took (the loader, kernel threads, interrupt time) does not.
func stressCPUShare(out string, ncpu int) (float64, bool) {
	f := findRow(out, 8, isStressCPURow)
	if f == nil || ncpu < 1 {
		return 0, false
	}
	real, err1 := strconv.ParseFloat(f[5], 64)
	usr, err2 := strconv.ParseFloat(f[6], 64)
	sys, err3 := strconv.ParseFloat(f[7], 64)
	if err1 != nil || err2 != nil || err3 != nil || real <= 0 {
		return 0, false
	}
	return 100 * (usr + sys) / (real * float64(ncpu)), true
}

func isStressCPURow(f []string) bool { return f[1] == "metrc:" && f[3] == "cpu" }

// verified reads the loader's -v lines, "verified: <prog> <n> insns", as
// program -> instructions.
func verified(log string) map[string]float64 {
	out := map[string]float64{}
	for line := range strings.SplitSeq(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "verified:" {
			continue
		}
		if n, err := strconv.ParseFloat(f[2], 64); err == nil {
			out[f[1]] = n
		}
	}
	return out
}

// kbField is the number on the "@key: <n> kB" line of a /proc file's
// @text (status, smaps_rollup).
func kbField(text, key string) (int64, error) {
	for line := range strings.SplitSeq(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

// procKB reads @key from /proc/@pid/@file.
func procKB(pid int, file, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	n, err := kbField(string(b), key)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/%s: %w", pid, file, err)
	}
	return n, nil
}

// parseHistfile reads a cyclictest --histfile and sums it over threads:
// "<us> <count per thread...>" rows, then "# Max Latencies: <per thread>"
// and "# Histogram Overflows: <per thread>". Only non-empty buckets are
// kept.
func parseHistfile(r io.Reader) (bench.Histogram, error) {
	var h bench.Histogram
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# Max Latencies:"):
			for _, v := range numbers(strings.TrimPrefix(line, "# Max Latencies:")) {
				h.Max = max(h.Max, v)
			}
		case strings.HasPrefix(line, "# Histogram Overflows:"):
			for _, v := range numbers(strings.TrimPrefix(line, "# Histogram Overflows:")) {
				h.Overflow += v
			}
		case line != "" && line[0] >= '0' && line[0] <= '9':
			f := numbers(line)
			if len(f) < 2 {
				return h, fmt.Errorf("histogram row %q: no counts", line)
			}
			var n uint64
			for _, c := range f[1:] {
				n += c
			}
			if n == 0 {
				continue
			}
			if k := len(h.Buckets); k > 0 && h.Buckets[k-1].US >= f[0] {
				return h, fmt.Errorf("histogram row %q: buckets out of order", line)
			}
			h.Buckets = append(h.Buckets, bench.Bucket{US: f[0], Count: n})
		}
	}
	if err := sc.Err(); err != nil {
		return h, fmt.Errorf("reading the histogram: %w", err)
	}
	return h, nil
}

// numbers reads the unsigned decimal fields of @s; others (a thread with
// no samples reports -1) count as 0.
func numbers(s string) []uint64 {
	var out []uint64
	for _, f := range strings.Fields(s) {
		n, _ := strconv.ParseUint(f, 10, 64)
		out = append(out, n)
	}
	return out
}

// readHistfile parses the histogram at @path; a missing or empty file is
// an error, as cyclictest did not get to write it.
func readHistfile(path string) (bench.Histogram, error) {
	f, err := os.Open(path)
	if err != nil {
		return bench.Histogram{}, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		return bench.Histogram{}, errors.New(path + " is empty")
	}
	return parseHistfile(f)
}

// lastLines is the last @n non-empty lines of @text on one line.
func lastLines(text string, n int) string {
	var lines []string
	for line := range strings.SplitSeq(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], " ")
}
