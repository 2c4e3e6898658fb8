// SPDX-License-Identifier: Apache-2.0

package procstat

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name, in   string
		wantComm   string
		wantFields []string
		wantErr    bool
	}{
		{"plain", "42 (sh) S 1 42 42", "sh", []string{"S", "1", "42", "42"}, false},
		{"spaces and parentheses in the name", "7 (a) (b c)) R 3", "a) (b c)", []string{"R", "3"}, false},
		{"empty name", "7 () R 3", "", []string{"R", "3"}, false},
		{"nothing after the name", "7 (x)", "x", []string{}, false},
		{"no name", "7 x R 3", "", nil, true},
		{"unclosed name", "7 (x R 3", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			comm, fields, err := Split([]byte(tt.in))
			if (err != nil) != tt.wantErr || comm != tt.wantComm || !reflect.DeepEqual(fields, tt.wantFields) {
				t.Errorf("Split(%q) = %q, %q, %v; want %q, %q, error %v",
					tt.in, comm, fields, err, tt.wantComm, tt.wantFields, tt.wantErr)
			}
		})
	}
}

func TestRead(t *testing.T) {
	comm, fields, err := Read("/proc/self/stat")
	if err != nil || comm == "" || len(fields) <= STime {
		t.Errorf("Read(/proc/self/stat) = %q, %d fields, %v", comm, len(fields), err)
	}
	bad := filepath.Join(t.TempDir(), "stat")
	if err := os.WriteFile(bad, []byte("no name"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(bad); err == nil {
		t.Error("Read of a stat without a name succeeded")
	}
	if _, _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Read of a missing file succeeded")
	}
}
