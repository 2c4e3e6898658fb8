// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestParseEvents(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []Event
		wantErr bool
	}{
		{
			name: "7.2 style",
			text: "SCX_EV_SELECT_CPU_FALLBACK 12\nSCX_EV_REENQ_LOCAL_REPEAT 0\n",
			want: []Event{{"SCX_EV_SELECT_CPU_FALLBACK", 12}, {"SCX_EV_REENQ_LOCAL_REPEAT", 0}},
		},
		{
			name: "padded with colon",
			text: "   SCX_EV_BYPASS_DURATION:   32223721\n",
			want: []Event{{"SCX_EV_BYPASS_DURATION", 32223721}},
		},
		{name: "empty", text: "", want: nil},
		{name: "not a number", text: "SCX_EV_X abc\n", wantErr: true},
		{name: "three fields", text: "SCX_EV_X 1 2\n", wantErr: true},
		{name: "foreign name", text: "nr_running 3\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvents(tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseEvents() error = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseEvents() = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestEventsLine(t *testing.T) {
	got := EventsLine([]Event{{"SCX_EV_A", 1}, {"SCX_EV_B", -2}})
	if got != "A=1 B=-2" {
		t.Errorf("EventsLine() = %q", got)
	}
}

func FuzzParseEvents(f *testing.F) {
	f.Add("SCX_EV_SELECT_CPU_FALLBACK 12\n")
	f.Add("SCX_EV_X: 1\n\nSCX_EV_Y 99999999999999999999\n")
	f.Fuzz(func(t *testing.T, text string) {
		events, err := ParseEvents(text)
		if err != nil {
			return
		}
		for _, e := range events {
			if len(e.Name) <= len("SCX_EV_") {
				t.Errorf("accepted a bare prefix: %q", e.Name)
			}
		}
	})
}

// One open file serves every sample: each Read sees the file's current
// contents, however long they grow.
func TestEventsReaderRereads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "root", "events")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewEventsReader(os.DirFS(dir), RootSchedDir)
	defer r.Close()
	long := strings.Repeat("SCX_EV_PADDING_TO_GROW_THE_BUFFER 1234567890\n", 200) // > 4096 bytes
	for i, content := range []string{"SCX_EV_A 1\n", "SCX_EV_A 2\nSCX_EV_B 5\n", long, "SCX_EV_A 3\n"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		events, err := r.Read()
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		want, _ := ParseEvents(content)
		if !slices.Equal(events, want) {
			t.Errorf("read %d = %v, want %v", i, events, want)
		}
	}
}

// goneFS is sysfs while the kernel disables the scheduler: the events file
// opens, then reads fail with ENODEV.
type goneFS struct{}

type goneFile struct{ fs.File }

func (goneFS) Open(string) (fs.File, error)        { return goneFile{}, nil }
func (goneFile) ReadAt([]byte, int64) (int, error) { return 0, syscall.ENODEV }
func (goneFile) Read([]byte) (int, error)          { return 0, syscall.ENODEV }
func (goneFile) Close() error                      { return nil }
func (goneFile) Stat() (fs.FileInfo, error)        { return nil, syscall.ENODEV }

// A scheduler on its way out has no events: not an error to warn about.
func TestEventsReaderSchedulerGone(t *testing.T) {
	r := NewEventsReader(goneFS{}, RootSchedDir)
	defer r.Close()
	if events, err := r.Read(); events != nil || err != nil {
		t.Errorf("Read() = %v, %v; want nothing and no error", events, err)
	}
}
