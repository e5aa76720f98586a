package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/sessionlog"
)

func (e *env) sessionsCmd() *cli.Command {
	filterFlags := []cli.Flag{
		&cli.StringFlag{Name: "user", Usage: "only this user's sessions"},
		&cli.StringFlag{Name: "host", Usage: "only sessions on this host"},
		&cli.StringFlag{Name: "since", Usage: "RFC 3339 time or a duration back from now (2h)"},
		&cli.StringFlag{Name: "until", Usage: "RFC 3339 time or a duration back from now"},
		formatFlag,
	}
	return &cli.Command{
		Name:  "sessions",
		Usage: "list, show, search, export and watch recorded sessions",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list sessions, newest first",
				Flags: append([]cli.Flag{&cli.BoolFlag{Name: "live", Usage: "only sessions still running"}}, filterFlags...),
				Action: func(c *cli.Context) error {
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					ss, err := client.Sessions(c.Context, api.SessionQuery{User: c.String("user"), Host: c.String("host"), Since: c.String("since"), Until: c.String("until"), Live: c.Bool("live")})
					if err != nil {
						return err
					}
					return e.printSessions(c, ss)
				},
			},
			{
				Name:      "show",
				Usage:     "show a session with its grant, justification, approvers, serials, timings and recording digest",
				ArgsUsage: "SESSION_ID",
				Flags:     []cli.Flag{formatFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("give one session id", exitUsage)
					}
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					d, err := client.Session(c.Context, c.Args().First())
					if err != nil {
						return err
					}
					return e.printSessionDetail(c, d)
				},
			},
			{
				Name:      "search",
				Usage:     "full-text search over typed commands and output",
				ArgsUsage: "TEXT",
				Flags:     slices.DeleteFunc(slices.Clone(filterFlags), func(f cli.Flag) bool { return f.Names()[0] == "until" }),
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return cli.Exit("give the text to search for", exitUsage)
					}
					asJSON, err := jsonOutput(c)
					if err != nil {
						return err
					}
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					hits, err := client.Search(c.Context, strings.Join(c.Args().Slice(), " "), c.String("user"), c.String("host"), c.String("since"))
					if err != nil {
						return err
					}
					err = printEach(e.stdout, asJSON, hits, func(h api.SearchHit) string {
						return fmt.Sprintf("%s  at %-9s %s  %s", h.SessionID, fmtOffset(h.Offset), h.Kind, h.Snippet)
					})
					if err != nil {
						return err
					}
					if len(hits) == 0 && !asJSON {
						fmt.Fprintln(e.stderr, "no matches")
					} else if !asJSON {
						fmt.Fprintln(e.stderr, "replay from a hit with: jit replay SESSION_ID --at OFFSET")
					}
					return nil
				},
			},
			{
				Name:      "export",
				Usage:     "write a session as an asciicast v2 file (plays in asciinema) or a readable transcript",
				ArgsUsage: "SESSION_ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write (default stdout)"},
					&cli.StringFlag{Name: "format", Value: "cast", Usage: "cast or text"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("give one session id", exitUsage)
					}
					format := c.String("format")
					if format != "cast" && format != "text" {
						return cli.Exit(fmt.Sprintf("--format %q must be cast or text", format), exitUsage)
					}
					rec, raw, err := e.fetchRecording(c, c.Args().First(), "export")
					if err != nil {
						return err
					}
					write := func(out io.Writer) error {
						if format == "text" {
							return sessionlog.WriteTranscript(out, rec)
						}
						_, err := out.Write(raw)
						return err
					}
					path := c.String("output")
					if path == "" {
						return write(e.stdout)
					}
					f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
					if err != nil {
						return fmt.Errorf("create --output %s: %w", path, err)
					}
					if err := write(f); err != nil {
						f.Close()
						return fmt.Errorf("write --output %s: %w", path, err)
					}
					// A recording is evidence: report a failed close rather
					// than leave a silently short file.
					if err := f.Close(); err != nil {
						return fmt.Errorf("write --output %s: %w", path, err)
					}
					return nil
				},
			},
			{
				Name:      "watch",
				Usage:     "follow a live session as it happens",
				ArgsUsage: "SESSION_ID",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "raw", Usage: "do not neutralise escape sequences"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("give one session id", exitUsage)
					}
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					body, err := client.Recording(c.Context, c.Args().First(), "watch", true)
					if err != nil {
						return err
					}
					defer body.Close()
					r, err := sessionlog.NewReader(body)
					if err != nil {
						return err
					}
					var san sessionlog.Sanitizer
					for {
						ev, err := r.Next()
						if err == io.EOF || err == sessionlog.ErrTruncated {
							fmt.Fprintln(e.stderr, "\r\n[session ended]")
							return nil
						}
						if err != nil {
							return err
						}
						if ev.Code != "o" {
							continue
						}
						data := ev.Data
						if !c.Bool("raw") {
							data = san.Filter(data)
						}
						io.WriteString(e.stdout, data)
					}
				},
			},
		},
	}
}

func (e *env) fetchRecording(c *cli.Context, id, purpose string) (*sessionlog.Recording, []byte, error) {
	client, _, _, err := e.client()
	if err != nil {
		return nil, nil, err
	}
	defer client.Close()
	body, err := client.Recording(c.Context, id, purpose, false)
	if err != nil {
		return nil, nil, err
	}
	defer body.Close()
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, nil, fmt.Errorf("download recording: %w", err)
	}
	rec, err := sessionlog.ReadAll(strings.NewReader(string(raw)))
	if err != nil {
		return nil, nil, fmt.Errorf("recording of %s: %w", id, err)
	}
	return rec, raw, nil
}

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
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("give one session id", exitUsage)
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
			rec, _, err := e.fetchRecording(c, c.Args().First(), "replay")
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
			status := func(sessionlog.PlayerStatus) {}
			if isTerminal(e.stderr) {
				status = func(s sessionlog.PlayerStatus) {
					state := "playing"
					if s.Paused {
						state = "paused"
					}
					fmt.Fprintf(e.stderr, "\x1b7\x1b[999;1H\x1b[K[%s %s/%s x%g]\x1b8", state, s.Position.Round(time.Second), s.Length.Round(time.Second), s.Speed)
				}
			}
			err = sessionlog.Play(c.Context, e.stdout, rec, sessionlog.PlayOptions{
				Speed: c.Float64("speed"), IdleLimit: c.Duration("idle-limit"), From: from, Sanitize: !c.Bool("raw"),
			}, controls, status)
			if rec.Truncated {
				fmt.Fprintln(e.stderr, "\r\n[recording was cut short (the bastion stopped mid-write); played what is there]")
			}
			return err
		},
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
		in := string(buf[:n])
		var c sessionlog.Control
		switch {
		case in == " ":
			c = sessionlog.Pause
		case in == "\x1b[C":
			c = sessionlog.SeekForward
		case in == "\x1b[D":
			c = sessionlog.SeekBackward
		case in == "+" || in == "=":
			c = sessionlog.SpeedUp
		case in == "-":
			c = sessionlog.SlowDown
		case in == "q" || in == "\x03":
			c = sessionlog.Quit
		default:
			continue
		}
		controls <- c
		if c == sessionlog.Quit {
			return
		}
	}
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

func fmtOffset(secs float64) string {
	return strconv.FormatFloat(secs, 'f', 1, 64) + "s"
}

func (e *env) printSessions(c *cli.Context, ss []api.Session) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	err = printEach(e.stdout, asJSON, ss, func(s api.Session) string {
		dur := "live"
		if s.EndedAt != nil {
			dur = s.EndedAt.Sub(s.StartedAt).Round(time.Second).String()
		}
		return fmt.Sprintf("%s  %s  %-8s %s@%s  %-6s exit %d  %s", s.ID, s.StartedAt.Local().Format(time.DateTime), s.User, s.Login, s.Host, dur, s.ExitStatus, s.Command)
	})
	if err != nil {
		return err
	}
	if len(ss) == 0 && !asJSON {
		fmt.Fprintln(e.stderr, "no sessions")
	}
	return nil
}

func (e *env) printSessionDetail(c *cli.Context, d api.SessionDetail) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(d)
	}
	s := d.Session
	w := e.stdout
	fmt.Fprintf(w, "session     %s\n", s.ID)
	fmt.Fprintf(w, "who         %s as %s on %s from %s\n", s.User, s.Login, s.Host, s.ClientAddr)
	fmt.Fprintf(w, "started     %s\n", s.StartedAt.Local().Format(time.RFC3339))
	if s.EndedAt != nil {
		fmt.Fprintf(w, "ended       %s (%s, %s)\n", s.EndedAt.Local().Format(time.RFC3339), s.EndedAt.Sub(s.StartedAt).Round(time.Second), s.EndReason)
	} else {
		fmt.Fprintln(w, "ended       (live)")
	}
	if s.Command != "" {
		fmt.Fprintf(w, "command     %s\n", s.Command)
	}
	fmt.Fprintf(w, "exit status %d\n", s.ExitStatus)
	fmt.Fprintf(w, "bytes       %d in, %d out\n", s.BytesIn, s.BytesOut)
	fmt.Fprintf(w, "serials     user cert %d, target cert %d\n", s.Serial, s.TargetSerial)
	fmt.Fprintf(w, "recording   sha256 %s, %d bytes\n", s.RecordingSHA256, s.RecordingSize)
	if r := d.Request; r != nil {
		fmt.Fprintf(w, "request     %s (%s, role %s)\n", r.ID, r.State, r.Role)
		fmt.Fprintf(w, "justification %q\n", r.Reason)
		for _, a := range r.Approvals {
			verb := map[string]string{"approve": "approved", "deny": "denied"}[a.Decision]
			fmt.Fprintf(w, "%-11s %s at %s: %q\n", verb, a.Approver, a.Time.Local().Format(time.RFC3339), a.Reason)
		}
	}
	return nil
}
