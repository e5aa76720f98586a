// Package e2e holds jitssh's end-to-end tests. They build the jitd and jit
// binaries once, start a real daemon from a fresh data directory with a
// test policy, drive it only through the jit command line as separate
// engineers (each with their own JIT_HOME and enrolled key), and check the
// certificates they get against real OpenSSH sshd servers, ssh-keygen and
// ssh -G. They are the acceptance tests of issues 2 (justified, host-scoped,
// minutes-long certificates with an audit trail) and 4 (approvals).
//
// The package has no non-test code; run it with
//
//	go test -tags sqlite_fts5 ./e2e/
//
// With CI=true a missing OpenSSH binary fails the tests; otherwise they skip.
package e2e
