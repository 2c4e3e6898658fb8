// SPDX-License-Identifier: Apache-2.0

// Package version names the build: what -V prints, the stats meta carries
// and the exit report starts with.
package version

import "runtime/debug"

// release is set with -ldflags "-X .../version.release=..." by builds that
// know their release (make deb); otherwise the build info names the module
// version Go derived from the checkout.
var release string

// String is the module version (or the release), then the VCS revision the
// binary was built from, marked -dirty if the tree had changes.
func String() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return orDevel(release)
	}
	v := release
	if v == "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	v = orDevel(v)
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return v + " (" + rev + ")"
}

func orDevel(v string) string {
	if v == "" {
		return "devel"
	}
	return v
}
