// Command jit is the engineer's and the security team's jitssh CLI: log in,
// ask for access, approve, connect through the bastion, and list, search,
// replay and verify sessions and the audit trail.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/cmd/internal/argorder"
	"github.com/jitssh/jitssh/cmd/internal/usage"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/jitclient"
)

// Exit codes, documented in docs/cli.md. jit ssh passes ssh's own code through.
const (
	exitError    = 1
	exitUsage    = 2
	exitDenied   = 3
	exitTimedOut = 4
	exitEnded    = 5 // the request expired or was cancelled while waiting
	// exitInterrupted is the shell's code for SIGINT: Ctrl-C while waiting
	// leaves the request pending.
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	usageErrs := usage.Install(app, exitUsage)
	err := app.RunContext(ctx, argorder.Reorder(app, args))
	if err == nil {
		err = usageErrs.Err()
	}
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			printError(stderr, "jit: error:", msg)
		}
		return ec.ExitCode()
	}
	printError(stderr, "jit: error:", err.Error())
	var hh *hostHintError
	if errors.As(err, &hh) {
		printError(stderr, "jit: hint:", hh.hint)
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		if hint := hintFor(ae); hint != "" {
			fmt.Fprintln(stderr, "jit: hint:", hint)
		}
		if ae.Status == http.StatusForbidden {
			return exitDenied
		}
		if endedCode(ae) {
			return exitEnded
		}
	}
	return exitError
}

// endedCode reports whether e says the request is past what was asked of
// it: decided, expired, cancelled or redeemed already (docs/cli.md, exit 5).
func endedCode(e *api.Error) bool {
	switch e.Code {
	case api.CodeNotPending, api.CodeNotApproved, api.CodeRequestExpired, api.CodeAlreadyDecided:
		return e.Status == http.StatusConflict
	}
	return false
}

// hintFor says what to do about the API errors a user can act on.
func hintFor(e *api.Error) string {
	switch e.Code {
	case api.CodeUnauthenticated:
		return "run jit login again"
	case api.CodeAuditUnavailable:
		return "the daemon cannot record to its audit store, so it issues nothing; tell the operators"
	case api.CodeNotAuditor, api.CodeNotAdmin:
		return "this needs a separate identity with that role (admin and normal identities are kept apart)"
	case api.CodeJoinTokenInvalid:
		return "an admin makes a new token: jit admin host token NAME"
	case api.CodeHostKeyChanged:
		return "the host is enrolled with another host key; an admin removes it (jit admin host remove NAME) before it joins again"
	case api.CodeHostRemoved:
		return "this host was removed from jitssh; it joins again with a new token"
	case api.CodeRateLimited:
		if e.RetryAfter > 0 {
			return fmt.Sprintf("the daemon limits how often this may be done; try again in %s", e.RetryAfter)
		}
		return "the daemon limits how often this may be done; try again in a minute"
	}
	return ""
}

// env carries what every command needs.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	return &cli.App{
		Name:                 "jit",
		Usage:                "just-in-time SSH access: ask for one host, for minutes, with a reason",
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Repeatable flags take one value per use: a key file's path may
		// hold a comma, which urfave/cli would otherwise split on.
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {}, // run() prints and maps exit codes; usage.Install maps usage errors
		Flags:                     []cli.Flag{formatFlag()},
		Commands: []*cli.Command{
			e.loginCmd(), e.logoutCmd(),
			e.requestCmd(), e.waitCmd(), e.statusCmd(), e.hostsCmd(),
			e.requestsCmd(), e.approveCmd(), e.denyCmd(), e.cancelCmd(),
			e.sshCmd(), e.sshConfigCmd(),
			e.sessionsCmd(), e.replayCmd(), e.consoleCmd(),
			e.auditCmd(), e.adminCmd(), e.replicasCmd(), e.krlCmd(), e.hostCmd(),
			completionCmd(),
		},
	}
}

// client opens the stored login. JIT_ADDR overrides the stored address.
func (e *env) client() (*jitclient.Client, error) {
	dir, err := creds.DefaultDir()
	if err != nil {
		return nil, err
	}
	return jitclient.Open(dir, os.Getenv("JIT_ADDR"))
}

// withClient runs fn with an open API client and closes it after. Call it
// once the command's usage checks have passed: opening the client is what
// notices a missing login, and docs/cli.md promises that a usage error (2)
// is reported before that (1).
func (e *env) withClient(fn func(*jitclient.Client) error) error {
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl)
}

// printEach writes items one per line: NDJSON with --format json (faithful:
// JSON escapes what needs it), otherwise the text line that line makes of
// each item, neutralised and bounded by textLine.
func printEach[T any](w io.Writer, asJSON bool, items []T, line func(T) string) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		var err error
		if asJSON {
			err = enc.Encode(it)
		} else {
			_, err = fmt.Fprintln(w, textLine(line(it)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// jsonOutput reads --format where the user gave it: after the command
// (jit status --format json) or before it (jit --format json status). A
// command's own --format flag would otherwise shadow the global one with
// its default. JIT_FORMAT is the fallback of both.
func jsonOutput(c *cli.Context) (bool, error) {
	f := c.String("format")
	for _, ctx := range c.Lineage() {
		if slices.Contains(ctx.LocalFlagNames(), "format") {
			f = ctx.String("format")
			break
		}
	}
	if err := checkFormat(f); err != nil {
		return false, err
	}
	return f == "json", nil
}

// formatFlag is --format on a command; see jsonOutput. Each command gets
// its own: urfave/cli records on a flag whether it was set.
func formatFlag() cli.Flag {
	return &cli.StringFlag{Name: "format", Value: "text", EnvVars: []string{"JIT_FORMAT"}, Usage: "output format: text or json",
		// Checked as the flags are parsed, before the command does anything:
		// a bad --format must not first issue, approve or log in and only
		// then fail to print.
		Action: func(_ *cli.Context, f string) error { return checkFormat(f) }}
}

// checkFormat is the usage error of a --format other than text or json.
func checkFormat(f string) error {
	switch f {
	case "json", "text", "":
		return nil
	}
	return cli.Exit(fmt.Sprintf("--format %q must be text or json", f), exitUsage)
}

// first returns the first non-empty value.
func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// oneArg is the usage check of commands that take exactly one argument.
func oneArg(c *cli.Context, what string) error {
	if c.NArg() != 1 {
		return cli.Exit("give one "+what, exitUsage)
	}
	return nil
}
