package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/jitclient"
)

func (e *env) consoleCmd() *cli.Command {
	return &cli.Command{
		Name:  "console",
		Usage: "open the web console in your browser, logged in as you for as long as your login lasts",
		Description: "Asks jitd for a one-time code (single use, valid 60s) and opens $BROWSER, or xdg-open, at the console's login page\n" +
			"with the code in the URL's fragment (never sent to a server in Referer or access logs). Without a browser it prints the URL.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "print", Usage: "print the URL instead of opening a browser"},
		},
		Action: e.runConsole,
	}
}

// runConsole gets a one-time code and opens the browser at the console.
func (e *env) runConsole(c *cli.Context) error {
	if c.NArg() != 0 {
		return cli.Exit("jit console takes no arguments", exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		res, err := cl.API.ConsoleCode(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("print") || !openBrowser(res.URL) {
			fmt.Fprintf(e.stderr, "open this URL in your browser within %s (it works once):\n", time.Until(res.ExpiresAt).Round(time.Second))
			fmt.Fprintln(e.stdout, res.URL)
			return nil
		}
		fmt.Fprintln(e.stderr, "opened the console in your browser")
		return nil
	})
}

// openBrowser hands url to $BROWSER (a colon-separated list, as xdg-utils
// read it; %s is replaced by the URL) or xdg-open, and reports whether one
// started. The URL is one argument, never passed through a shell.
func openBrowser(url string) bool {
	var cands [][]string
	for _, b := range strings.Split(os.Getenv("BROWSER"), ":") {
		if f := strings.Fields(b); len(f) > 0 {
			args := append([]string{}, f...)
			replaced := false
			for i, a := range args {
				if strings.Contains(a, "%s") {
					args[i], replaced = strings.ReplaceAll(a, "%s", url), true
				}
			}
			if !replaced {
				args = append(args, url)
			}
			cands = append(cands, args)
		}
	}
	cands = append(cands, []string{"xdg-open", url})
	for _, args := range cands {
		if _, err := exec.LookPath(args[0]); err != nil {
			continue
		}
		// Not CommandContext: the browser outlives this command.
		cmd := exec.Command(args[0], args[1:]...)
		if err := cmd.Start(); err == nil {
			go func() { _ = cmd.Wait() }()
			return true
		}
	}
	return false
}
