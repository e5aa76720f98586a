package policy

import _ "embed" // for the demo policy

// demo is a string, not a []byte, so that nobody can change it.
//
//go:embed demo.yaml
var demo string

// Demo returns the commented demo policy that `jitd init` writes: users
// alice, bob (also an approver) and carol in group dev, an admin and an
// auditor, all without keys; hosts db1 (prod) and web1 (staging); roles for
// routine staging work, ticketed prod deploys, approved root on prod, and
// break-glass emergencies. Each call returns a fresh copy.
func Demo() []byte {
	return []byte(demo)
}
