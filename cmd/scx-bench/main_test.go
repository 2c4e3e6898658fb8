// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"flag"
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
