package policy

import (
	"reflect"
	"time"
)

// Limits of the console section of the policy file.
const (
	// DefaultShareMax is the longest life of a console share link unless
	// the policy says otherwise.
	DefaultShareMax = 24 * time.Hour
	// ShareMaxLimit bounds console.share_max: a link to a recording is a
	// bearer secret, and a week is long enough for an external audit.
	ShareMaxLimit = 7 * 24 * time.Hour
	// ShareMinLimit is the shortest life a share link may be given
	// (grant.MinShareTTL): a share_max below it would allow no link.
	ShareMinLimit = time.Minute
)

type rawConsole struct {
	ShareMax string `yaml:"share_max"`
}

// ConsoleRule is the policy's console section.
type ConsoleRule struct {
	// ShareMax is the longest life a share link of a recording may be
	// given: DefaultShareMax unless set, at most ShareMaxLimit.
	ShareMax time.Duration
}

// console validates the console section.
func (ps parser) console(top mapping, raw rawConsole) (ConsoleRule, error) {
	m, err := ps.section(top, "console", "", reflect.TypeFor[rawConsole]())
	if err != nil {
		return ConsoleRule{}, err
	}
	rule := ConsoleRule{ShareMax: DefaultShareMax}
	if raw.ShareMax == "" {
		return rule, nil
	}
	d, err := time.ParseDuration(raw.ShareMax)
	if err != nil || d <= 0 {
		return ConsoleRule{}, ps.errf(m.at("share_max"), "console: share_max %q is not a positive duration such as 72h", raw.ShareMax)
	}
	if d < ShareMinLimit {
		return ConsoleRule{}, ps.errf(m.at("share_max"), "console: share_max %s is below the shortest share link life %s", d, ShareMinLimit)
	}
	if d > ShareMaxLimit {
		return ConsoleRule{}, ps.errf(m.at("share_max"), "console: share_max %s exceeds the limit %s", d, ShareMaxLimit)
	}
	rule.ShareMax = d
	return rule, nil
}
