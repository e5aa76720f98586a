package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/creds"
)

func (e *env) statusCmd() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "list your live grants with the time left",
		Flags:  []cli.Flag{formatFlag()},
		Action: e.runStatus,
	}
}

// runStatus reads only local state: it works without the daemon.
func (e *env) runStatus(c *cli.Context) error {
	dir, err := creds.DefaultDir()
	if err != nil {
		return err
	}
	gs, err := dir.Grants()
	if err != nil {
		return err
	}
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	now := time.Now()
	enc := json.NewEncoder(e.stdout)
	live := 0
	for _, g := range gs {
		left := g.ValidBefore().Sub(now)
		if left <= 0 {
			continue
		}
		live++
		if asJSON {
			if err := enc.Encode(map[string]any{"principal": g.Login + "@" + g.Host, "serial": fmt.Sprint(g.Cert.Serial),
				"valid_before": g.ValidBefore().UTC(), "seconds_left": int(left.Seconds()), "key_id": g.Cert.KeyId, "certificate_file": g.CertPath}); err != nil {
				return err
			}
			continue
		}
		linef(e.stdout, "%-32s %8s left  serial %d  %s", g.Login+"@"+g.Host, left.Round(time.Second), g.Cert.Serial, g.Cert.KeyId)
	}
	if live == 0 && !asJSON {
		fmt.Fprintln(e.stderr, "no live grants; ask with jit request HOST --login LOGIN --reason TEXT")
	}
	return nil
}
