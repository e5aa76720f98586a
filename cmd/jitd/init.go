package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/ca"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the data directory: CA keys, TLS certificate, database and a demo policy (never overwrites)",
		Flags: []cli.Flag{
			dataFlag(), storeFlag(),
			&cli.StringFlag{Name: "algorithm", Value: "ed25519", Usage: "CA key algorithm: ed25519, ecdsa-p256, ecdsa-p384, rsa-3072, rsa-4096"},
			&cli.StringSliceFlag{Name: "tls-host", Value: cli.NewStringSlice("127.0.0.1", "localhost"), Usage: "names and addresses in the API's TLS certificate"},
		},
		Action: runInit,
	}
}

// runInit is jitd init: it creates what is missing in the data directory
// and prints the fingerprints an operator hands to engineers.
func runInit(c *cli.Context) error {
	alg, err := ca.ParseAlgorithm(c.String("algorithm"))
	if err != nil {
		return err
	}
	res, err := layout(c).Init(c.Context, alg, c.StringSlice("tls-host"), time.Now())
	if err != nil {
		return err
	}
	res.Print(c.App.Writer)
	return nil
}
