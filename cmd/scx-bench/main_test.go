// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/bench/guest"
	"github.com/scx-qmap-go/scx-qmap-go/bench/report"
	"github.com/scx-qmap-go/scx-qmap-go/vm"
)

func TestShellJoin(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"/r/bench/.run-1/scx-bench", "guest", "-rounds", "5"}, `'/r/bench/.run-1/scx-bench' 'guest' '-rounds' '5'`},
		{[]string{"-hackbench", "-g 2 -l 10"}, `'-hackbench' '-g 2 -l 10'`},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{""}, `''`},
	}
	for _, tt := range tests {
		if got := shellJoin(tt.args); got != tt.want {
			t.Errorf("shellJoin(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"eevdf,qmap", []string{"eevdf", "qmap"}},
		{" eevdf , qmap-I ,", []string{"eevdf", "qmap-I"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := list(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("list(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressShowsOnlyProgress(t *testing.T) {
	var shown syncBuffer
	w := progress(&shown)
	in := "# round 1/5: eevdf (00:10:07)\n" +
		"# note: qmap round 1: hackbench failed\n" +
		bench.Marker + `{"configs":[{"name":"eevdf"}]}` + "\n" +
		"scx-bench guest: no scheduler binary given\n" +
		"enq=1 dsp=2\n"
	if _, err := io.WriteString(w, in); err != nil {
		t.Fatal(err)
	}
	w.(io.Closer).Close()
	want := "# round 1/5: eevdf (00:10:07)\n# note: qmap round 1: hackbench failed\nscx-bench guest: no scheduler binary given\n"
	for deadline := time.Now().Add(5 * time.Second); shown.String() != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("shown:\n%s\nwant:\n%s", shown.String(), want)
		}
	}
}

// A saved result renders again with -from, and so does a guest's raw
// output.
func TestRunFrom(t *testing.T) {
	res := &bench.Result{
		Meta:    map[string]string{"kernel": "7.2.13", "vcpus": "2"},
		Configs: []bench.Config{{Name: "eevdf"}, {Name: "qmap"}},
		Rounds: []*bench.Round{
			{Config: "eevdf", Number: 1, Values: map[string]float64{"hackbench_s": 2}},
			{Config: "qmap", Number: 1, Values: map[string]float64{"hackbench_s": 1}},
		},
	}
	dir := t.TempDir()
	saved := filepath.Join(dir, guestResult)
	if err := saveResult(saved, res); err != nil {
		t.Fatal(err)
	}
	var raw strings.Builder
	raw.WriteString("# warm-up\n")
	if err := res.WriteLine(&raw); err != nil {
		t.Fatal(err)
	}
	rawPath := filepath.Join(dir, "guest.out")
	if err := os.WriteFile(rawPath, []byte(raw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer func() { os.Stdout = stdout }()
	for _, from := range []string{saved, rawPath} {
		out := filepath.Join(dir, "out-"+filepath.Base(from))
		if err := run(t.Context(), options{from: from, outDir: out}); err != nil {
			t.Fatalf("-from %s: %v", from, err)
		}
		b, err := os.ReadFile(filepath.Join(out, "latest.md"))
		if err != nil || !strings.Contains(string(b), "| hackbench ↓ | s | 2 | 1 ×0.50 |") {
			t.Errorf("-from %s: latest.md %v\n%s", from, err, b)
		}
	}
}

// A committed summary renders again with -summary, its paired intervals
// derived anew; what is not a summary is refused.
func TestRunSummary(t *testing.T) {
	res := &bench.Result{
		Meta:    map[string]string{"kernel": "7.2.13", "vcpus": "2", "rounds": "6"},
		Configs: []bench.Config{{Name: "eevdf"}, {Name: "lat", Flags: "--latency"}},
	}
	for r := 1; r <= 6; r++ {
		res.Rounds = append(res.Rounds,
			&bench.Round{Config: "eevdf", Number: r, Values: map[string]float64{"stress_bogo_ops_s": 100}},
			&bench.Round{Config: "lat", Number: r, Values: map[string]float64{"stress_bogo_ops_s": float64(95 + 2*r)}})
	}
	s := bench.Summarise(res)
	s.Metric("stress_bogo_ops_s").Stats["lat"].Paired.CI = nil // as saved before intervals
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := report.JSON(&buf, s); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(dir, "latest.json")
	if err := os.WriteFile(saved, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	notSummary := filepath.Join(dir, "other.json")
	if err := os.WriteFile(notSummary, []byte(`{"meta":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer func() { os.Stdout = stdout }()

	out := filepath.Join(dir, "out")
	if err := run(t.Context(), options{summary: saved, outDir: out}); err != nil {
		t.Fatalf("-summary: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "latest.md"))
	if want := "| stress-ng ≥ 1.0× EEVDF | ✓ ×1.02 [0.97–1.07], CI 0.97–1.07: within noise |"; err != nil || !strings.Contains(string(b), want) {
		t.Errorf("-summary: latest.md lacks %q: %v\n%s", want, err, b)
	}
	for _, o := range []options{
		{summary: notSummary, outDir: out},
		{summary: filepath.Join(dir, "missing.json"), outDir: out},
		{summary: saved, from: saved, outDir: out},
	} {
		if err := run(t.Context(), o); err == nil {
			t.Errorf("-summary %s -from %q: no error", o.summary, o.from)
		}
	}
}

func TestGuestOptions(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantConfigs int
		wantCyc     [2]int // cyclictest's interval, hogs per CPU
		wantErr     string
	}{
		{"defaults", nil, len(guest.ConfigNames()), [2]int{1000, 1}, ""},
		{"two configs", []string{"-secs", "2", "-configs", "eevdf,qmap"}, 2, [2]int{1000, 1}, ""},
		{"cyclictest setup", []string{"-cyclictest-interval", "250", "-load-per-cpu", "2"}, len(guest.ConfigNames()), [2]int{250, 2}, ""},
		{"unknown flag", []string{"-rouns", "3"}, 0, [2]int{}, "-rouns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := guestOptions(tt.args, flag.ContinueOnError)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Configs) != tt.wantConfigs {
				t.Errorf("%d configurations, want %d", len(o.Configs), tt.wantConfigs)
			}
			if got := [2]int{o.CycInterval, o.LoadPerCPU}; got != tt.wantCyc {
				t.Errorf("cyclictest setup %v, want %v", got, tt.wantCyc)
			}
		})
	}
}

func TestGuestTimeout(t *testing.T) {
	tests := []struct {
		rounds, configs, cpus int
		want                  time.Duration
	}{
		{5, 9, 2, 95 * time.Minute},
		{3, 2, 2, 17 * time.Minute},
		{3, 3, 4, 41 * time.Minute},
		{1, 0, 1, 7 * time.Minute},
	}
	for _, tt := range tests {
		if got := guestTimeout(tt.rounds, tt.configs, tt.cpus); got != tt.want {
			t.Errorf("guestTimeout(%d rounds, %d configs, %d vCPUs) = %v, want %v", tt.rounds, tt.configs, tt.cpus, got, tt.want)
		}
	}
}

// guestOutput is what a boot that finished @rounds printed, and the start
// of @cut's checkpoint if it is not 0.
func guestOutput(t *testing.T, rounds []int, cut int) string {
	t.Helper()
	var b strings.Builder
	for _, n := range rounds {
		fmt.Fprintf(&b, "# round %d/5: eevdf\n", n)
		cp := &bench.Checkpoint{Round: n, Secs: 100 * len(rounds), Notes: []string{fmt.Sprintf("note %d", n)},
			Rounds: []*bench.Round{{Config: "eevdf", Number: n}, {Config: "qmap", Number: n}}}
		if err := cp.WriteLine(&b); err != nil {
			t.Fatal(err)
		}
	}
	if cut != 0 {
		fmt.Fprintf(&b, "%s{\"round\":%d,\"rou", bench.CheckpointMarker, cut)
	}
	return b.String()
}

// A run that the int3 race stops twice goes on from the round each boot
// was in, and its result holds every round once, in order, and says which
// boot ran which under what emulation.
func TestResumption(t *testing.T) {
	rs := newResumption(5, func(first int) string { return fmt.Sprintf("guest -first-round %d", first) })
	var logged strings.Builder
	rs.log = func(format string, args ...any) { fmt.Fprintf(&logged, format, args...) }

	if got := rs.again(&vm.Result{Output: guestOutput(t, []int{1, 2}, 3), Accelerator: "TCG", Elapsed: time.Minute}); got != "guest -first-round 3" {
		t.Errorf("after rounds 1-2: command %q, want it to go on from round 3", got)
	}
	if got := rs.again(&vm.Result{Output: "", Accelerator: "TCG", Elapsed: time.Minute}); got != "guest -first-round 3" {
		t.Errorf("after a boot that finished no round: command %q, want round 3 again", got)
	}
	if got := rs.again(&vm.Result{Output: guestOutput(t, []int{3}, 0), Accelerator: "TCG", Elapsed: time.Minute}); got != "guest -first-round 4" {
		t.Errorf("after round 3: command %q, want round 4", got)
	}
	res := &bench.Result{
		Meta:    map[string]string{"guest_secs": "50"},
		Configs: []bench.Config{{Name: "eevdf"}, {Name: "qmap"}},
		Rounds:  []*bench.Round{{Config: "qmap", Number: 4}, {Config: "eevdf", Number: 4}, {Config: "eevdf", Number: 5}},
		Notes:   []string{"last boot's note"},
	}
	rs.merge(res, &vm.Result{Accelerator: "TCG (single-threaded)", Elapsed: time.Minute})

	var got []int
	for _, rd := range res.Rounds {
		got = append(got, rd.Number)
	}
	if want := []int{1, 1, 2, 2, 3, 3, 4, 4, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("rounds %v, want %v", got, want)
	}
	if err := res.Validate(); err != nil {
		t.Errorf("merged result: %v", err)
	}
	wantMeta := map[string]string{
		"emulation":  "TCG from round 1; TCG from round 3; TCG from round 3; TCG (single-threaded) from round 4",
		"guest_secs": fmt.Sprint(200 + 100 + 50),
		"elapsed_s":  "240",
	}
	for k, want := range wantMeta {
		if res.Meta[k] != want {
			t.Errorf("meta %s = %q, want %q", k, res.Meta[k], want)
		}
	}
	notes := strings.Join(res.Notes, "\n")
	for _, want := range []string{"note 1", "note 3", "stopped boot 1 in round 3", "stopped boot 2 in round 3", "stopped boot 3 in round 4", "last boot's note"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q, want %q among them", notes, want)
		}
	}
	if !strings.Contains(logged.String(), "boot 1 stopped in round 3; 2 finished rounds kept") {
		t.Errorf("notices %q, want boot 1's", logged.String())
	}
}

// A boot that finished every round but died before its result runs the
// last round again.
func TestResumptionAfterTheLastRound(t *testing.T) {
	rs := newResumption(2, func(first int) string { return fmt.Sprint(first) })
	rs.log = func(string, ...any) {}
	if got := rs.again(&vm.Result{Output: guestOutput(t, []int{1, 2}, 0)}); got != "2" {
		t.Errorf("command %q, want round 2 again", got)
	}
	if len(rs.kept) != 2 || rs.kept[0].Number != 1 {
		t.Errorf("kept %d rounds, want round 1's two", len(rs.kept))
	}
}

// A run the race never stopped says what its one boot was.
func TestResumptionOneBoot(t *testing.T) {
	rs := newResumption(2, func(first int) string { return fmt.Sprint(first) })
	res := &bench.Result{Meta: map[string]string{"guest_secs": "50", "emulation": "TCG"}}
	rs.merge(res, &vm.Result{Accelerator: "TCG", Elapsed: 90 * time.Second})
	if res.Meta["emulation"] != "TCG" || res.Meta["elapsed_s"] != "90" || res.Meta["guest_secs"] != "50" {
		t.Errorf("meta %v, want TCG, 90 s and the guest's 50 s", res.Meta)
	}
}
