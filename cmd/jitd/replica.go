package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/recstore"
)

func replicaCommand() *cli.Command {
	return &cli.Command{
		Name:  "replica",
		Usage: "act on the replica registry shared by jitd replicas on one store",
		Subcommands: []*cli.Command{{
			Name: "forget",
			Usage: "end the live sessions of a replica that is down and will not come back, and remove it from the registry " +
				"(refused while it beats)",
			ArgsUsage: "ID",
			Flags: []cli.Flag{
				dataFlag(), storeFlag(),
				&cli.StringFlag{Name: "recordings", Value: "local", Usage: "where recordings live, as given to jitd serve: local or s3://BUCKET/PREFIX"},
				&cli.StringFlag{Name: "s3-endpoint", Usage: "S3-compatible endpoint URL, as given to jitd serve"},
				&cli.StringFlag{Name: "s3-region", Usage: "the bucket's region, as given to jitd serve"},
				&cli.StringFlag{Name: "s3-ca-file", Usage: "PEM `FILE` of the CA certificates of a private https S3 endpoint"},
			},
			Action: runReplicaForget,
		}},
	}
}

// runReplicaForget is jitd replica forget: the sessions a dead replica's
// rows keep live end (recording lost unless the object store holds the
// recording) and its registry row goes, audited with the operator as actor.
func runReplicaForget(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("give one replica ID (jit replicas lists them)", 2)
	}
	recs, err := recstore.ParseLocation(c.String("recordings"))
	if err != nil {
		return cli.Exit("--recordings: "+err.Error(), 2)
	}
	id := c.Args().First()
	ended, err := daemon.ForgetReplica(c.Context, daemon.ForgetConfig{
		Layout: layout(c), ID: id, Recordings: recs,
		S3: recstore.S3Config{Endpoint: c.String("s3-endpoint"), Region: c.String("s3-region"), CAFile: c.String("s3-ca-file")},
	})
	if err != nil {
		return err
	}
	w := c.App.Writer
	for _, s := range ended {
		fmt.Fprintf(w, "ended session %s of %s on %s@%s: %s (recording %d bytes)\n", s.ID, s.User, s.Login, s.Host, s.EndReason, s.RecordingSize)
	}
	fmt.Fprintf(w, "forgot replica %s: %d live sessions ended\n", id, len(ended))
	return nil
}
