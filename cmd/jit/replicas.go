package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
	"github.com/jitssh/jitssh/sessionlog"
)

// replicasCmd is jit replicas: the jitd replicas on one store (admin).
func (e *env) replicasCmd() *cli.Command {
	return &cli.Command{
		Name:   "replicas",
		Usage:  "list the jitd replicas on the audit store: up or down, heartbeat age, version, policy digest, which holds the housekeeping lease (admin)",
		Flags:  []cli.Flag{formatFlag()},
		Action: e.runReplicas,
	}
}

func (e *env) runReplicas(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		return cli.Exit("jit replicas takes no arguments", exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		reps, err := cl.API.Replicas(c.Context)
		if err != nil {
			return err
		}
		return printEach(e.stdout, asJSON, reps, replicaLine)
	})
}

// replicaLine is one replica of jit replicas. Every value was written by
// some replica into the shared store: each is shown through
// sessionlog.Field, bounded and with controls made visible.
func replicaLine(r api.Replica) string {
	state := "down"
	if r.Up {
		state = "up"
	}
	age := "stopped"
	if !r.HeartbeatAt.IsZero() {
		age = fmt.Sprintf("%.1fs", r.HeartbeatAgeSeconds)
	}
	policy := sessionlog.Field(r.PolicySHA256, 12)
	var marks []string
	if r.LeaseHolder {
		marks = append(marks, "lease")
	}
	if r.PolicyDiffers {
		marks = append(marks, "policy-differs")
	}
	if r.Self {
		marks = append(marks, "self")
	}
	return fmt.Sprintf("%-18s %-4s beat=%-8s %-32s version=%s policy=%s %s", sessionlog.Field(r.ID, 64), state, age,
		sessionlog.Field(r.AdvertiseURL, 128), sessionlog.Field(r.Version, 64), policy, strings.Join(marks, ","))
}
