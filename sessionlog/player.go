package sessionlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Clock is the time source of Play; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// PlayOptions configures Play. The zero value plays at normal speed from the
// start, without sanitising, on the real clock.
type PlayOptions struct {
	// Speed multiplies playback speed; 0 means 1. It is kept between
	// 1/64 and 64.
	Speed float64
	// IdleLimit, if positive, shortens every pause longer than it to it,
	// so that playback never freezes on idle gaps.
	IdleLimit time.Duration
	// From starts playback at this offset of the recording: everything
	// before it is written at once.
	From time.Duration
	// Sanitize passes output through a Sanitizer before writing it.
	Sanitize bool
	// Clock is the time source; nil means the real clock.
	Clock Clock
}

// Control is a command sent to a running Play.
type Control int

// Controls understood by Play.
const (
	Pause        Control = iota + 1 // toggles pause
	SeekForward                     // jumps 5 s ahead
	SeekBackward                    // jumps 5 s back, redrawing the screen
	SpeedUp                         // doubles the speed (at most 64x)
	SlowDown                        // halves the speed (at least 1/64x)
	Quit                            // stops playback; Play returns nil
)

// String names the control.
func (c Control) String() string {
	switch c {
	case Pause:
		return "pause"
	case SeekForward:
		return "seek-forward"
	case SeekBackward:
		return "seek-backward"
	case SpeedUp:
		return "speed-up"
	case SlowDown:
		return "slow-down"
	case Quit:
		return "quit"
	}
	return fmt.Sprintf("Control(%d)", int(c))
}

// PlayerStatus is reported by Play after every change, for a status line.
// Position and Length are offsets in the recording (not shortened by
// IdleLimit), so they match transcript times.
type PlayerStatus struct {
	Position, Length time.Duration
	Speed            float64
	Paused           bool
	Truncated        bool // the recording's final line was torn
}

const (
	seekStep = 5 * time.Second
	maxSpeed = 64
	minSpeed = 1.0 / 64
	// clearScreen erases the screen and homes the cursor before a backward
	// seek redraws it.
	clearScreen = "\x1b[2J\x1b[H"
)

type frame struct {
	at   time.Duration
	data string
}

type player struct {
	ctx      context.Context
	out      io.Writer
	clock    Clock
	frames   []frame
	length   time.Duration
	idle     time.Duration
	speed    float64
	paused   bool
	trunc    bool
	sanitize bool
	san      Sanitizer
	from     time.Duration
	pos      time.Duration
	next     int // index of the next frame to write
	controls <-chan Control
	status   func(PlayerStatus)
}

// Play writes the output events of rec to out in real time (scaled by
// Speed, idle gaps shortened to IdleLimit) until the end of the recording,
// binary output (CodeBinaryOutput) included as the bytes the terminal got
// (with Sanitize, controls in it are dropped and invalid UTF-8 shows as
// U+FFFD, as for text),
// a Quit control (both return nil), a write error, or ctx's end (ctx.Err()).
// Controls arrive on controls, which may be nil; after it is closed Play
// carries on, unpaused, to the end. status, if not nil, is called after
// every write and every control.
func Play(ctx context.Context, out io.Writer, rec *Recording, opts PlayOptions, controls <-chan Control, status func(PlayerStatus)) error {
	if math.IsNaN(opts.Speed) || opts.Speed < 0 {
		return fmt.Errorf("play: speed %v: must be positive", opts.Speed)
	}
	if opts.Speed == 0 {
		opts.Speed = 1
	}
	if opts.IdleLimit < 0 {
		return fmt.Errorf("play: idle limit %v: must not be negative", opts.IdleLimit)
	}
	if opts.From < 0 {
		return fmt.Errorf("play: start offset %v: must not be negative", opts.From)
	}
	if rec == nil {
		return errors.New("play: no recording")
	}
	p := &player{
		ctx:      ctx,
		out:      out,
		clock:    opts.Clock,
		length:   rec.Length(),
		from:     opts.From,
		idle:     opts.IdleLimit,
		speed:    min(max(opts.Speed, minSpeed), maxSpeed),
		trunc:    rec.Truncated,
		sanitize: opts.Sanitize,
		controls: controls,
		status:   status,
	}
	if p.clock == nil {
		p.clock = realClock{}
	}
	for _, e := range rec.Events {
		switch e.Code {
		case CodeOutput:
			p.frames = append(p.frames, frame{at: secondsToDuration(e.Time), data: e.Data})
		case CodeBinaryOutput:
			b, err := e.Bytes()
			if err != nil {
				return fmt.Errorf("play: %w", err)
			}
			p.frames = append(p.frames, frame{at: secondsToDuration(e.Time), data: string(b)})
		}
	}
	return p.run()
}

func (p *player) report() {
	if p.status != nil {
		p.status(PlayerStatus{Position: p.pos, Length: p.length, Speed: p.speed, Paused: p.paused, Truncated: p.trunc})
	}
}

func (p *player) run() error {
	if err := p.seek(min(p.from, p.length), false); err != nil {
		return err
	}
	for {
		if p.next == len(p.frames) {
			if p.sanitize {
				if err := p.write(p.san.Flush()); err != nil {
					return err
				}
			}
			p.pos = max(p.pos, p.length)
			p.report()
			return nil
		}
		if p.paused {
			select {
			case <-p.ctx.Done():
				return p.ctx.Err()
			case c, ok := <-p.controls:
				if done, err := p.control(c, ok); done || err != nil {
					return err
				}
			}
			continue
		}
		target := p.frames[p.next].at
		gap := target - p.pos
		wait := gap
		if p.idle > 0 && wait > p.idle {
			wait = p.idle
		}
		wait = time.Duration(float64(wait) / p.speed)
		if wait <= 0 {
			if err := p.seek(target, false); err != nil {
				return err
			}
			continue
		}
		started := p.clock.Now()
		timer := p.clock.After(wait)
		select {
		case <-p.ctx.Done():
			return p.ctx.Err()
		case <-timer:
			if err := p.seek(target, false); err != nil {
				return err
			}
		case c, ok := <-p.controls:
			// Move the position by the share of the wait that passed.
			if elapsed := p.clock.Now().Sub(started); elapsed > 0 {
				share := min(float64(elapsed)/float64(wait), 1)
				p.pos += time.Duration(float64(gap) * share)
			}
			if done, err := p.control(c, ok); done || err != nil {
				return err
			}
		}
	}
}

// control applies c; done reports that playback should stop.
func (p *player) control(c Control, ok bool) (done bool, err error) {
	if !ok {
		p.controls = nil
		p.paused = false
		p.report()
		return false, nil
	}
	switch c {
	case Pause:
		p.paused = !p.paused
	case SeekForward:
		return false, p.seek(min(p.pos+seekStep, p.length), false)
	case SeekBackward:
		return false, p.seek(max(p.pos-seekStep, 0), true)
	case SpeedUp:
		p.speed = min(p.speed*2, maxSpeed)
	case SlowDown:
		p.speed = max(p.speed/2, minSpeed)
	case Quit:
		return true, nil
	}
	p.report()
	return false, nil
}

// seek moves to target, writing at once every frame up to it. With redraw
// (going back) it clears the screen and redraws from the start.
func (p *player) seek(target time.Duration, redraw bool) error {
	var b strings.Builder
	if redraw {
		b.WriteString(clearScreen)
		p.next = 0
		p.san = Sanitizer{}
	}
	for p.next < len(p.frames) && p.frames[p.next].at <= target {
		data := p.frames[p.next].data
		if p.sanitize {
			data = p.san.Filter(data)
		}
		b.WriteString(data)
		p.next++
	}
	p.pos = target
	err := p.write(b.String())
	p.report()
	return err
}

func (p *player) write(s string) error {
	if s == "" {
		return nil
	}
	if _, err := io.WriteString(p.out, s); err != nil {
		return fmt.Errorf("play: write output: %w", err)
	}
	return nil
}
