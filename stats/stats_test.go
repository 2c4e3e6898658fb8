// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

type fakeSource map[string]uint64

func (f fakeSource) Counter(name string) (uint64, error) {
	v, ok := f[name]
	if !ok {
		return 0, errors.New("missing " + name)
	}
	return v, nil
}

func allCounters(v uint64) fakeSource {
	f := fakeSource{}
	for _, c := range Counters {
		f[c.BPF] = v
	}
	return f
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
	if _, err := Take(fakeSource{}, now); err == nil {
		t.Error("Take with missing counters succeeded")
	}
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
		want    int
		wantErr bool
	}{
		{name: "no sysfs", sysfs: nil},
		{name: "kernel without events", sysfs: fstest.MapFS{}},
		{name: "two events", sysfs: fstest.MapFS{"root/events": {Data: []byte("SCX_EV_A 1\nSCX_EV_B 2\n")}}, want: 2},
		{name: "garbage", sysfs: fstest.MapFS{"root/events": {Data: []byte("what\n")}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Snapshot{Values: map[string]uint64{"enq": 3}}
			r := NewEventsReader(tt.sysfs)
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
