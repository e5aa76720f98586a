package argorder

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestReorder(t *testing.T) {
	app := &cli.App{
		Flags: []cli.Flag{&cli.StringFlag{Name: "format"}},
		Commands: []*cli.Command{
			{Name: "request", Flags: []cli.Flag{
				&cli.StringFlag{Name: "login", Aliases: []string{"l"}},
				&cli.StringFlag{Name: "reason"},
				&cli.BoolFlag{Name: "no-wait"},
			}},
			{Name: "admin", Subcommands: []*cli.Command{
				{Name: "user", Subcommands: []*cli.Command{
					{Name: "add", Flags: []cli.Flag{&cli.StringSliceFlag{Name: "key"}}},
				}},
			}},
			{Name: "ssh", Flags: []cli.Flag{&cli.StringFlag{Name: "login"}}},
		},
	}
	tests := []struct {
		name, in, want string
	}{
		{name: "flags after host", in: "jit request web1 --login deploy --reason fix-it", want: "jit request --login deploy --reason fix-it web1"},
		{name: "bool flag does not eat the host", in: "jit request --no-wait web1 -l deploy", want: "jit request --no-wait -l deploy web1"},
		{name: "flag with equals", in: "jit request web1 --login=deploy", want: "jit request --login=deploy web1"},
		{name: "global flag stays first", in: "jit --format json request web1 --login deploy", want: "jit --format json request --login deploy web1"},
		{name: "nested subcommands", in: "jit admin user add alice --key a.pub --key b.pub", want: "jit admin user add --key a.pub --key b.pub alice"},
		{name: "double dash keeps the remote command", in: "jit ssh db1 --login root -- ls -l --all", want: "jit ssh --login root db1 -- ls -l --all"},
		{name: "already ordered", in: "jit request --login deploy web1", want: "jit request --login deploy web1"},
		{name: "unknown command untouched", in: "jit nosuch --x y", want: "jit nosuch --x y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(Reorder(app, strings.Fields(tt.in)), " ")
			if got != tt.want {
				t.Fatalf("Reorder(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}
