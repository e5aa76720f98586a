package hostjoin

import (
	"testing"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestImportsStayClientSide keeps the package linkable into jit without
// the server: of this module it may import only the API's client and wire
// types, the atomic file write and the one public-key rule.
func TestImportsStayClientSide(t *testing.T) {
	testkit.CheckImports(t, ".", "api", "sshkey", "atomicfile")
}
