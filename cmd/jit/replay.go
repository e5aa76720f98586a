package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/jitssh/jitssh/jitclient"
	"github.com/jitssh/jitssh/sessionlog"
)

func (e *env) replayCmd() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "play a recorded session in this terminal with its real timing",
		ArgsUsage: "SESSION_ID",
		Description: "Keys while playing: space pauses, right/left arrows seek 5s, + and - change speed, q quits.\n" +
			"Escape sequences that could harm this terminal (clipboard writes, title changes, oversized sequences) are neutralised unless --raw.",
		Flags: []cli.Flag{
			&cli.Float64Flag{Name: "speed", Value: 1, Usage: "playback speed"},
			&cli.DurationFlag{Name: "idle-limit", Value: 2 * time.Second, Usage: "shorten pauses longer than this (0: keep them)"},
			&cli.StringFlag{Name: "from", Usage: "start at this offset (1m30s)"},
			&cli.StringFlag{Name: "at", Usage: "start at a search hit's offset (seconds, as jit sessions search prints)"},
			&cli.BoolFlag{Name: "raw", Usage: "do not neutralise escape sequences"},
		},
		Action: e.runReplay,
	}
}

// runReplay downloads the recording whole, then plays it: seeking needs
// all of it.
func (e *env) runReplay(c *cli.Context) error {
	if err := oneArg(c, "session id"); err != nil {
		return err
	}
	if c.IsSet("at") && c.IsSet("from") {
		return cli.Exit("give --at or --from, not both", exitUsage)
	}
	from, err := parseOffset(first(c.String("at"), c.String("from")))
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	if c.Float64("speed") <= 0 {
		return cli.Exit("--speed must be positive", exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		rec, _, err := cl.FetchRecording(c.Context, c.Args().First(), "replay")
		if err != nil {
			return err
		}
		controls := make(chan sessionlog.Control, 16)
		if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			old, err := term.MakeRaw(int(f.Fd()))
			if err == nil {
				defer term.Restore(int(f.Fd()), old)
				go readKeys(f, controls)
			}
		}
		err = sessionlog.Play(c.Context, e.stdout, rec, sessionlog.PlayOptions{
			Speed: c.Float64("speed"), IdleLimit: c.Duration("idle-limit"), From: from, Sanitize: !c.Bool("raw"),
		}, controls, e.playerStatus())
		if rec.Truncated {
			fmt.Fprintln(e.stderr, "\r\n[recording was cut short (the bastion stopped mid-write); played what is there]")
		}
		return err
	})
}

// playerStatus draws the player's state on the terminal's last line, and
// nothing when stderr is not a terminal.
func (e *env) playerStatus() func(sessionlog.PlayerStatus) {
	if !isTerminal(e.stderr) {
		return func(sessionlog.PlayerStatus) {}
	}
	return func(s sessionlog.PlayerStatus) {
		state := "playing"
		if s.Paused {
			state = "paused"
		}
		fmt.Fprintf(e.stderr, "\x1b7\x1b[999;1H\x1b[K[%s %s/%s x%g]\x1b8", state, s.Position.Round(time.Second), s.Length.Round(time.Second), s.Speed)
	}
}

// readKeys turns keystrokes into player controls until stdin closes.
func readKeys(f *os.File, controls chan<- sessionlog.Control) {
	buf := make([]byte, 16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		c, ok := keyControl(string(buf[:n]))
		if !ok {
			continue
		}
		controls <- c
		if c == sessionlog.Quit {
			return
		}
	}
}

// keyControl maps one read of keys to a player control.
func keyControl(in string) (sessionlog.Control, bool) {
	switch in {
	case " ":
		return sessionlog.Pause, true
	case "\x1b[C":
		return sessionlog.SeekForward, true
	case "\x1b[D":
		return sessionlog.SeekBackward, true
	case "+", "=":
		return sessionlog.SpeedUp, true
	case "-":
		return sessionlog.SlowDown, true
	case "q", "\x03":
		return sessionlog.Quit, true
	}
	return 0, false
}

// parseOffset reads "1m30s" or plain seconds ("90.5").
func parseOffset(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("offset %q is neither seconds nor a duration such as 1m30s", s)
	}
	return d, nil
}
