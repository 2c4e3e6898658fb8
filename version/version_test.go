// SPDX-License-Identifier: Apache-2.0

package version

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		release string
		want    string // prefix
	}{
		{"", "devel"}, // a test binary carries no module version
		{"1.2.3", "1.2.3"},
	}
	for _, tt := range tests {
		release = tt.release
		got := String()
		if !strings.HasPrefix(got, tt.want) || strings.Contains(got, "(devel)") {
			t.Errorf("release %q: String() = %q, want it to start with %q", tt.release, got, tt.want)
		}
	}
	release = ""
}
