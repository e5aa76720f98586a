package jitclient

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// BrowserOpener returns how to open a URL in the person's browser, or nil
// when there is none to open (the login then uses the device flow):
// $BROWSER when set (a list of commands separated by ':', each with %s
// for the URL or taking it as its last argument; the first that starts
// wins), else xdg-open on a desktop session (DISPLAY or WAYLAND_DISPLAY
// set) or open on macOS. The command is started, not waited for: a
// browser may keep running; the login waits for the redirect instead.
func BrowserOpener(getenv func(string) string, goos string) func(url string) error {
	var cmds []string
	switch {
	case getenv("BROWSER") != "":
		cmds = strings.Split(getenv("BROWSER"), ":")
	case goos == "darwin":
		cmds = []string{"open"}
	case getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != "":
		cmds = []string{"xdg-open"}
	default:
		return nil
	}
	return func(url string) error {
		var errs []string
		for _, c := range cmds {
			args := strings.Fields(c)
			if len(args) == 0 {
				continue
			}
			if i := slices.Index(args, "%s"); i >= 0 {
				args[i] = url
			} else {
				args = append(args, url)
			}
			cmd := exec.Command(args[0], args[1:]...)
			if err := cmd.Start(); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			go func() { _ = cmd.Wait() }() // reap it whenever it ends
			return nil
		}
		return fmt.Errorf("%w: %s", ErrNoBrowser, strings.Join(errs, "; "))
	}
}
