package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// Corpus of BenchmarkSearch.
const (
	searchSessions  = 10000 // recorded sessions
	linesPerSession = 40    // command, output and marker lines per session
	sessionsPerDo   = 200   // sessions written per group-committed transaction
	searchRuns      = 20    // timed searches per query and iteration
	// rareToken is planted in rareEvery-th session only.
	rareToken = "deadbeef-7f3a"
	rareEvery = 1000
)

// BenchmarkSearch fills an audit store with searchSessions sessions of
// shell-like text (prompts, commands, output, markers) and times
// Store.Search for typical queries, searchRuns times each. It reports the
// mean, p50 and p99 in milliseconds and the number of hits.
func BenchmarkSearch(b *testing.B) {
	store, err := audit.Open(filepath.Join(b.TempDir(), "jitssh.db"))
	if err != nil {
		b.Fatalf("open audit store: %v", err)
	}
	b.Cleanup(func() {
		if err := store.Close(); err != nil {
			b.Errorf("close audit store: %v", err)
		}
	})
	start := time.Now()
	if err := fillSessions(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	b.Logf("indexed %d sessions, %d lines, in %v", searchSessions, searchSessions*linesPerSession, time.Since(start).Round(time.Millisecond))
	queries := []struct {
		name  string
		query audit.SearchQuery
	}{
		{name: "common-command-first-100", query: audit.SearchQuery{Text: "systemctl restart", Limit: 100}},
		{name: "common-command-all", query: audit.SearchQuery{Text: "systemctl restart"}},
		{name: "rare-token", query: audit.SearchQuery{Text: rareToken}},
		{name: "command-one-user", query: audit.SearchQuery{Text: "sudo -i", User: "user7", Limit: 100}},
		{name: "command-last-day", query: audit.SearchQuery{Text: "kubectl delete", Since: corpusStart().Add(29 * 24 * time.Hour), Limit: 100}},
		{name: "short-term-no-index", query: audit.SearchQuery{Text: "rm", Limit: 100}},
		{name: "no-match", query: audit.SearchQuery{Text: "shutdown -r now"}},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			var took []time.Duration
			var hits int
			for i := 0; i < b.N; i++ {
				for run := 0; run < searchRuns; run++ {
					t0 := time.Now()
					res, err := store.Search(context.Background(), q.query)
					took = append(took, time.Since(t0))
					if err != nil {
						b.Fatalf("search %q: %v", q.query.Text, err)
					}
					hits = len(res)
				}
			}
			var sum time.Duration
			for _, d := range took {
				sum += d
			}
			b.ReportMetric(ms(sum)/float64(len(took)), "ms/search")
			b.ReportMetric(ms(percentile(took, 50)), "p50_ms")
			b.ReportMetric(ms(percentile(took, 99)), "p99_ms")
			b.ReportMetric(float64(hits), "hits")
		})
	}
}

// corpusStart is when the first generated session starts; sessions follow
// over 30 days.
func corpusStart() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// fillSessions writes the corpus: sessions and their text, deterministic
// (fixed seed) so that runs compare.
func fillSessions(ctx context.Context, store *audit.Store) error {
	rng := rand.New(rand.NewPCG(1, 2))
	span := 30 * 24 * time.Hour
	for first := 0; first < searchSessions; first += sessionsPerDo {
		err := store.Do(ctx, func(tx *audit.Tx) error {
			for i := first; i < min(first+sessionsPerDo, searchSessions); i++ {
				s := audit.Session{
					ID:        fmt.Sprintf("ses-%05d", i),
					RequestID: fmt.Sprintf("req-%05d", i),
					User:      fmt.Sprintf("user%d", rng.IntN(50)),
					Host:      fmt.Sprintf("db%d", rng.IntN(200)),
					Login:     []string{"deploy", "root", "postgres"}[rng.IntN(3)],
					StartedAt: corpusStart().Add(span / searchSessions * time.Duration(i)),
				}
				s.EndedAt = s.StartedAt.Add(time.Duration(1+rng.IntN(3600)) * time.Second)
				if err := tx.InsertSession(s); err != nil {
					return err
				}
				if err := tx.IndexText(sessionText(rng, s, i%rareEvery == 0)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fill sessions from %d: %w", first, err)
		}
	}
	return nil
}

// shellCommand is what an engineer types and the output lines it prints.
type shellCommand struct {
	cmd    string
	output []string
}

// commands returns what engineers type, with output lines.
func commands() []shellCommand {
	return []shellCommand{
		{"systemctl restart nginx", nil},
		{"systemctl status postgresql", []string{"● postgresql.service - PostgreSQL RDBMS", "     Loaded: loaded (/lib/systemd/system/postgresql.service; enabled)", "     Active: active (exited) since %s; %d min ago"}},
		{"sudo -i", nil},
		{"journalctl -u nginx --since today | tail", []string{"%s db nginx[%d]: 2026/01/01 upstream timed out (110: Connection timed out)", "%s db nginx[%d]: worker process %d exited on signal 9"}},
		{"df -h /var", []string{"Filesystem      Size  Used Avail Use% Mounted on", "/dev/sda1       100G   %dG   40G  %d%% /var"}},
		{"ps aux --sort=-%mem | head -3", []string{"USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND", "postgres  %d  2.0 12.1 2243000 991000 ?  Ss   %s   3:12 postgres: checkpointer"}},
		{"kubectl get pods -n payments", []string{"NAME                        READY   STATUS    RESTARTS   AGE", "payments-api-%x-%d   1/1     Running   0          %dh"}},
		{"kubectl delete pod payments-api-%x-%d -n payments", []string{"pod \"payments-api-%x\" deleted"}},
		{"tail -n 50 /var/log/app/error.log", []string{"%s ERROR request id=%x failed: context deadline exceeded", "%s WARN retrying connection to 10.0.%d.%d:5432"}},
		{"psql -c 'select count(*) from orders'", []string{" count ", "-------", " %d", "(1 row)"}},
		{"git -C /srv/app pull --ff-only", []string{"Updating %x..%x", "Fast-forward", " src/handler.go | %d ++++--"}},
		{"ls -la /etc/nginx/sites-enabled", []string{"total 8", "lrwxrwxrwx 1 root root   34 Jan  1 %s default -> /etc/nginx/sites-available/default"}},
		{"rm -f /tmp/cache-%x.lock", nil},
		{"vim /etc/postgresql/15/main/postgresql.conf", []string{"\"postgresql.conf\" %dL, %dB written"}},
	}
}

// sessionText builds linesPerSession lines for s: prompts with commands,
// their output, and an exit marker.
func sessionText(rng *rand.Rand, s audit.Session, rare bool) []audit.TextLine {
	lines := make([]audit.TextLine, 0, linesPerSession)
	off := time.Duration(0)
	add := func(kind, text string) {
		off += time.Duration(200+rng.IntN(5000)) * time.Millisecond
		lines = append(lines, audit.TextLine{SessionID: s.ID, Offset: off, Kind: kind, Text: text})
	}
	prompt := fmt.Sprintf("%s@%s:~$ ", s.Login, s.Host)
	cmds := commands()
	for len(lines) < linesPerSession-1 {
		c := cmds[rng.IntN(len(cmds))]
		add("o", prompt+fill(rng, c.cmd))
		for _, o := range c.output {
			if len(lines) >= linesPerSession-1 {
				break
			}
			add("o", fill(rng, o))
		}
	}
	if rare {
		lines[len(lines)/2].Text += " trace=" + rareToken
	}
	add("m", fmt.Sprintf("exit %d", rng.IntN(2)))
	return lines
}

// fill replaces the format verbs of t with random values.
func fill(rng *rand.Rand, t string) string {
	var sb strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '%' || i+1 == len(t) {
			sb.WriteByte(t[i])
			continue
		}
		i++
		switch t[i] {
		case 'd':
			fmt.Fprintf(&sb, "%d", rng.IntN(100000))
		case 'x':
			fmt.Fprintf(&sb, "%08x", rng.Uint32())
		case 's':
			fmt.Fprintf(&sb, "%02d:%02d:%02d", rng.IntN(24), rng.IntN(60), rng.IntN(60))
		default:
			sb.WriteByte(t[i])
		}
	}
	return sb.String()
}
