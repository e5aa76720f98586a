package usage

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func newTestApp() *cli.App {
	ok := func(*cli.Context) error { return nil }
	return &cli.App{
		Name: "jit", Writer: io.Discard, ErrWriter: io.Discard,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		Flags:           []cli.Flag{&cli.StringFlag{Name: "format"}},
		Commands: []*cli.Command{
			{Name: "request", Flags: []cli.Flag{&cli.StringFlag{Name: "login"}}, Action: ok},
			{Name: "admin", Subcommands: []*cli.Command{
				{Name: "user", Subcommands: []*cli.Command{
					{Name: "add", Flags: []cli.Flag{&cli.StringFlag{Name: "key"}}, Action: ok},
					{Name: "remove", Flags: []cli.Flag{
						&cli.StringSliceFlag{Name: "reason", Aliases: []string{"r"}, Required: true},
						&cli.DurationFlag{Name: "after", Required: true},
					}, Action: ok},
				}},
			}},
		},
	}
}

func TestInstall(t *testing.T) {
	tests := []struct {
		name     string
		args     string
		wantCode int    // 0: no error
		wantMsg  string // part of the error message
	}{
		{name: "valid command", args: "jit request --login deploy web1"},
		{name: "valid nested command", args: "jit admin user add --key k alice"},
		{name: "unknown command", args: "jit frobnicate", wantCode: 2, wantMsg: `unknown command "frobnicate" (see jit --help)`},
		{name: "unknown subcommand", args: "jit admin user frob", wantCode: 2, wantMsg: `unknown command "frob" (see jit admin user --help)`},
		{name: "bad global flag", args: "jit --bogus request", wantCode: 2, wantMsg: "-bogus (see jit --help)"},
		{name: "bad command flag", args: "jit request --bogus web1", wantCode: 2, wantMsg: "-bogus (see jit request --help)"},
		{name: "bad nested flag", args: "jit admin user add --nokey alice", wantCode: 2, wantMsg: "-nokey (see jit admin user add --help)"},
		{name: "flag without value", args: "jit request --login", wantCode: 2, wantMsg: "flag needs an argument"},
		{name: "required flags given", args: "jit admin user remove --reason gone --after 1h bob"},
		{name: "required flag by alias", args: "jit admin user remove -r gone --after 1h bob"},
		{name: "required flag missing", args: "jit admin user remove --after 1h bob", wantCode: 2, wantMsg: "--reason is required (see jit admin user remove --help)"},
		{name: "second required flag missing", args: "jit admin user remove --reason gone bob", wantCode: 2, wantMsg: "--after is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := newTestApp()
			tr := Install(app, 2)
			err := app.Run(strings.Fields(tc.args))
			if err == nil {
				err = tr.Err()
			}
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("Run(%q) = %v, want success", tc.args, err)
				}
				return
			}
			var ec cli.ExitCoder
			if !errors.As(err, &ec) {
				t.Fatalf("Run(%q) = %v (%T), want a cli.ExitCoder", tc.args, err, err)
			}
			if ec.ExitCode() != tc.wantCode || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Run(%q) = exit %d %q, want exit %d containing %q", tc.args, ec.ExitCode(), err, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestInstallKeepsExistingHooks(t *testing.T) {
	app := newTestApp()
	own := errors.New("own handler")
	app.Commands[0].OnUsageError = func(*cli.Context, error, bool) error { return own }
	Install(app, 2)
	if err := app.Run([]string{"jit", "request", "--bogus"}); !errors.Is(err, own) {
		t.Errorf("Run = %v, want the command's own OnUsageError result", err)
	}
}
