package sessionlog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// fakeClock hands every After request to the test, which decides when it
// fires; Now moves only when the test advances it.
type fakeClock struct {
	*testkit.Clock
	waits chan fakeWait
}

type fakeWait struct {
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{Clock: testkit.NewClock(testStart()), waits: make(chan fakeWait)}
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- fakeWait{d: d, ch: ch}
	return ch
}

// nextWait returns the player's next wait request.
func (c *fakeClock) nextWait(t *testing.T) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("player did not wait")
		return fakeWait{}
	}
}

// fire lets the wait w pass in full.
func (c *fakeClock) fire(w fakeWait) { w.ch <- c.Advance(w.d) }

// writeLog records each Write separately.
type writeLog struct {
	mu     sync.Mutex
	writes []string
}

func (l *writeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, string(p))
	return len(p), nil
}

func (l *writeLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.writes
	l.writes = nil
	return w
}

// playRecording: output at 0, 1 (twice), 10 and 12 s, a marker at 2 s.
func playRecording() *Recording {
	return &Recording{
		Header: Header{Version: 2, Width: 80, Height: 24},
		Events: []Event{
			{0, CodeOutput, "A"}, {1, CodeOutput, "B"}, {1, CodeInput, "typed"}, {1, CodeOutput, "C"},
			{2, CodeMarker, "mark"}, {10, CodeOutput, "D"}, {12, CodeOutput, "E"},
		},
	}
}

// startPlay runs Play in the background; the returned func waits for its
// result.
func startPlay(t *testing.T, ctx context.Context, rec *Recording, opts PlayOptions, controls chan Control) (*writeLog, *statusLog, func() error) {
	t.Helper()
	out := &writeLog{}
	st := &statusLog{}
	errc := make(chan error, 1)
	go func() { errc <- Play(ctx, out, rec, opts, controls, st.add) }()
	return out, st, func() error {
		t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Play did not return")
			return nil
		}
	}
}

type statusLog struct {
	mu  sync.Mutex
	all []PlayerStatus
}

func (s *statusLog) add(st PlayerStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, st)
}

func (s *statusLog) last() PlayerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return PlayerStatus{}
	}
	return s.all[len(s.all)-1]
}

func (s *statusLog) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

func TestPlayTiming(t *testing.T) {
	s := time.Second
	tests := []struct {
		name       string
		opts       PlayOptions
		wantWaits  []time.Duration
		wantWrites []string
	}{
		{
			name:       "real time",
			wantWaits:  []time.Duration{s, 9 * s, 2 * s},
			wantWrites: []string{"A", "BC", "D", "E"},
		},
		{
			name:       "idle gaps shortened",
			opts:       PlayOptions{IdleLimit: 3 * s},
			wantWaits:  []time.Duration{s, 3 * s, 2 * s},
			wantWrites: []string{"A", "BC", "D", "E"},
		},
		{
			name:       "double speed",
			opts:       PlayOptions{Speed: 2},
			wantWaits:  []time.Duration{s / 2, 4500 * time.Millisecond, s},
			wantWrites: []string{"A", "BC", "D", "E"},
		},
		{
			name:       "speed and idle limit",
			opts:       PlayOptions{Speed: 4, IdleLimit: 2 * s},
			wantWaits:  []time.Duration{s / 4, s / 2, s / 2},
			wantWrites: []string{"A", "BC", "D", "E"},
		},
		{
			name:       "start offset writes the past at once",
			opts:       PlayOptions{From: 10 * s},
			wantWaits:  []time.Duration{2 * s},
			wantWrites: []string{"ABCD", "E"},
		},
		{
			name:       "start offset between events",
			opts:       PlayOptions{From: 5 * s},
			wantWaits:  []time.Duration{5 * s, 2 * s},
			wantWrites: []string{"ABC", "D", "E"},
		},
		{
			name:       "start offset past the end",
			opts:       PlayOptions{From: time.Hour},
			wantWrites: []string{"ABCDE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			tt.opts.Clock = clock
			out, st, wait := startPlay(t, context.Background(), playRecording(), tt.opts, nil)
			for i, want := range tt.wantWaits {
				w := clock.nextWait(t)
				if w.d != want {
					t.Errorf("wait %d = %v, want %v", i, w.d, want)
				}
				clock.fire(w)
			}
			mustNil(t, wait())
			if got := out.take(); !slices.Equal(got, tt.wantWrites) {
				t.Errorf("writes = %q, want %q", got, tt.wantWrites)
			}
			if last := st.last(); last.Position != 12*s || last.Length != 12*s {
				t.Errorf("final status = %+v, want position and length 12s", last)
			}
		})
	}
}

func TestPlayControls(t *testing.T) {
	s := time.Second
	clock := newFakeClock()
	controls := make(chan Control)
	out, st, wait := startPlay(t, context.Background(), playRecording(), PlayOptions{Clock: clock}, controls)

	send := func(c Control) {
		t.Helper()
		select {
		case controls <- c:
		case <-time.After(5 * time.Second):
			t.Fatalf("player did not take control %v", c)
		}
	}
	// waitStatus waits until the player has reported n statuses in all.
	waitStatus := func(n int) {
		t.Helper()
		testkit.WaitFor(t, waitLimit, "status report", func() bool { return st.count() >= n })
	}

	w := clock.nextWait(t) // towards B at 1s
	if got := out.take(); !slices.Equal(got, []string{"A"}) {
		t.Fatalf("first writes = %q", got)
	}
	// Half a second in, pause: the position is 0.5s.
	clock.Advance(s / 2)
	n := st.count()
	send(Pause)
	waitStatus(n + 1)
	if last := st.last(); !last.Paused || last.Position != s/2 {
		t.Errorf("after pause: %+v, want paused at 0.5s", last)
	}
	// Time passing while paused changes nothing; speed changes apply.
	clock.Advance(time.Hour)
	send(SpeedUp)
	waitStatus(n + 2)
	if last := st.last(); last.Speed != 2 || !last.Paused {
		t.Errorf("after speed-up: %+v, want speed 2, paused", last)
	}
	send(Pause) // resume: the remaining 0.5s at double speed
	w = clock.nextWait(t)
	if w.d != s/4 {
		t.Errorf("wait after resume = %v, want 250ms", w.d)
	}
	clock.fire(w)
	w = clock.nextWait(t) // towards D at 10s: 9s at double speed
	if w.d != 4500*time.Millisecond {
		t.Errorf("wait towards D = %v, want 4.5s", w.d)
	}
	if got := out.take(); !slices.Equal(got, []string{"BC"}) {
		t.Errorf("writes after resume = %q, want BC", got)
	}
	// Jump forward from 1s to 6s: nothing to write, then D is 4s away.
	send(SeekForward)
	w = clock.nextWait(t)
	if w.d != 2*s || st.last().Position != 6*s {
		t.Errorf("after seek forward: wait %v, status %+v; want 2s at 6s", w.d, st.last())
	}
	// 1s (2s of recording) into that wait, jump back 5s from 8s to 3s:
	// clear, then everything up to 3s at once.
	clock.Advance(s)
	send(SeekBackward)
	w = clock.nextWait(t)
	if got := out.take(); !slices.Equal(got, []string{clearScreen + "ABC"}) {
		t.Errorf("writes after seek back = %q, want clear+ABC", got)
	}
	if pos := st.last().Position; pos != 3*s {
		t.Errorf("position after seek back = %v, want 3s", pos)
	}
	send(SlowDown)
	w = clock.nextWait(t)
	if w.d != 7*s {
		t.Errorf("wait at normal speed = %v, want 7s", w.d)
	}
	send(Quit)
	mustNil(t, wait())
	if got := out.take(); len(got) != 0 {
		t.Errorf("writes after quit = %q", got)
	}
}

func TestPlaySeekBackwardAtStartRedraws(t *testing.T) {
	clock := newFakeClock()
	controls := make(chan Control)
	out, _, wait := startPlay(t, context.Background(), playRecording(), PlayOptions{Clock: clock}, controls)
	clock.nextWait(t)
	controls <- SeekBackward
	clock.nextWait(t)
	controls <- Quit
	mustNil(t, wait())
	if got := out.take(); !slices.Equal(got, []string{"A", clearScreen + "A"}) {
		t.Errorf("writes = %q, want A then clear+A", got)
	}
}

func TestPlayCancel(t *testing.T) {
	clock := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	_, _, wait := startPlay(t, ctx, playRecording(), PlayOptions{Clock: clock}, nil)
	clock.nextWait(t)
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("Play = %v, want context.Canceled", err)
	}
}

func TestPlayClosedControls(t *testing.T) {
	clock := newFakeClock()
	controls := make(chan Control)
	out, _, wait := startPlay(t, context.Background(), playRecording(), PlayOptions{Clock: clock}, controls)
	clock.nextWait(t)
	controls <- Pause
	close(controls) // resumes: nobody could unpause any more
	for range 3 {   // towards B, D and E
		clock.fire(clock.nextWait(t))
	}
	mustNil(t, wait())
	if got := strings.Join(out.take(), ""); got != "ABCDE" {
		t.Errorf("output = %q, want ABCDE", got)
	}
}

// TestPlayBinary: binary output plays as the bytes the terminal got,
// through the sanitizer unless raw.
func TestPlayBinary(t *testing.T) {
	rec := &Recording{Events: []Event{
		{0, CodeOutput, "$ "}, {0, CodeBinaryOutput, "AGEbXTA7eAdi/w=="}, {0, CodeBinaryInput, "eA=="}, {0, CodeOutput, "\r\n"},
	}}
	for _, tt := range []struct {
		name     string
		sanitize bool
		want     string
	}{
		{name: "sanitized", sanitize: true, want: "$ ab\ufffd\r\n"},
		{name: "raw", sanitize: false, want: "$ \x00a\x1b]0;x\ab\xff\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _, wait := startPlay(t, context.Background(), rec, PlayOptions{Sanitize: tt.sanitize, Clock: newFakeClock()}, nil)
			mustNil(t, wait())
			if got := strings.Join(out.take(), ""); got != tt.want {
				t.Errorf("output = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPlaySanitize(t *testing.T) {
	rec := &Recording{Events: []Event{
		{0, CodeOutput, "\x1b]52;c;cm0gLXJm"}, {0, CodeOutput, "IC8K\x07\x1b[1mok\x1b[6n"},
	}}
	for _, tt := range []struct {
		name     string
		sanitize bool
		want     string
	}{
		{name: "sanitized", sanitize: true, want: "\x1b[1mok"},
		{name: "raw", sanitize: false, want: "\x1b]52;c;cm0gLXJmIC8K\x07\x1b[1mok\x1b[6n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _, wait := startPlay(t, context.Background(), rec, PlayOptions{Sanitize: tt.sanitize, Clock: newFakeClock()}, nil)
			mustNil(t, wait())
			if got := strings.Join(out.take(), ""); got != tt.want {
				t.Errorf("output = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPlayRejects(t *testing.T) {
	tests := []struct {
		name string
		opts PlayOptions
		want string
	}{
		{name: "negative speed", opts: PlayOptions{Speed: -1}, want: "speed -1"},
		{name: "negative idle limit", opts: PlayOptions{IdleLimit: -time.Second}, want: "idle limit -1s"},
		{name: "negative start", opts: PlayOptions{From: -time.Second}, want: "start offset -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Play(context.Background(), &writeLog{}, playRecording(), tt.opts, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Play = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPlayStatusTruncated(t *testing.T) {
	rec := playRecording()
	rec.Truncated = true
	_, st, wait := startPlay(t, context.Background(), rec, PlayOptions{From: time.Hour, Clock: newFakeClock()}, nil)
	mustNil(t, wait())
	if !st.last().Truncated {
		t.Error("status does not report the truncated recording")
	}
}
