package jitclient

import (
	"testing"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestImportsStayClientSide keeps the package linkable without the
// server: of this module it may import only the API's client and wire
// types, the local credentials, recordings and the atomic file write.
func TestImportsStayClientSide(t *testing.T) {
	testkit.CheckImports(t, ".", "api", "creds", "sessionlog", "atomicfile")
}
