package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Shell completion asks jit itself for candidates through urfave/cli's
// --generate-bash-completion flag, so the scripts never go stale.
const bashCompletion = `# jit completion for bash: eval "$(jit completion bash)"
_jit_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local args=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$(jit "${args[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$(jit "${args[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o default -F _jit_complete jit
`

const zshCompletion = `#compdef jit
# jit completion for zsh: eval "$(jit completion zsh)"
_jit() {
  local -a opts
  local cur=${words[CURRENT]}
  local -a args=(${words[2,CURRENT-1]})
  if [[ "$cur" == -* ]]; then
    opts=(${(f)"$(jit $args $cur --generate-bash-completion 2>/dev/null)"})
  else
    opts=(${(f)"$(jit $args --generate-bash-completion 2>/dev/null)"})
  fi
  _describe 'values' opts
}
compdef _jit jit
`

func completionCmd() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, zshCompletion)
				return err
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(c.App.Writer, s)
				return err
			}
			return cli.Exit("give bash, zsh or fish", exitUsage)
		},
	}
}
