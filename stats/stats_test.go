// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
)

// fakeSource serves a fixed bpf.Stats, or fails.
type fakeSource struct {
	st  bpf.Stats
	err error
}

func (f fakeSource) Stats() (bpf.Stats, error) { return f.st, f.err }

// allCounters is a source whose every field reads @v.
func allCounters(v uint64) fakeSource {
	var st bpf.Stats
	fields := reflect.ValueOf(&st).Elem()
	for i := range fields.NumField() {
		if f := fields.Field(i); f.CanSet() && f.Kind() == reflect.Uint64 {
			f.SetUint(v)
		}
	}
	return fakeSource{st: st}
}

func TestTake(t *testing.T) {
	now := time.Unix(100, 0)
	s, err := Take(allCounters(7), now)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Counters {
		if s.Values[c.Name] != 7 {
			t.Errorf("%s = %d, want 7", c.Name, s.Values[c.Name])
		}
	}
	if got := s.Stats(); got != allCounters(7).st {
		t.Errorf("Snapshot.Stats() = %+v, want every field 7", got)
	}
	if _, err := Take(fakeSource{err: errors.New("gone")}, now); err == nil {
		t.Error("Take from a failing source succeeded")
	}
}

// TestCountersCoverStats fails when a field of struct qmap_stats has no
// counter in the table, when a counter reads a field other than the one its
// BPF name says, or when two counters read the same field.
func TestCountersCoverStats(t *testing.T) {
	var st bpf.Stats
	fields := reflect.ValueOf(&st).Elem()
	byGoName := map[string]uint64{} // field -> the unique value it holds
	for i := range fields.NumField() {
		f := fields.Field(i)
		if !f.CanSet() {
			continue // layout markers and padding
		}
		v := uint64(1000 + i)
		f.SetUint(v)
		byGoName[fields.Type().Field(i).Name] = v
	}
	read := map[uint64]string{}
	for _, c := range Counters {
		want, ok := byGoName[goFieldName(c.BPF)]
		if !ok {
			t.Errorf("counter %s: struct qmap_stats has no field %s", c.Name, c.BPF)
			continue
		}
		if got := *c.Field(&st); got != want {
			t.Errorf("counter %s reads another field than %s", c.Name, c.BPF)
		}
		if other, dup := read[want]; dup {
			t.Errorf("counters %s and %s read the same field %s", other, c.Name, c.BPF)
		}
		read[want] = c.Name
	}
	for name, v := range byGoName {
		if _, ok := read[v]; !ok {
			t.Errorf("struct qmap_stats field %s has no counter in stats.Counters", name)
		}
	}
}

// goFieldName is bpf2go's Go name for a C field: nr_cpu_online -> NrCpuOnline.
func goFieldName(c string) string {
	var b strings.Builder
	for w := range strings.SplitSeq(c, "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func TestLine(t *testing.T) {
	t0 := time.Unix(100, 0)
	tests := []struct {
		name      string
		prev, cur Snapshot
		want      []string
		notWant   []string
	}{
		{
			name:    "first sample has no rates",
			cur:     Snapshot{Time: t0, Values: map[string]uint64{"enq": 5, "dsp": 3}},
			want:    []string{"enq=5 ", "dsp=3 "},
			notWant: []string{"/s"},
		},
		{
			name: "rate over two seconds",
			prev: Snapshot{Time: t0, Values: map[string]uint64{"enq": 10}},
			cur:  Snapshot{Time: t0.Add(2 * time.Second), Values: map[string]uint64{"enq": 30}},
			want: []string{"enq=30(+10/s)"},
		},
		{
			name: "counter reset does not wrap",
			prev: Snapshot{Time: t0, Values: map[string]uint64{"deq": 10}},
			cur:  Snapshot{Time: t0.Add(time.Second), Values: map[string]uint64{"deq": 2}},
			want: []string{"deq=2(+0/s)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Line(tt.prev, tt.cur)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Line() = %q, want it to contain %q", got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("Line() = %q, want no %q", got, w)
				}
			}
		})
	}
}

func TestWithEvents(t *testing.T) {
	tests := []struct {
		name    string
		sysfs   fs.FS
		dir     string // the scheduler's; "" for the root
		want    int
		wantErr bool
	}{
		{name: "no sysfs", sysfs: nil},
		{name: "kernel without events", sysfs: fstest.MapFS{}},
		{name: "two events", sysfs: fstest.MapFS{"root/events": {Data: []byte("SCX_EV_A 1\nSCX_EV_B 2\n")}}, want: 2},
		{name: "garbage", sysfs: fstest.MapFS{"root/events": {Data: []byte("what\n")}}, wantErr: true},
		{name: "a child's own", dir: "root/sub/sub-54", sysfs: fstest.MapFS{
			"root/events":            {Data: []byte("SCX_EV_A 1\nSCX_EV_B 2\n")},
			"root/sub/sub-54/events": {Data: []byte("SCX_EV_A 7\n")},
		}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Snapshot{Values: map[string]uint64{"enq": 3}}
			dir := tt.dir
			if dir == "" {
				dir = RootSchedDir
			}
			r := NewEventsReader(tt.sysfs, dir)
			defer r.Close()
			got, err := s.WithEvents(r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("WithEvents() error = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got.Events) != tt.want || got.Values["enq"] != 3 {
				t.Errorf("WithEvents() = %+v, want %d events and the counters kept", got, tt.want)
			}
		})
	}
}
