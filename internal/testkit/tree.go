package testkit

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Tree returns every entry under root, keyed by its path below root ("" for
// root itself), with its mode and, for regular files, the SHA-256 of the
// content: two equal Trees mean nothing under root was added, removed,
// rewritten or chmodded, e.g. by an installer that failed. It fails t if
// root cannot be walked.
func Tree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[strings.TrimPrefix(path, root)] = v
		return nil
	})
	if err != nil {
		t.Fatalf("testkit.Tree: walk %s: %v", root, err)
	}
	return out
}

// TreeDiff lists how after differs from before, one line per path
// ("changed", "appeared", "gone"), sorted; empty when they are equal.
func TreeDiff(before, after map[string]string) []string {
	var diff []string
	for p, v := range before {
		switch w, ok := after[p]; {
		case !ok:
			diff = append(diff, p+": gone")
		case w != v:
			diff = append(diff, p+": changed")
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, p+": appeared")
		}
	}
	slices.Sort(diff)
	return diff
}
