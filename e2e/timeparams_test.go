package e2e

import (
	"strings"
	"testing"
)

// TestTimeParamsOutOfRange: a --since or --until the audit store cannot
// compare with (found by FuzzTimeParams) is the user's malformed flag,
// refused as bad_time naming the range, never "audit store unavailable"
// (the exit code of a 400 is the exit-code mapping's: 1 today, 2 per
// docs/cli.md).
func TestTimeParamsOutOfRange(t *testing.T) {
	t.Parallel()
	alice := newEngineer(t, "alice")
	d := startDaemon(t, renderPolicy(t, cliPolicy, "deploy", []*engineer{alice}, nil))
	d.login(t, alice)
	tests := []struct {
		name string
		args []string
	}{
		{name: "sessions since the year 1500", args: []string{"sessions", "list", "--since", "1500-01-01T00:00:00Z"}},
		{name: "sessions until the year 9999", args: []string{"sessions", "list", "--until", "9999-12-31T23:59:59Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, alice, tc.args...)
			if (code != 1 && code != 2) || !strings.Contains(stderr, "bad_time") || !strings.Contains(stderr, "1678 to 2261") {
				t.Errorf("jit %s: exit %d, stderr %q; want bad_time naming the storable years", strings.Join(tc.args, " "), code, stderr)
			}
		})
	}
}
