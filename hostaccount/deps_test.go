package hostaccount_test

import (
	"testing"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestImportsOnlyAPI: the helper runs as root on every target; of this
// module it links only the wire types and the atomic file write
// (docs/DESIGN.md).
func TestImportsOnlyAPI(t *testing.T) {
	testkit.CheckImports(t, ".", "api", "atomicfile")
}
